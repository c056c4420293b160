"""Test-time datasets for a checkpoint, from plain settings, and a guard for bad videos.

The settings are the training config's ``data`` section (``configs/*.yaml``, or the
``config.yaml`` a run folder keeps) overridden by command-line flags; clip length,
crop size, fps and short side come from the checkpoint, so a model is always
tested the way it was trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml

from mars_action.data.builder import build_dataset
from mars_action.data.transforms import normalize
from mars_action.errors import MarsError
from mars_action.models.checkpoint import CheckpointMeta

# What a failed video read may raise: our one-line errors, file and decoding errors.
READ_ERRORS = (MarsError, OSError, ValueError, RuntimeError)
# How clips are framed at test time: ours, or the released test scripts' (see
# ReleasedTestTransform); both score every non-overlapping clip and average logits.
PROTOCOLS = ("mars", "released")


@dataclasses.dataclass
class DataSettings:
    """Where a split's videos are: the arguments of ``mars_action.data.build_dataset``."""

    format: str = "folder"
    root: str | None = None
    annotations: str | None = None
    frame_root: str | None = None
    flow_root: str | None = None
    flow_prefix: str = "TVL1jpg_"
    fold: int = 1
    val_fraction: float = 0.1
    seed: int = 0
    use_test_as_val: bool = False
    stride: int = 1
    on_missing: str = "error"


def run_config_path(checkpoint: str | Path) -> Path | None:
    """``RUN/config.yaml`` for a checkpoint at ``RUN/checkpoints/*.pt``, if there is one."""
    folder = Path(checkpoint).resolve().parent
    path = folder.parent / "config.yaml"
    return path if folder.name == "checkpoints" and path.is_file() else None


def data_settings(config: str | Path | None, overrides: Mapping[str, Any]) -> DataSettings:
    """The ``data`` section of a training config (if any), then non-None ``overrides``."""
    values: dict[str, Any] = {}
    if config is not None:
        try:
            loaded = yaml.safe_load(Path(config).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise MarsError(f"{config}: cannot read the config ({error})") from None
        data = loaded.get("data", {}) or {}
        options = data.get("options", {}) or {}
        values.update({k: v for k, v in {**data, **options}.items() if k in _FIELDS})
    values.update({k: v for k, v in overrides.items() if v is not None and k in _FIELDS})
    if not values.get("root") and not values.get("frame_root"):
        raise MarsError("no data given: pass --data FORMAT with --root and/or --frame-root, "
                        "or --config (a training config)")
    return DataSettings(**values)


_FIELDS = {f.name for f in dataclasses.fields(DataSettings)}


def build_test_set(
    settings: DataSettings,
    meta: CheckpointMeta,
    split: str,
    *,
    clips: str | int = "all",
    crops: int = 1,
    modality: str | None = None,
    protocol: str = "mars",
):
    """Every clip (or ``clips`` evenly spaced ones) of each video of ``split``, for ``meta``.

    Clip length, crop, fps, short side and the flow scale (``1 / std`` of a Flow
    checkpoint) are the checkpoint's. With ``crops=3`` frames are only scaled (short
    side = crop size) so that :func:`mars_action.evaluation.evaluate.spatial_crops`
    can cut three crops. ``protocol="released"`` frames every clip as the released
    test scripts do (:class:`ReleasedTestTransform`); it needs every clip, one crop.
    """
    if protocol not in PROTOCOLS:
        raise MarsError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "released" and (clips != "all" or crops != 1):
        raise MarsError("the released protocol scores every clip with one centre crop: "
                        "drop --clips and --crops")
    flow_scale = 1.0 / meta.std[0] if meta.modality == "flow" else 1.0
    dataset = build_dataset(
        settings.format, settings.root, settings.annotations, split,
        modality or meta.modality, meta.clip_len, meta.crop_size,
        frame_root=settings.frame_root, flow_root=settings.flow_root, fold=settings.fold,
        val_fraction=settings.val_fraction,
        seed=settings.seed, use_test_as_val=settings.use_test_as_val, clips=clips,
        augment=False, stride=settings.stride, flow_prefix=settings.flow_prefix,
        flow_scale=flow_scale, scale_flow_vectors=meta.flow_vectors_scaled, fps=meta.fps,
        short_side=meta.short_side, on_missing=settings.on_missing,
    )
    if crops == 3:
        dataset.transform = ShortSideTransform(meta.crop_size, flow_scale,
                                               meta.flow_vectors_scaled)
    if protocol == "released":
        dataset.transform = ReleasedTestTransform(meta.crop_size, flow_scale)
    return dataset


class ReleasedTestTransform:
    """The released test scripts' framing: ``Scale(112)`` of the whole frame, ``CenterCrop(112)``.

    The released ``test_single_stream.py`` / ``test_two_stream.py`` resize each
    frame so its short side is ``size`` and its long side ``int(size * long /
    short)`` (PIL bilinear: antialiased when shrinking), then crop the centre at
    ``round((long - size) / 2)``; flow codes are resized like images and keep
    frame-store pixels (no vector scaling). Our default crops the central square
    first and resizes it, which can differ by a column and a fraction of a pixel.
    """

    def __init__(self, size: int, flow_scale: float = 1.0) -> None:
        self.size, self.flow_scale = size, flow_scale

    def __call__(self, clips: Mapping[str, np.ndarray], rng=None) -> dict[str, torch.Tensor]:
        return {
            modality: normalize(modality, self.frame(frames), self.flow_scale)
            for modality, frames in clips.items()
        }

    def frame(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, C) uint8 -> (T, size, size, C): scale the short side, crop the centre."""
        height, width = frames.shape[1:3]
        if width <= height:
            out_w, out_h = self.size, int(self.size * height / width)
        else:
            out_w, out_h = int(self.size * width / height), self.size
        if (out_h, out_w) != (height, width):
            images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
            images = F.interpolate(images, size=(out_h, out_w), mode="bilinear", antialias=True)
            frames = images.permute(0, 2, 3, 1).numpy()  # (T, out_h, out_w, C)
        top, left = round((out_h - self.size) / 2), round((out_w - self.size) / 2)
        return frames[:, top : top + self.size, left : left + self.size]


class ShortSideTransform:
    """Resize so the short side is ``size`` (aspect kept) and normalise; no crop.

    Used for three-crop testing, where the crops are cut from the whole scaled frame.
    Shrinking uses area interpolation, as the data stage's transforms do.
    ``scale_vectors``: flow is multiplied by the resize factor, as in training.
    """

    def __init__(self, size: int, flow_scale: float = 1.0, scale_vectors: bool = False) -> None:
        self.size, self.flow_scale, self.scale_vectors = size, flow_scale, scale_vectors

    def __call__(self, clips: Mapping[str, np.ndarray], rng=None) -> dict[str, torch.Tensor]:
        out = {}
        for modality, frames in clips.items():
            scale = self.size / min(frames.shape[1:3])  # (T, H, W, C)
            vectors = scale if self.scale_vectors else 1.0
            out[modality] = normalize(
                modality, self._resize(frames, scale), self.flow_scale * vectors
            )
        return out

    def _resize(self, frames: np.ndarray, scale: float) -> np.ndarray:
        height, width = frames.shape[1:3]  # (T, H, W, C)
        out_w, out_h = max(self.size, round(width * scale)), max(self.size, round(height * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = [cv2.resize(f, (out_w, out_h), interpolation=interpolation) for f in frames]
        return np.stack(resized).reshape(len(frames), out_h, out_w, -1)


class GuardedVideos:
    """A test dataset whose unreadable videos become ``{"error": reason}`` items.

    Evaluation then goes on past a bad video and reports it, instead of stopping
    an hour-long run; ``limit`` keeps only the first videos (quick checks).
    """

    def __init__(self, dataset, limit: int | None = None) -> None:
        self.dataset = dataset
        self.class_names = getattr(dataset, "class_names", None)
        self.size = len(dataset) if limit is None else min(limit, len(dataset))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self.dataset[index]
        except READ_ERRORS as error:
            return {"error": str(error).splitlines()[0][:300] or type(error).__name__,
                    "video_id": self.video_id(index)}

    def video_id(self, index: int) -> str:
        """The id of the ``index``-th video, for error messages and score files."""
        records = getattr(self.dataset, "records", None)
        return records[index].video_id if records is not None else f"#{index}"
