"""Model builders by name: a small dict that refuses duplicate names."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from mars_action.errors import MarsError

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
# Modules whose import registers builders. Imported on the first lookup, not by the
# package's __init__, so that importing a light module of the package loads no torch.
ZOO_MODULES = ("mars_action.models.zoo",)


def _builders() -> dict[str, Callable[..., nn.Module]]:
    for module in ZOO_MODULES:
        importlib.import_module(module)
    return _BUILDERS


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name (``resnext101`` etc.)."""
    name = fn.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = fn
    return fn


def list_models() -> list[str]:
    """Every registered name (what ``build_model`` accepts)."""
    return sorted(_builders())


def build_model(name: str, *, in_channels: int = 3, num_classes: int = 400) -> nn.Module:
    """Build a model by name, e.g. ``build_model("resnext101", in_channels=2)``."""
    key = name.lower().replace("-", "").replace("_", "")
    lookup = {n.replace("_", ""): n for n in _builders()}
    if key not in lookup:
        raise MarsError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _BUILDERS[lookup[key]](in_channels=in_channels, num_classes=num_classes)


def canonical_name(name: str) -> str:
    """Our registry name for an alias such as the released code's ``resnext-101``."""
    key = name.lower().replace("-", "").replace("_", "")
    lookup = {n.replace("_", ""): n for n in _builders()}
    if key not in lookup:
        raise MarsError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return lookup[key]
