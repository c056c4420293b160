"""Decoding videos (PyAV), resampling fps, resizing; the frame store on disk."""
