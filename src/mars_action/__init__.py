"""mars-action: flow-free action recognition with Motion-Augmented RGB Streams.

The package follows the data's journey, and imports only flow one way:
``video -> flow -> data -> models -> training / evaluation / inference``.
"""

__version__ = "0.1.0"
