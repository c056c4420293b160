"""Optical flow: OpenCV TV-L1, batched torch TV-L1, Farneback, codec motion vectors.

- ``methods``: ``compute_flow(frames, method)`` (N, H, W, 3|1) uint8 -> (N-1, H, W, 2)
  float32, flow i from frame i to i + 1; ``METHODS`` and their frame-store prefixes.
- ``quantize``: ``quantize`` / ``dequantize`` between px and 8-bit codes (bound 20;
  floor: 0 px -> 127, as the released code).
- ``opencv``: ``tvl1`` (the paper's, the reference) and ``farneback``.
- ``tvl1_torch``: ``tvl1_torch`` (batched, CPU or CUDA; presets ``opencv-cpu``,
  ``opencv-cuda``), built on the OpenCV-exact primitives of ``torch_ops``.
- ``mpeg``: codec motion vectors (MPEGFlow) from a video file or from frames.
- ``extract``: flow for a whole frame store or video folder (``mars flow``).
- ``synthetic``, ``check``, ``visualize``: ground-truth pairs, EPE, ``mars flow-check``,
  the Middlebury colour coding.
"""

from mars_action.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "mars_action.flow.methods": ("METHODS", "compute_flow"),
        "mars_action.flow.quantize": ("BOUND", "dequantize", "quantize"),
    },
)
