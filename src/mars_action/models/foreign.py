"""Weights from other toolkits: one pure ``filter_fn`` per source, written as key tables.

Each table is a list of :class:`Rename` rules, prefixes with numbered placeholders,
read both ways (the reverse direction writes our weights in the source's layout,
which is how the tests check every table). The first rule whose prefix matches a
key renames it; a key no rule matches keeps its name, and the loader then lists it
as unexpected, so nothing is dropped silently.

Sources (the layout is recognised from the keys, :func:`detect_source`):

- ``torchvision``: ``torchvision.models.video`` ``r3d_18``, ``mc3_18``, ``r2plus1d_18``
  (and R(2+1)D-34 files in the same layout, e.g. the IG-65M releases).
- ``pytorchvideo``: PyTorchVideo's ``create_x3d`` (``x3d_xs``/``s``/``m``/``l`` hub
  files; PySlowFast-style ``{"model_state": ...}`` wrappers are unwrapped).
- ``pytorchvideo_r2plus1d``: PyTorchVideo's ``create_r2plus1d`` (the ``r2plus1d_r50``
  hub file, ``{"model_state": ...}``) into ``r2plus1d_50``.
- ``hara``: Hara et al.'s 3D-ResNets-PyTorch (ResNet-18..101, ResNeXt-101), the code
  the MARS release grew from: the same names, behind DataParallel's prefix. Its
  ResNet-18/34 Kinetics files use shortcut A (no ``downsample`` keys) and load into
  ``resnet18_a``/``resnet34_a`` (:func:`hara_arch`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mars_action.errors import MarsError
from mars_action.models.registry import list_models


@dataclass(frozen=True)
class Rename:
    """``theirs`` -> ``ours``: key prefixes where ``{name}`` stands for a number.

    Example: ``Rename("layer{l}.{b}.conv{n}.0.0.", "layer{l}.{b}.conv{n}s.")`` turns
    ``layer1.0.conv2.0.0.weight`` into ``layer1.0.conv2s.weight``.
    """

    theirs: str
    ours: str

    def apply(self, key: str, reverse: bool = False) -> str | None:
        """The renamed key, or None when the rule does not match."""
        source, target = (self.ours, self.theirs) if reverse else (self.theirs, self.ours)
        match = _pattern(source).match(key)
        if match is None:
            return None
        return target.format(**match.groupdict()) + key[match.end() :]


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)  # literal, name, literal, name, ...
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>\\d+)" for i, part in enumerate(parts)
    )
    return re.compile("^" + regex)


def rename(state: dict[str, torch.Tensor], rules: tuple[Rename, ...], reverse: bool = False):
    """A new dict with every key renamed by the first matching rule."""
    out = {}
    for key, value in state.items():
        for rule in rules:
            new = rule.apply(key, reverse)
            if new is not None:
                key = new
                break
        out[key] = value
    return out


# --- torchvision.models.video ---------------------------------------------------------

_TV_R2PLUS1D = (
    Rename("stem.0.", "stem.conv1s."),  # stem.0.weight: the 1x7x7 conv to 45 channels
    Rename("stem.1.", "stem.bn1s."),
    Rename("stem.3.", "stem.conv1t."),  # stem.3.weight: the 3x1x1 conv to 64
    Rename("stem.4.", "stem.bn1t."),
    Rename("layer{l}.{b}.conv{n}.0.0.", "layer{l}.{b}.conv{n}s."),  # spatial 1x3x3
    Rename("layer{l}.{b}.conv{n}.0.1.", "layer{l}.{b}.bn{n}s."),  # BN between the two
    Rename("layer{l}.{b}.conv{n}.0.3.", "layer{l}.{b}.conv{n}t."),  # temporal 3x1x1
    Rename("layer{l}.{b}.conv{n}.1.", "layer{l}.{b}.bn{n}t."),  # layer1.0.conv1.1.bias
)
_TV_R3D = (
    Rename("stem.0.", "stem.conv1."),  # stem.0.weight (64, 3, 3, 7, 7)
    Rename("stem.1.", "stem.bn1."),
    Rename("layer{l}.{b}.conv{n}.0.", "layer{l}.{b}.conv{n}."),  # layer2.0.conv1.0.weight
    Rename("layer{l}.{b}.conv{n}.1.", "layer{l}.{b}.bn{n}."),  # layer2.0.conv1.1.weight
)
# downsample.0/1 and fc.* already match.


def torchvision_filter_fn(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's ``VideoResNet`` keys -> ours (R(2+1)D when the stem is factorised)."""
    return rename(state, _TV_R2PLUS1D if "stem.3.weight" in state else _TV_R3D)


def torchvision_arch(state: dict[str, torch.Tensor]) -> str:
    """``r3d_18``, ``mc3_18``, ``r2plus1d_18`` or ``r2plus1d_34``, from the keys and shapes."""
    if "stem.3.weight" in state:
        return "r2plus1d_34" if "layer3.5.conv1.1.weight" in state else "r2plus1d_18"
    kernel = tuple(state["layer2.0.conv1.0.weight"].shape[2:])
    return "mc3_18" if kernel == (1, 3, 3) else "r3d_18"


# --- PyTorchVideo X3D ------------------------------------------------------------------

_PTV_X3D = (
    # PyTorchVideo's stem passes the spatial conv as ``conv_t`` and the temporal one as
    # ``conv_xy`` (create_x3d_stem), so the names cross over here.
    Rename("blocks.0.conv.conv_t.", "stem.conv_xy."),  # (24, 3, 1, 3, 3)
    Rename("blocks.0.conv.conv_xy.", "stem.conv1."),  # (24, 1, 5, 1, 1), channel-wise
    Rename("blocks.0.norm.", "stem.bn1."),
    Rename("blocks.{s}.res_blocks.{b}.branch1_conv.", "layer{s}.{b}.downsample.0."),
    Rename("blocks.{s}.res_blocks.{b}.branch1_norm.", "layer{s}.{b}.downsample.1."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.conv_a.", "layer{s}.{b}.conv1."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.norm_a.", "layer{s}.{b}.bn1."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.conv_b.", "layer{s}.{b}.conv2."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.norm_b.0.", "layer{s}.{b}.bn2."),
    # fvcore's SqueezeExcitation: block = (conv, ReLU, conv, Sigmoid)
    Rename("blocks.{s}.res_blocks.{b}.branch2.norm_b.1.block.0.", "layer{s}.{b}.se.reduce."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.norm_b.1.block.2.", "layer{s}.{b}.se.expand."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.conv_c.", "layer{s}.{b}.conv3."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.norm_c.", "layer{s}.{b}.bn3."),
    Rename("blocks.5.pool.pre_conv.", "conv5.0."),  # (432, 192, 1, 1, 1)
    Rename("blocks.5.pool.pre_norm.", "conv5.1."),
    Rename("blocks.5.pool.post_conv.", "head."),  # (2048, 432, 1, 1, 1) -> Linear (2048, 432)
    Rename("blocks.5.proj.", "fc."),
)
_LINEAR_FROM_CONV = ("head.weight",)  # 1x1x1 convs on a pooled vector, kept as nn.Linear


def pytorchvideo_x3d_filter_fn(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """PyTorchVideo ``create_x3d`` keys -> ours; its 1x1x1 ``post_conv`` becomes a Linear."""
    out = rename(state, _PTV_X3D)
    return {k: v.flatten(1) if k in _LINEAR_FROM_CONV and v.dim() == 5 else v
            for k, v in out.items()}


def pytorchvideo_x3d_arch(state: dict[str, torch.Tensor]) -> str:
    """``x3d_l`` (25 blocks in stage 3) or ``x3d_s`` (11: X3D-XS, S and M share it)."""
    return "x3d_l" if "blocks.3.res_blocks.24.branch2.conv_a.weight" in state else "x3d_s"


# --- PyTorchVideo R(2+1)D ----------------------------------------------------------------

_PTV_R2PLUS1D = (
    Rename("blocks.0.conv.", "stem.conv1."),  # (64, 3, 1, 7, 7)
    Rename("blocks.0.norm.", "stem.bn1."),
    Rename("blocks.{s}.res_blocks.{b}.branch1_conv.", "layer{s}.{b}.downsample.0."),
    Rename("blocks.{s}.res_blocks.{b}.branch1_norm.", "layer{s}.{b}.downsample.1."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.conv_a.", "layer{s}.{b}.conv1."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.norm_a.", "layer{s}.{b}.bn1."),
    # Conv2plus1d: conv_t (3x1x1), its norm, then conv_xy (1x3x3); norm_b follows conv_xy
    Rename("blocks.{s}.res_blocks.{b}.branch2.conv_b.conv_t.", "layer{s}.{b}.conv2t."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.conv_b.norm.", "layer{s}.{b}.bn2t."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.conv_b.conv_xy.", "layer{s}.{b}.conv2s."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.norm_b.", "layer{s}.{b}.bn2s."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.conv_c.", "layer{s}.{b}.conv3."),
    Rename("blocks.{s}.res_blocks.{b}.branch2.norm_c.", "layer{s}.{b}.bn3."),
    Rename("blocks.5.proj.", "fc."),  # blocks.5.proj.weight (400, 2048)
)


def pytorchvideo_r2plus1d_filter_fn(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """PyTorchVideo ``create_r2plus1d`` keys -> ours (``r2plus1d_50``)."""
    return rename(state, _PTV_R2PLUS1D)


def pytorchvideo_r2plus1d_arch(state: dict[str, torch.Tensor]) -> str:
    """``r2plus1d_50``, the depth of the model zoo's ``r2plus1d_r50`` (6 blocks in stage
    3); ``create_r2plus1d``'s R101/R152 (23, 36) are not models here."""
    blocks = sum(1 for k in state if re.match(r"blocks\.3\.res_blocks\.\d+\.branch2\.conv_a\.w", k))
    if blocks != 6:
        raise MarsError(f"a PyTorchVideo R(2+1)D with {blocks} blocks in stage 3; only its "
                        "R50 (6 blocks) is a model here (r2plus1d_50)")
    return "r2plus1d_50"


# --- Hara et al. 3D-ResNets (and the MARS release) -------------------------------------

_HARA = (Rename("module.", ""),)  # module.layer1.0.conv2.weight -> layer1.0.conv2.weight


def hara_filter_fn(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hara's 3D-ResNets keys -> ours: only DataParallel's prefix differs."""
    return rename(state, _HARA)


_BLOCK_IN = re.compile(r"^(layer\d+\.\d+)\.conv1\.weight$")  # layer2.0.conv1.weight


def hara_shortcut(state: dict[str, torch.Tensor]) -> str:
    """``"A"`` when a block changes width with no ``downsample`` weights, else ``"B"``.

    Hara's ``--resnet_shortcut A`` (resnet-18/34-kinetics.pth) is parameter-free, so
    its files only show it by what they lack: ``layer2.0`` goes from 64 to 128
    channels without a ``layer2.0.downsample.0.weight``. ``state`` has our key names.
    """
    for key, weight in state.items():
        match = _BLOCK_IN.match(key)
        if match is None:
            continue
        block = match.group(1)
        last = state.get(f"{block}.conv3.weight", state.get(f"{block}.conv2.weight"))
        changes_width = last is not None and last.shape[0] != weight.shape[1]
        if changes_width and f"{block}.downsample.0.weight" not in state:
            return "A"
    return "B"


def hara_arch(name: str, state: dict[str, torch.Tensor], raw: dict) -> str:
    """Our name for a Hara file declared as ``name`` (``resnet18``): its shortcut-A
    twin (``resnet18_a``) when the file's ``shortcut_type`` or its keys say A.

    The files name the depth (``arch: "resnet-18"``) but not the shortcut, which
    changes the network; ``state`` has our key names.
    """
    declared = raw.get("shortcut_type", raw.get("resnet_shortcut"))
    shortcut = str(declared).upper() if declared is not None else hara_shortcut(state)
    base = name.removesuffix("_a")
    if shortcut != "A":
        return base
    if f"{base}_a" not in list_models():
        known = ", ".join(n for n in list_models() if n.endswith("_a"))
        raise MarsError(f"a {base} with shortcut A (no downsample weights) is not a model "
                        f"here; shortcut-A models: {known}")
    return f"{base}_a"


@dataclass(frozen=True)
class Source:
    """A toolkit's layout: how to rename its keys, and which of our models it fills."""

    name: str
    filter_fn: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    rules: tuple[Rename, ...]
    arch: Callable[[dict[str, torch.Tensor]], str] | None  # None: the file must name it
    # (name, our-keyed state, raw file) -> the model that fits, when the name alone is not
    # enough (Hara's shortcut A)
    variant: Callable[[str, dict[str, torch.Tensor], dict], str] | None = None


SOURCES = {
    "torchvision": Source("torchvision", torchvision_filter_fn, _TV_R2PLUS1D + _TV_R3D,
                          torchvision_arch),
    "pytorchvideo": Source("pytorchvideo", pytorchvideo_x3d_filter_fn, _PTV_X3D,
                           pytorchvideo_x3d_arch),
    "pytorchvideo_r2plus1d": Source("pytorchvideo_r2plus1d", pytorchvideo_r2plus1d_filter_fn,
                                    _PTV_R2PLUS1D, pytorchvideo_r2plus1d_arch),
    "hara": Source("hara", hara_filter_fn, _HARA, None, hara_arch),
}


def unwrap(raw: dict) -> dict[str, torch.Tensor]:
    """The weights inside a file: ``state_dict`` (Hara, MARS), ``model_state`` (PySlowFast)."""
    for key in ("state_dict", "model_state"):
        if isinstance(raw.get(key), dict):
            return raw[key]
    return raw


def detect_source(state: dict[str, torch.Tensor]) -> str:
    """Which toolkit wrote ``state``, from its key names."""
    if "blocks.0.conv.conv_t.weight" in state:
        return "pytorchvideo"
    if "blocks.1.res_blocks.0.branch2.conv_b.conv_t.weight" in state:
        return "pytorchvideo_r2plus1d"
    if "stem.0.weight" in state:
        return "torchvision"
    if any(k.removeprefix("module.") == "conv1.weight" for k in state):
        return "hara"
    shown = ", ".join(list(state)[:3])
    raise MarsError(f"weights of an unknown layout (first keys: {shown}); known: "
                    f"{', '.join(SOURCES)} and this project's checkpoints")
