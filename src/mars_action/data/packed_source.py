"""Flow (and RGB) straight from video files: flow from packs, RGB decoded from the videos.

With ``mars flow VIDEOS --out FLOW_ROOT --packed`` every video's flow is one file,
``<flow_root>/<class>/<video>.<prefix>pack`` (:mod:`mars_action.flow.packed`), so the
Flow, MERS and MARS streams train and test without a frame store: flow clips come
from the packs, RGB clips (MARS, MERS, two-stream) are decoded from the videos on
the same 25 fps grid the flow was computed on (frame ``i`` is paired with flow ``i``,
frame ``i -> i + 1``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mars_action.data.records import VideoRecord, strip_video_suffix
from mars_action.data.sources import ON_MISSING, VideoFileSource, _report, parse_modality
from mars_action.errors import MarsError
from mars_action.flow.packed import FlowPack, pack_name
from mars_action.video import framestore

Location = tuple[Path, Path | None]  # (pack, video or None for flow alone)
OPEN_PACKS = 64  # packs a process keeps open (a DataLoader worker sees every video)


class PackedFlowSource:
    """Flow from per-video packs, with RGB from the video files for ``rgb+flow``.

    Args:
        flow_root: folder of the packs (``mars flow ... --packed``'s ``--out``).
        modalities: ``("flow",)`` or ``("rgb", "flow")``.
        video_root: folder the records' video paths are relative to (RGB only).
        flow_prefix: the method's prefix in the packs' names (``TVL1jpg_``...).
        fps, short_side: the frame grid of the RGB frames; must be the packs'.
        on_missing: ``"error"`` or ``"skip"`` for videos without a pack (or file).
    """

    def __init__(
        self,
        flow_root: str | Path,
        modalities: Sequence[str] = ("flow",),
        video_root: str | Path | None = None,
        flow_prefix: str = framestore.FLOW_PREFIX,
        fps: float = 25.0,
        short_side: int | None = 256,
        on_missing: str = "error",
    ) -> None:
        if on_missing not in ON_MISSING:
            raise MarsError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
        self.root = Path(flow_root)
        self.modalities = parse_modality(modalities)
        if "flow" not in self.modalities:
            raise MarsError("a packed flow source reads flow: modality flow or rgb+flow")
        if "rgb" in self.modalities and video_root is None:
            raise MarsError("rgb+flow from packs needs the videos (data.root) for the RGB")
        self.flow_prefix, self.on_missing = flow_prefix, on_missing
        self.videos = VideoFileSource(video_root or ".", fps, short_side, on_missing=on_missing)
        self._packs: OrderedDict[Path, FlowPack] = OrderedDict()  # least recently used first

    def prepare(self, records: Sequence[VideoRecord]) -> list[Location | None]:
        """(pack, video) of each record, None where skipped; reports missing files."""
        if not self.root.is_dir():
            raise MarsError(f"{self.root}: flow pack folder not found")
        packs = [self.pack_path(record) for record in records]
        problems = [f"{r.path}: no {p.name}" for r, p in zip(records, packs, strict=True)
                    if not p.is_file()]  # fmt: skip
        _report(self.root, problems, "without packed flow", self.on_missing)
        videos: list[Path | None] = [None] * len(records)
        if "rgb" in self.modalities:
            videos = self.videos.prepare(records)
        return [
            (pack, video) if pack.is_file() and (video or "rgb" not in self.modalities) else None
            for pack, video in zip(packs, videos, strict=True)
        ]

    def __getstate__(self) -> dict:
        """Pickled into DataLoader workers without open descriptors (each opens its own)."""
        return {**self.__dict__, "_packs": OrderedDict()}

    def pack_path(self, record: VideoRecord) -> Path:
        """``<flow_root>/<class>/<video>.<prefix>pack`` of a record ``<class>/<video>.<ext>``."""
        relative = Path(strip_video_suffix(record.path))
        return self.root / relative.parent / pack_name(relative.name, self.flow_prefix)

    def num_frames(self, location: Location) -> int:
        """Flow fields in the pack (frame ``i`` is paired with field ``i``)."""
        return self._pack(location[0]).pairs

    def frame_size(self, location: Location) -> tuple[int, int]:
        """(height, width) of the fields; RGB frames must be on the same grid and size."""
        pack = self._pack(location[0])
        if "rgb" in self.modalities:
            rgb, fps = self.videos.frame_size(location[1]), pack.header.get("fps")
            if rgb != pack.size or (fps and abs(fps - self.videos.fps) > 1e-6):
                raise MarsError(
                    f"{location[0]}: flow of {pack.size} px at {fps} fps, RGB asked "
                    f"at {rgb} px, {self.videos.fps} fps: give the packs' fps/size"
                )
        return pack.size

    def read(
        self,
        location: Location,
        indices: Sequence[int],
        window: framestore.Window | None = None,
        reduction: int = 1,
    ) -> dict[str, np.ndarray]:
        """Clips at sorted 0-based ``indices``: flow (N, h, w, 2) codes, RGB (N, H, W, 3)."""
        frames = {}
        if "rgb" in self.modalities:
            frames["rgb"] = self.videos.read(location[1], indices, window)["rgb"]
            reduction = 1  # RGB is decoded at full size: flow must match it
        frames["flow"] = self._pack(location[0]).read(indices, window, reduction)
        return frames

    def _pack(self, path: Path) -> FlowPack:
        if path in self._packs:
            self._packs.move_to_end(path)
        else:
            if len(self._packs) >= OPEN_PACKS:
                self._packs.popitem(last=False)[1].close()
            self._packs[path] = FlowPack(path)
        return self._packs[path]
