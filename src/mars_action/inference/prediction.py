"""What a recognizer returns: top-k for the whole video and for every clip, as data."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

TopK = list[tuple[str, float]]


@dataclasses.dataclass
class ClipPrediction:
    """One clip: its time span in the video (seconds) and its own top-k."""

    start: float
    end: float
    topk: TopK


@dataclasses.dataclass
class Prediction:
    """The recognised actions of one video.

    The video's scores are the softmax of the clip logits averaged over all clips,
    as the paper (and the released code) scores a video; each clip's probabilities
    are its own softmax.

    Attributes:
        source: the path, or ``<array>`` for frames passed in memory.
        topk: (label, probability) for the video, best first.
        probabilities: (num_classes,) video probabilities, summing to 1.
        clips: per-clip spans and top-k, in time order.
        clip_logits: (num_clips, num_classes) raw network outputs.
        class_names: the checkpoint's labels, index -> name.
        num_frames: frames decoded at the checkpoint's fps.
        fps: that frame rate.
        looped: the video was shorter than one clip and its frames were repeated.
        clip_len: frames per clip.
    """

    source: str
    topk: TopK
    probabilities: np.ndarray
    clips: list[ClipPrediction]
    clip_logits: np.ndarray
    class_names: list[str] = dataclasses.field(repr=False)
    num_frames: int
    fps: float
    looped: bool
    clip_len: int

    @property
    def duration(self) -> float:
        """Seconds of video read, at the checkpoint's frame rate."""
        return self.num_frames / self.fps

    @property
    def label(self) -> str:
        """The most probable class: the answer when one label is wanted."""
        return self.topk[0][0]

    def running_topk(self, clip_index: int, k: int) -> TopK:
        """Top-k of the logits averaged over clips 0..``clip_index``: the verdict so far."""
        mean = self.clip_logits[: clip_index + 1].mean(axis=0)
        return topk_from_logits(mean, self.class_names, k)[0]

    def note(self) -> str | None:
        """The one line a user must see about how this video was read, if any."""
        if self.looped:
            return (
                f"shorter than one {self.clip_len}-frame clip ({self.num_frames} frames at "
                f"{self.fps:g} fps): frames looped to fill the clip"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (one line of ``mars predict --json``)."""
        row = {
            "video": self.source,
            "topk": _topk_dicts(self.topk),
            "num_frames": self.num_frames,
            "duration": round(self.duration, 3),
            "looped": self.looped,
            "clips": [
                {"start": round(c.start, 3), "end": round(c.end, 3), "topk": _topk_dicts(c.topk)}
                for c in self.clips
            ],
        }
        return row | ({"note": self.note()} if self.note() else {})

    def format_table(self) -> str:
        """A small human-readable table: header, top-k rows, the note if any."""
        lines = [
            f"{self.source}  ({self.duration:.1f} s, {self.num_frames} frames, "
            f"{len(self.clips)} clip{'s' if len(self.clips) != 1 else ''})"
        ]
        width = max(len(label) for label, _ in self.topk)
        for rank, (label, prob) in enumerate(self.topk, 1):
            lines.append(f"  {rank}. {label:<{width}}  {prob:.3f}")
        if self.note():
            lines.append(f"  note: {self.note()}")
        return "\n".join(lines)


@dataclasses.dataclass
class VideoFailure:
    """A video of a batch that could not be predicted, with the one-line reason."""

    source: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON line of ``mars predict --json`` for this video, so that a batch's
        output keeps one line per input, failed or not."""
        return {"video": self.source, "error": self.reason}


def topk_from_logits(logits: np.ndarray, class_names: list[str], k: int) -> tuple[TopK, np.ndarray]:
    """(num_classes,) logits -> (top-k (label, probability), all probabilities)."""
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=0).numpy()
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [(class_names[i], float(probs[i])) for i in order], probs


def build_prediction(
    source: str,
    clip_logits: np.ndarray,
    spans: list[tuple[float, float]],
    class_names: list[str],
    *,
    num_frames: int,
    fps: float,
    looped: bool,
    clip_len: int,
    topk: int,
) -> Prediction:
    """Score a video from its clips' logits (K, C) and time spans."""
    video_topk, probs = topk_from_logits(clip_logits.mean(axis=0), class_names, topk)
    clips = [
        ClipPrediction(start, end, topk_from_logits(row, class_names, topk)[0])
        for (start, end), row in zip(spans, clip_logits, strict=True)
    ]
    return Prediction(
        source=source,
        topk=video_topk,
        probabilities=probs.astype(np.float32),
        clips=clips,
        clip_logits=clip_logits,
        class_names=class_names,
        num_frames=num_frames,
        fps=fps,
        looped=looped,
        clip_len=clip_len,
    )


def _topk_dicts(topk: TopK) -> list[dict[str, Any]]:
    return [{"label": label, "probability": round(prob, 6)} for label, prob in topk]
