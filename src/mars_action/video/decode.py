"""Decoding videos with PyAV: threaded, resampled to a target fps by timestamp, resized."""

from __future__ import annotations

from mars_action.errors import MarsError


class VideoError(MarsError):
    """A video (or frame) that cannot be read; the message names the file and the reason."""
