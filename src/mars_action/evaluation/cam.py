"""Class activation maps (Zhou et al. 2016), the paper's Figure 6, for any stream.

The head is a global average pool then a linear layer, so the logit of class c is
``mean over (t, h, w) of CAM_c + b_c`` with ``CAM_c = sum_k w_ck F_k``, ``F`` the
last convolutional map (layer4) and ``w`` the classifier weights. The map of the
ground-truth class, upsampled to the clip, shows where the evidence for it lies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mars_action.evaluation.evaluate import spatial_crops
from mars_action.evaluation.fusion import stream_title
from mars_action.evaluation.plots import new_figure, save_figure
from mars_action.evaluation.static import repeat_middle_frame, static_transform
from mars_action.models.checkpoint import RGB_MEAN, CheckpointMeta
from mars_action.video.writer import write_video


def cam_from_features(
    features: torch.Tensor, weight: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """Maps (B, t, h, w) of ``classes`` (B,) from features (B, F, t, h, w), fc weight (N, F)."""
    return torch.einsum("bfthw,bf->bthw", features, weight[classes])


def class_activation_maps(
    model: nn.Module, clips: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps (B, T, H, W) upsampled to the clips (B, C, T, H, W), logits (B, N))."""
    features = model.forward_features(clips)  # (B, F, t, h, w)
    logits = model.forward_head(features)
    maps = cam_from_features(features, model.fc.weight, classes)
    maps = F.interpolate(maps[:, None], size=clips.shape[2:], mode="trilinear", align_corners=False)
    return maps[:, 0], logits


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Each map (B, ...) min-max scaled to [0, 1] for display (a flat map becomes 0)."""
    flat = maps.flatten(1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).reshape(maps.shape)


@dataclasses.dataclass
class VideoCam:
    """One stream's maps for one video: frames to show and heat on them, clip after clip."""

    video_id: str
    stream: str
    label: int
    score: float  # softmax of the true class, from the video's clip-averaged logits
    predicted: int
    frames: np.ndarray  # (K*T, H, W, 3) uint8
    heat: np.ndarray  # (K*T, H, W) float in [0, 1]


def display_frames(sample: dict, meta: CheckpointMeta) -> np.ndarray:
    """(K*T, h, w, 3) uint8 pictures of a test item's clips, cropped as the network saw them.

    RGB clips are un-normalised (the flow stream's item may carry ``rgb`` too, as
    in the paper's figure); flow alone is shown as its magnitude in grey.
    """
    if "rgb" in sample:
        mean = meta.mean if meta.modality == "rgb" else RGB_MEAN
        std = meta.std if meta.modality == "rgb" else (1.0, 1.0, 1.0)
        clips = _denormalise(torch.as_tensor(sample["rgb"]), mean, std)
    else:
        codes = _denormalise(torch.as_tensor(sample["flow"]), meta.mean, meta.std) - 127.5
        # |code - 127.5| is at most ~180 (20 px on both axes): x2 spreads it over grey levels.
        magnitude = codes.pow(2).sum(dim=1, keepdim=True).sqrt() * 2  # (K, 1, T, H, W)
        clips = magnitude.expand(-1, 3, -1, -1, -1)
    view = spatial_crops(clips, meta.crop_size, 1)[:, 0]  # (K, 3, T, h, w)
    frames = view.permute(0, 2, 3, 4, 1).flatten(0, 1)  # (K*T, h, w, 3)
    return frames.clamp(0, 255).round().to(torch.uint8).numpy()


def _denormalise(clips: torch.Tensor, mean: Sequence[float], std: Sequence[float]):
    shape = (1, -1, 1, 1, 1)
    return clips.float() * torch.tensor(std).reshape(shape) + torch.tensor(mean).reshape(shape)


def video_cam(
    model: nn.Module,
    meta: CheckpointMeta,
    sample: dict,
    *,
    max_clips: int | None = 4,
    static: bool = False,
    device: str | torch.device = "cpu",
) -> VideoCam:
    """Maps of the true class on the first ``max_clips`` clips of a test item.

    ``static``: feed static clips (section 5.4) and show the repeated middle frames.
    """
    shown = {k: torch.as_tensor(v)[:max_clips] for k, v in sample.items() if k in ("rgb", "flow")}
    clips = shown[meta.modality]  # (K, C, T, H, W)
    if static:
        clips = static_transform(meta)(clips)
        shown = {k: repeat_middle_frame(v) for k, v in shown.items()}
        shown[meta.modality] = clips
    view = spatial_crops(clips, meta.crop_size, 1)[:, 0].to(device, torch.float32)
    label = int(sample["label"])
    classes = torch.full((view.shape[0],), label, dtype=torch.long, device=device)
    with torch.inference_mode():
        maps, logits = class_activation_maps(model.eval(), view, classes)
    probabilities = logits.float().mean(dim=0).softmax(dim=0).cpu()
    return VideoCam(
        video_id=str(sample["video_id"]),
        stream=meta.stream,
        label=label,
        score=float(probabilities[label]),
        predicted=int(probabilities.argmax()),
        frames=display_frames(shown, meta),
        heat=normalise_maps(maps).flatten(0, 1).cpu().numpy(),
    )


def overlay(frame: np.ndarray, heat: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """A frame (H, W, 3) uint8 with heat (H, W) in [0, 1] blended on as a jet colour map."""
    colours = matplotlib.colormaps["jet"](heat)[..., :3] * 255.0  # (H, W, 3)
    blended = (1.0 - strength) * frame.astype(np.float32) + strength * colours
    return np.clip(blended, 0, 255).round().astype(np.uint8)


def save_cam_grid(rows: Sequence[Sequence[VideoCam]], path: str | Path, class_names) -> Path:
    """PNG grid: one row per video, one column per stream, the middle frame of the clips."""
    columns = len(rows[0])
    figure = new_figure(2.2 * columns, 2.4 * len(rows))
    for r, row in enumerate(rows):
        for c, cam in enumerate(row):
            axes = figure.add_subplot(len(rows), columns, r * columns + c + 1)
            middle = len(cam.frames) // 2
            axes.imshow(overlay(cam.frames[middle], cam.heat[middle]))
            axes.set_title(f"{stream_title([cam.stream])}  p={cam.score:.2f}", fontsize=8)
            axes.set_axis_off()
        figure.axes[r * columns].text(
            0, -0.06, f"{row[0].video_id}: {class_names[row[0].label]}",
            transform=figure.axes[r * columns].transAxes, fontsize=7, va="top",
        )
    return save_figure(figure, path)


def save_cam_video(row: Sequence[VideoCam], path: str | Path, fps: float = 25.0) -> Path:
    """MP4 of one video: the streams' overlays side by side, frame after frame."""
    length = min(len(cam.frames) for cam in row)
    frames = (
        np.concatenate([overlay(cam.frames[t], cam.heat[t]) for cam in row], axis=1)
        for t in range(length)
    )
    return write_video(path, frames, fps=fps)
