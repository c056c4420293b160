"""Packed flow: every flow field of one video in one file, read by index.

A frame store keeps flow as two JPEGs a pair: a Kinetics-sized set is hundreds of
millions of files, which file systems and cluster quotas handle badly. A pack holds
the same JPEG-coded x / y planes of every pair of a video (the same bytes, so the
same codes after decoding) behind a table of offsets, so that a training clip reads
its 16 pairs with one open and 16 positioned reads::

    b"MARSFLOW" | u32 version | u32 header length | header JSON | u64 offsets[2P + 1] | JPEGs

The header records the pair count, the frame size and how the flow was made
(method, bound, quantization, frame grid). Blob ``2i`` is field ``i``'s x plane,
``2i + 1`` its y plane; offsets count from the file's start. A pack is written to a
temporary name and renamed into place, so a pack that exists is complete.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mars_action.errors import MarsError
from mars_action.files import write_atomic
from mars_action.flow.quantize import quantize
from mars_action.video import framestore

MAGIC = b"MARSFLOW"
VERSION = 1
SUFFIX = "pack"  # <video stem>.<prefix>pack, e.g. v_x.TVL1jpg_pack


def pack_name(stem: str, prefix: str) -> str:
    """File name of a video's pack: ``<stem>.<prefix>pack`` (methods side by side)."""
    return f"{stem}.{prefix}{SUFFIX}"


def write_pack(
    path: str | Path,
    fields: Iterable[np.ndarray],
    header: dict[str, Any],
    rounding: str = "floor",
    quality: int = framestore.DEFAULT_QUALITY,
) -> int:
    """Quantize and JPEG-code every flow field (H, W, 2) float into one pack; returns pairs.

    The planes are held in memory (about 10 kB a pair at 256 px), then the file is
    written under a temporary name and renamed.

    Raises:
        MarsError: no field, or fields of different sizes.
    """
    blobs: list[bytes] = []
    size = None
    for field in fields:
        codes = quantize(field, rounding)  # (H, W, 2) uint8
        if size is None:
            size = codes.shape[:2]
        elif codes.shape[:2] != size:
            raise MarsError(f"{path}: flow fields of different sizes {size} and {codes.shape[:2]}")
        blobs += [framestore.encode_jpeg(codes[..., 0], quality),
                  framestore.encode_jpeg(codes[..., 1], quality)]  # fmt: skip
    if size is None:
        raise MarsError(f"{path}: no flow field to pack")
    pairs = len(blobs) // 2
    meta = json.dumps({**header, "pairs": pairs, "height": size[0], "width": size[1]}).encode()
    start = len(MAGIC) + 8 + len(meta) + 8 * (len(blobs) + 1)
    offsets = np.cumsum([start, *map(len, blobs)], dtype=np.uint64)
    parts = [MAGIC, struct.pack("<II", VERSION, len(meta)), meta, offsets.astype("<u8").tobytes()]
    write_atomic(Path(path), b"".join(parts + blobs))
    return pairs


class FlowPack:
    """One pack opened for reading: its header, and fields by 0-based index.

    Only the header and offsets are read on opening; :meth:`read` reads each wanted
    plane with one positioned read (``os.pread``) of an open descriptor.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError as error:
            raise MarsError(f"{self.path}: cannot open the flow pack ({error.strerror})") from None
        head = os.pread(self.fd, len(MAGIC) + 8, 0)
        if len(head) < len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
            self.close()
            raise MarsError(f"{self.path}: not a flow pack")
        version, meta_len = struct.unpack("<II", head[len(MAGIC) :])
        if version != VERSION:
            self.close()
            raise MarsError(f"{self.path}: flow pack version {version}, this reads {VERSION}")
        self.header = json.loads(os.pread(self.fd, meta_len, len(head)))
        self.pairs = int(self.header["pairs"])
        table = os.pread(self.fd, 8 * (2 * self.pairs + 1), len(head) + meta_len)
        self.offsets = np.frombuffer(table, "<u8").astype(np.int64)
        if len(self.offsets) != 2 * self.pairs + 1 or os.fstat(self.fd).st_size < self.offsets[-1]:
            self.close()
            raise MarsError(f"{self.path}: truncated flow pack")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the fields at full size."""
        return int(self.header["height"]), int(self.header["width"])

    def read(
        self,
        indices: Sequence[int],
        window: framestore.Window | None = None,
        reduction: int = 1,
    ) -> np.ndarray:
        """Codes of fields ``indices``: (N, h, w, 2) uint8, as :func:`framestore.read_flow`.

        ``window`` ``(top, left, height, width)`` in full-size pixels and
        ``reduction`` (JPEG DCT scaling, 1/2/4/8) work as they do there.
        """
        flags = framestore.gray_flags(reduction)
        out = None
        for k, index in enumerate(indices):
            if not 0 <= index < self.pairs:
                raise MarsError(f"{self.path}: flow field {index} of {self.pairs}")
            for c in range(2):
                start, end = self.offsets[2 * index + c], self.offsets[2 * index + c + 1]
                data = np.frombuffer(os.pread(self.fd, int(end - start), int(start)), np.uint8)
                image = cv2.imdecode(data, flags)
                if image is None:
                    raise MarsError(f"{self.path}: field {index} is not a readable JPEG")
                if out is None:
                    rows, cols = framestore.window_slices(image.shape, window, reduction)
                    out = np.empty((len(indices), *image[rows, cols].shape, 2), np.uint8)
                out[k, ..., c] = image[rows, cols]
        return np.zeros((0, 0, 0, 2), np.uint8) if out is None else out

    def close(self) -> None:
        """Close the descriptor (also on garbage collection)."""
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self.close()
