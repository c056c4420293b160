"""Self-describing checkpoints, and loading of the released MARS ``.pth`` files and of
other toolkits' weights (torchvision, PyTorchVideo, Hara's 3D-ResNets).

Our format is one ``torch.save`` of plain data: ``{"format", "version", "meta",
"state_dict", ...}`` where ``meta`` is :class:`CheckpointMeta` as a dict. Every
file is read with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mars_action.data.transforms import FLOW_CENTER, RGB_MEAN
from mars_action.errors import MarsError
from mars_action.files import describe_os_error, temp_beside
from mars_action.models.foreign import SOURCES, detect_source, unwrap
from mars_action.models.registry import build_model, canonical_name

FORMAT = "mars-action"
VERSION = 1

# The data stage's normalisation (released code): RGB 0-255 minus the ActivityNet
# mean, flow codes minus 127.5, std 1; a checkpoint records it for use time.
FLOW_MEAN = (FLOW_CENTER, FLOW_CENTER)


@dataclasses.dataclass
class CheckpointMeta:
    """What a model needs at use time, beside its weights."""

    arch: str
    in_channels: int
    num_classes: int
    stream: str = "rgb"  # rgb | flow | mers | mars
    class_names: list[str] = dataclasses.field(default_factory=list)
    clip_len: int = 16
    crop_size: int = 112
    fps: float = 25.0
    short_side: int = 256
    mean: list[float] = dataclasses.field(default_factory=list)
    std: list[float] = dataclasses.field(default_factory=list)
    # Flow input scaled by crop_size / crop side (ours); released checkpoints were not.
    flow_vectors_scaled: bool = False
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.mean:
            self.mean = list(RGB_MEAN if self.in_channels == 3 else FLOW_MEAN)
        if not self.std:
            self.std = [1.0] * self.in_channels

    @property
    def modality(self) -> str:
        """The input the network takes: ``rgb`` (MARS and MERS too) or ``flow``."""
        return "flow" if self.in_channels == 2 else "rgb"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointMeta:
        """Meta from a checkpoint's dict, ignoring keys a newer version added."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def save_checkpoint(
    path: str | Path, model: nn.Module, meta: CheckpointMeta, **extra: Any
) -> Path:
    """Write weights + meta (+ e.g. training state) atomically: temp file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = _unwrap(model).state_dict()
    payload = {"format": FORMAT, "version": VERSION, "meta": dataclasses.asdict(meta)}
    payload.update(extra)
    payload["state_dict"] = state
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as file:  # a file object: a full disk surfaces as ENOSPC
            torch.save(payload, file)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        cause = _os_error(error)
        if cause is None:
            raise
        kept = f"; {path.name} keeps its previous content" if path.exists() else ""
        message = f"{describe_os_error(cause, path)} (checkpoint not written{kept})"
        raise MarsError(message) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _os_error(error: BaseException) -> OSError | None:
    """The OS error behind ``error`` (torch wraps a failed write in a RuntimeError)."""
    while error is not None:
        if isinstance(error, OSError) and error.strerror:
            return error
        error = error.__cause__ or error.__context__
    return None


def read_checkpoint(
    path: str | Path, *, arch: str | None = None, class_names: list[str] | None = None
) -> tuple[dict[str, torch.Tensor], CheckpointMeta, dict[str, Any]]:
    """Read either format into (state_dict, meta, raw payload) without building a model."""
    raw = _safe_load(Path(path))
    if raw.get("format") == FORMAT:
        meta = CheckpointMeta.from_dict(raw["meta"])
        state = raw["state_dict"]
    else:
        state, meta = _read_foreign(Path(path), raw, arch)
    if class_names is not None:
        if len(class_names) != meta.num_classes:
            raise MarsError(
                f"{path}: {len(class_names)} class names given but the classifier has "
                f"{meta.num_classes} outputs"
            )
        meta.class_names = list(class_names)
    return state, meta, raw


def load_checkpoint(
    path: str | Path,
    *,
    arch: str | None = None,
    class_names: list[str] | None = None,
    expect_modality: str | None = None,
    expect_num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, CheckpointMeta]:
    """Build the model a checkpoint (ours or a released MARS ``.pth``) describes.

    Modality and class count are inferred from the weights (conv1 in-channels, fc
    shape). ``expect_*`` turn a wrong file into a clear error rather than a crash later.
    """
    state, meta, _ = read_checkpoint(path, arch=arch, class_names=class_names)
    if expect_modality and meta.modality != expect_modality:
        raise MarsError(
            f"{path}: a {meta.modality} checkpoint ({meta.in_channels} input channels), "
            f"but a {expect_modality} model is needed"
        )
    if expect_num_classes is not None and meta.num_classes != expect_num_classes:
        raise MarsError(
            f"{path}: the classifier has {meta.num_classes} classes, expected {expect_num_classes}"
        )
    model = build_model(meta.arch, in_channels=meta.in_channels, num_classes=meta.num_classes)
    load_state_dict_exactly(model, state, source=str(path))
    return model.to(device).eval(), meta


def load_state_dict_exactly(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load all weights or none: one error lists missing, unexpected and mis-shaped keys.

    ``num_batches_tracked`` may be absent (files saved before PyTorch 0.4.1).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    groups = (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
    for label, keys in groups:
        if keys:
            shown = ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8})" if len(keys) > 8 else "")
            problems.append(f"{len(keys)} {label}: {shown}")
    if problems:
        raise MarsError(f"{source}: weights do not fit the model; " + "; ".join(problems))
    model.load_state_dict(state, strict=False)


# --- the released MARS files and other toolkits' weights -------------------------------

# MARS_Kinetics_16f.pth, Flow_HMDB51_64f.pth, RGB_UCF101_16f.pth, ...
_RELEASED_NAME = re.compile(r"^(RGB|Flow|MARS|MERS)_(.+?)_(\d+)f", re.IGNORECASE)


def _read_foreign(
    path: Path, raw: dict, arch: str | None
) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """Weights of the MARS release, Hara's 3D-ResNets, torchvision or PyTorchVideo, as ours.

    The layout is recognised from the key names and mapped by its key table
    (:mod:`~mars_action.models.foreign`); the architecture comes from ``arch``, the
    file's ``arch`` entry, or the layout itself where it tells (torchvision, X3D), and
    the layout may refine it (Hara's shortcut A: ``resnet18`` -> ``resnet18_a``).
    """
    weights = unwrap(raw)
    try:
        source = SOURCES[detect_source(weights)]
    except MarsError as error:
        raise MarsError(f"{path}: {error}") from None
    state = source.filter_fn(weights)
    convs = [value for value in state.values() if value.dim() == 5]
    if not convs or "fc.weight" not in state:
        raise MarsError(f"{path}: not a video classifier checkpoint (no conv / fc.weight)")
    name = arch or raw.get("arch") or (source.arch(weights) if source.arch else None)
    if name is None:
        raise MarsError(f"{path}: the file names no architecture; pass arch= (--arch)")
    name = canonical_name(str(name))
    if source.variant is not None:
        try:
            name = source.variant(name, state, raw)
        except MarsError as error:
            raise MarsError(f"{path}: {error}") from None
    in_channels = int(convs[0].shape[1])
    meta = CheckpointMeta(
        arch=name,
        in_channels=in_channels,
        num_classes=int(state["fc.weight"].shape[0]),
        stream="flow" if in_channels == 2 else "rgb",
        provenance={"source": _SOURCE_NAMES[source.name], "file": path.name},
    )
    match = _RELEASED_NAME.match(path.name)
    if match:
        meta.stream = match.group(1).lower()
        meta.clip_len = int(match.group(3))
        meta.provenance["dataset"] = match.group(2)
    if "epoch" in raw:
        meta.provenance["epoch"] = int(raw["epoch"])
    return state, meta


_SOURCE_NAMES = {
    "hara": "released MARS code",  # and Hara's 3D-ResNets, whose layout it kept
    "torchvision": "torchvision.models.video",
    "pytorchvideo": "PyTorchVideo",
    "pytorchvideo_r2plus1d": "PyTorchVideo",
}


def _safe_load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MarsError(_not_a_file(path))
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise MarsError(f"cannot read checkpoint {describe_os_error(error, path)}") from None
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():
            raise MarsError(
                f"{path}: not a readable checkpoint: it holds non-tensor objects (pickled "
                "Python classes or code), refused so that no code in it runs"
            ) from None
        raise MarsError(f"{path}: not a readable checkpoint ({_first_line(error)})") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError) as error:
        raise MarsError(f"{path}: not a readable checkpoint ({_first_line(error)})") from None
    if not isinstance(raw, dict):
        raise MarsError(f"{path}: not a checkpoint (a {type(raw).__name__}, not a dict)")
    return raw


def _not_a_file(path: Path) -> str:
    """Why ``path`` is not a readable file, naming it: nothing there, a link loop, a folder."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return f"{path}: no such checkpoint file"
    except OSError as error:
        return describe_os_error(error, path)
    return f"{path}: not a checkpoint file (a folder?)"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP/DataParallel, so saved keys never carry ``module.``."""
    return model.module if hasattr(model, "module") else model


def read_labels(path: str | Path) -> list[str]:
    """Class names from a text file: one per line, or ``index name`` (UCF101 classInd)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise MarsError(f"{path}: cannot read labels ({error.strerror})") from None
    names = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        first, _, rest = line.partition(" ")
        names.append(rest.strip() if first.isdigit() and rest.strip() else line)
    if not names:
        raise MarsError(f"{path}: no class names in the file")
    return names
