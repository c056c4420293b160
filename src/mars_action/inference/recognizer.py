"""Recognise actions in videos with an RGB-input model (MARS, MERS or RGB), no flow.

A background thread decodes and crops frames into clips while the network scores
the previous batch; clips of several videos share batches. Results come back in
input order, a bad video as a :class:`VideoFailure` that does not stop the others.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mars_action.errors import MarsError
from mars_action.inference.background import background
from mars_action.inference.export import is_exported, load_exported, read_exported_meta
from mars_action.inference.precision import convert as convert_precision
from mars_action.inference.prediction import Prediction, VideoFailure, build_prediction
from mars_action.inference.preprocess import Clip, ClipAssembler, Preprocessing
from mars_action.inference.runtime import select_network
from mars_action.models.checkpoint import CheckpointMeta, load_checkpoint, read_labels
from mars_action.models.optimize import optimize_for_inference, to_model_layout
from mars_action.video.decode import iter_frames

VideoInput = str | Path | np.ndarray
ARRAY_SOURCE = "<array>"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Recognizer:
    """A model, its checkpoint's preprocessing and its class names, ready to predict.

    On a CPU, ``torch.set_flush_denormal(True)`` can make the network several times
    faster when activations get tiny; it is process-wide, so ``mars predict`` and
    ``mars stream`` set it and this class leaves it to the caller.
    :meth:`from_checkpoint` runs the network in PyTorch, or in ONNX Runtime when asked
    (:mod:`~mars_action.inference.runtime`); ``runtime`` says which engine runs it
    and ``runtime_note`` why, when that was not the first choice.

    Args:
        model: an RGB-input ``ResNet3d`` (3 input channels), or any function of
            clips (B, 3, T, S, S) -> logits, such as an exported model
            (:func:`~mars_action.inference.export.load_exported`).
        meta: the checkpoint's meta; preprocessing is read from it.
        device: where the network runs.
        optimize: fold BatchNorm and use channels_last_3d (same outputs, faster).
        precision: ``fp32``, or ``bf16`` / ``int8`` on the CPU
            (:mod:`~mars_action.inference.precision`; outputs change a little).
        calibration: normalised clips (K, 3, T, S, S) that set int8's activation
            ranges (:meth:`clips_of` a few training videos).
    """

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        meta: CheckpointMeta,
        device: str | torch.device = "cpu",
        optimize: bool = True,
        precision: str = "fp32",
        calibration: torch.Tensor | None = None,
    ):
        self.device = resolve_device(device)
        self.meta = meta
        self.preprocessing = Preprocessing.from_meta(meta)
        if precision != "fp32" and self.device.type != "cpu":
            raise MarsError(f"precision {precision}: reduced precision runs on the CPU only")
        if isinstance(model, nn.Module):
            model = model.to(self.device).eval()
            if precision != "fp32":
                batches = () if calibration is None else torch.split(calibration, 8)
                model = convert_precision(model, precision, batches)
            elif optimize:
                model = optimize_for_inference(model)
        elif precision != "fp32":
            raise MarsError(f"precision {precision}: needs a PyTorch model, not an exported one")
        self.precision = precision
        self.model = model
        self.runtime = "pytorch" if isinstance(model, nn.Module) else "exported"
        self.runtime_note: str | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "auto",
        labels: str | Path | Sequence[str] | None = None,
        arch: str | None = None,
        optimize: bool = True,
        runtime: str = "pytorch",
        cache_dir: str | Path | None = None,
        precision: str = "fp32",
        calibration: Sequence[VideoInput] = (),
    ) -> Recognizer:
        """Load our checkpoint, a released MARS ``.pth`` or a ``mars export`` file.

        A ``.pth`` has no class names: pass ``labels`` (a file or a list). An
        ``.onnx`` file runs in ONNX Runtime, a ``.torchscript.pt`` in libtorch.
        A checkpoint runs as ``runtime`` says (``auto``, ``pytorch``,
        ``onnxruntime``; see :func:`~mars_action.inference.runtime.select_network`),
        its ONNX export cached in ``cache_dir`` (default: ``$MARS_CACHE_DIR`` or
        ``~/.cache/mars_action``). ``precision`` ``bf16`` or ``int8`` runs it in PyTorch
        at that precision; int8 is calibrated on clips of the ``calibration`` videos.
        """
        names = read_labels(labels) if isinstance(labels, (str, Path)) else labels
        names = None if names is None else list(names)
        if is_exported(path):
            return cls._from_exported(Path(path), resolve_device(device), names)
        model, meta = load_checkpoint(path, arch=arch, class_names=names, expect_modality="rgb")
        _require_class_names(meta, path)
        device = resolve_device(device)
        if precision != "fp32":
            if runtime != "pytorch":
                raise MarsError(f"precision {precision}: runs in PyTorch, not runtime {runtime}")
            clips = cls(model, meta, optimize=False).clips_of(calibration) if calibration else None
            return cls(model, meta, device, precision=precision, calibration=clips)
        network = select_network(model.eval(), meta, path, device, runtime, cache_dir)
        recognizer = cls(network.model, meta, device=device, optimize=optimize)
        recognizer.runtime, recognizer.runtime_note = network.runtime, network.note
        return recognizer

    @classmethod
    def _from_exported(
        cls, path: Path, device: torch.device, names: list[str] | None
    ) -> Recognizer:
        meta = read_exported_meta(path)
        if meta.modality != "rgb":
            raise MarsError(f"{path}: a {meta.modality} model; predicting needs RGB input")
        if names is not None:
            if len(names) != meta.num_classes:
                raise MarsError(
                    f"{path}: {len(names)} class names given but the model has "
                    f"{meta.num_classes} outputs"
                )
            meta.class_names = names
        _require_class_names(meta, path)
        recognizer = cls(load_exported(path, device), meta, device=device)
        recognizer.runtime = "onnxruntime" if path.suffix == ".onnx" else "torchscript"
        return recognizer

    @property
    def class_names(self) -> list[str]:
        """Index -> label, from the checkpoint (or ``--labels``): how logits are named."""
        return self.meta.class_names

    def predict(
        self, video: VideoInput | Sequence[VideoInput], topk: int = 5, batch_size: int = 8
    ) -> Prediction | list[Prediction]:
        """Top-k for one video (path or (T, H, W, 3) uint8 frames), or a list for a list.

        Frames passed as an array are taken to be at the checkpoint's fps. Raises
        :class:`MarsError` for a video that cannot be read; :meth:`predict_each`
        goes on past bad videos instead.
        """
        videos = list(video) if isinstance(video, (list, tuple)) else [video]
        results = []
        for result in self.predict_each(videos, topk=topk, batch_size=batch_size):
            if isinstance(result, VideoFailure):
                raise MarsError(result.reason)
            results.append(result)
        return results if isinstance(video, (list, tuple)) else results[0]

    def predict_each(
        self, videos: Iterable[VideoInput], topk: int = 5, batch_size: int = 8
    ) -> Iterator[Prediction | VideoFailure]:
        """One result per video, in input order, as soon as each is complete."""
        videos = list(videos)
        states = [_VideoState(_source_name(v)) for v in videos]
        batch: list[_ClipItem] = []
        emitted = 0
        for item in background(self._items(videos), maxsize=2 * batch_size):
            if isinstance(item, _ClipItem):
                states[item.index].pending += 1
                batch.append(item)
                if len(batch) >= batch_size:
                    self._score_batch(batch, states)
                    batch = []
            else:
                states[item.index].end = item
                if item.failure is not None:  # its clips need no scoring
                    batch = [queued for queued in batch if queued.index != item.index]
            while emitted < len(states) and states[emitted].ready:
                yield states[emitted].result(self, topk)
                emitted += 1
        if batch:
            self._score_batch(batch, states)
        for state in states[emitted:]:
            yield state.result(self, topk)

    def score_clips(self, clips: np.ndarray) -> np.ndarray:
        """(B, T, S, S, 3) uint8 cropped clips -> (B, num_classes) float32 logits."""
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device, non_blocking=True)
            x = to_model_layout(self.model, self.preprocessing.normalize(x))  # (B, 3, T, S, S)
            return self.model(x).float().cpu().numpy()

    def clips_of(self, videos: Sequence[VideoInput], per_video: int | None = None) -> torch.Tensor:
        """(K, 3, T, S, S) normalised clips of ``videos`` (the first ``per_video`` of each),
        preprocessed as :meth:`predict` does: calibration and agreement sets."""
        clips = [
            clip.frames for video in videos
            for clip in itertools.islice(self.iter_clips(video), per_video)
        ]
        if not clips:
            raise MarsError(f"no clips in {len(videos)} video(s)")
        with torch.inference_mode():
            return self.preprocessing.normalize(torch.from_numpy(np.stack(clips)))

    def timed_frames(self, video: VideoInput) -> Iterator[tuple[float, np.ndarray]]:
        """(timestamp s, (H, W, 3) uint8) at the checkpoint's fps and short side."""
        pre = self.preprocessing
        if isinstance(video, np.ndarray):
            frames = _check_array(video)
            return ((i / pre.fps, frame) for i, frame in enumerate(frames))
        return iter_frames(video, fps=pre.fps, short_side=pre.short_side)

    def iter_clips(
        self, video: VideoInput, assembler: ClipAssembler | None = None
    ) -> Iterator[Clip]:
        """The clips the network sees, in time order; ``assembler`` keeps the counts."""
        pre = self.preprocessing
        assembler = assembler or ClipAssembler(pre.clip_len, pre.fps)
        for timestamp, frame in self.timed_frames(video):
            clip = assembler.add(timestamp, pre.crop_frame(frame))
            if clip is not None:
                yield clip
        tail = assembler.finish()
        if tail is not None:
            yield tail

    def _items(self, videos: list[VideoInput]) -> Iterator[_ClipItem | _VideoEnd]:
        """Runs in the decoder thread: clips of every video, then how the video ended."""
        for index, video in enumerate(videos):
            assembler = ClipAssembler(self.preprocessing.clip_len, self.preprocessing.fps)
            try:
                for clip in self.iter_clips(video, assembler):
                    yield _ClipItem(index, clip)
            except MarsError as error:
                yield _VideoEnd(index, 0, False, str(error))
                continue
            failure = None if assembler.num_frames else f"{_source_name(video)}: no frames decoded"
            yield _VideoEnd(index, assembler.num_frames, assembler.looped, failure)

    def _score_batch(self, batch: list[_ClipItem], states: list[_VideoState]) -> None:
        logits = self.score_clips(np.stack([item.clip.frames for item in batch]))
        for item, row in zip(batch, logits, strict=True):
            state = states[item.index]
            state.spans.append((item.clip.start, item.clip.end))
            state.logits.append(row)
            state.pending -= 1


@dataclasses.dataclass
class _ClipItem:
    index: int
    clip: Clip


@dataclasses.dataclass
class _VideoEnd:
    index: int
    num_frames: int
    looped: bool
    failure: str | None


@dataclasses.dataclass
class _VideoState:
    """What the network side knows of one video while its clips are being scored."""

    source: str
    spans: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    logits: list[np.ndarray] = dataclasses.field(default_factory=list)
    pending: int = 0
    end: _VideoEnd | None = None

    @property
    def ready(self) -> bool:
        return self.end is not None and (self.end.failure is not None or self.pending == 0)

    def result(self, recognizer: Recognizer, topk: int) -> Prediction | VideoFailure:
        if self.end is None or self.end.failure is not None:
            reason = self.end.failure if self.end else f"{self.source}: decoding stopped"
            return VideoFailure(self.source, reason)
        pre = recognizer.preprocessing
        return build_prediction(
            self.source,
            np.stack(self.logits),
            self.spans,
            recognizer.class_names,
            num_frames=self.end.num_frames,
            fps=pre.fps,
            looped=self.end.looped,
            clip_len=pre.clip_len,
            topk=topk,
        )


def _require_class_names(meta: CheckpointMeta, path: str | Path) -> None:
    if not meta.class_names:
        raise MarsError(
            f"{path}: the checkpoint has no class names; --labels FILE is required "
            "(one name per line, or 'index name' as UCF101's classInd.txt)"
        )


def _source_name(video: VideoInput) -> str:
    return ARRAY_SOURCE if isinstance(video, np.ndarray) else str(video)


def _check_array(frames: np.ndarray) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MarsError(
            f"{ARRAY_SOURCE}: expected frames of shape (T, H, W, 3) and dtype uint8, got "
            f"{tuple(frames.shape)} {frames.dtype}"
        )
    if len(frames) == 0:
        raise MarsError(f"{ARRAY_SOURCE}: no frames")
    return frames
