"""Decoding videos (PyAV), resampling fps, resizing; the frame store on disk.

- ``decode``: ``probe``, ``iter_frames``, ``decode_video``, ``VideoError``.
- ``framestore``: read/write ``<root>/<class>/<video>/00001.jpg`` frames and flow, ``done``.
- ``batch``: resumable, shardable process-pool runner (``mars frames``, ``mars flow``).
- ``extract``: a whole dataset's videos into the frame store (``mars frames``).
- ``writer``: ``write_video`` for synthetic data, annotated outputs and tests.
"""
