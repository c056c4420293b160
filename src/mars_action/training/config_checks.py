"""Checks of an experiment config: every value a run reads, one line naming the bad key.

Kept apart from :mod:`mars_action.training.config` (the typed sections and the recipes)
so that the rules for what a value may be read as one list. They run at load, before any
run folder exists, so a bad value never leaves a half-made run behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mars_action.errors import MarsError
from mars_action.models import FEATURE_NAMES
from mars_action.training.distill import MAP_LAYERS, NORMALIZERS

if TYPE_CHECKING:
    from mars_action.training.config import DistillConfig, ExperimentConfig

STREAMS = ("rgb", "flow", "mars", "mers", "pretrain")
# Streams that learn from the frozen Flow teacher (``pretrain``: without labels).
DISTILLED = ("mars", "mers", "pretrain")
RECIPES = ("paper", "released")
SCHEDULERS = ("plateau", "step", "cosine", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "off")
MERS_VARIANTS = ("sequential", "joint")
CLASSIFIER_INITS = ("random", "teacher")
SELECTIONS = ("best", "last")


def check(config: ExperimentConfig) -> None:
    """Reject values that would fail later, naming the key and the allowed values."""
    _one_of("stream", config.stream, STREAMS)
    _one_of("recipe", config.recipe, RECIPES)
    _one_of("schedule.scheduler", config.schedule.scheduler, SCHEDULERS)
    _one_of("train.amp", config.train.amp, AMP_MODES)
    _one_of("mers.variant", config.mers.variant, MERS_VARIANTS)
    _one_of("mers.classifier_init", config.mers.classifier_init, CLASSIFIER_INITS)
    _one_of("train.select", config.train.select, SELECTIONS)
    if any(not 0 < s <= 1 for s in config.data.crop_scales):
        raise MarsError(f"data.crop_scales: fractions of the short side in (0, 1], got "
                        f"{config.data.crop_scales}")
    if config.data.frames is not None:
        _one_of("data.frames", config.data.frames, ("mars", "released"))
    if config.schedule.steps < 0:
        raise MarsError(f"schedule.steps: must be 0 (use epochs) or more, got "
                        f"{config.schedule.steps}")
    _check_ranges(config)
    _check_terms(config.distill)
    if config.model.frozen_bn is not None:
        _one_of("model.frozen_bn", config.model.frozen_bn, ("freeze", "update"))
    if not 0 <= config.model.ft_begin_index <= 5:
        raise MarsError(f"model.ft_begin_index: {config.model.ft_begin_index} is not in 0..5")
    for key, value in (
        ("schedule.epochs", config.schedule.epochs),
        ("data.batch_size", config.data.batch_size),
        ("train.grad_accum", config.train.grad_accum),
        ("train.eval_every", config.train.eval_every),
    ):
        if value < 1:
            raise MarsError(f"{key}: must be at least 1, got {value}")
    if config.stream in DISTILLED:
        _check_distillation(config)


def _check_terms(distill: DistillConfig) -> None:
    """The ``distill.*`` terms: known names, weights that are numbers >= 0."""
    _one_of("distill.feature", distill.feature, FEATURE_NAMES)
    _one_of("distill.normalize", distill.normalize, NORMALIZERS)
    if distill.hint is not None:
        _one_of("distill.hint", distill.hint, MAP_LAYERS)
    for key in ("hints", "attention"):
        weights = getattr(distill, key)
        if not isinstance(weights, dict):
            raise MarsError(f"distill.{key}: expected a mapping layer -> weight, got {weights!r}")
        for layer, weight in weights.items():
            _one_of(f"distill.{key}", layer, MAP_LAYERS)
            _non_negative(f"distill.{key}.{layer}", weight)
    _non_negative("distill.alpha", distill.alpha)
    _non_negative("distill.kd", distill.kd)
    _non_negative("distill.flow_regression", distill.flow_regression)
    _one_of("distill.flow_layer", distill.flow_layer, MAP_LAYERS)
    if not distill.unlabeled_ratio > 0:
        raise MarsError(f"distill.unlabeled_ratio: must be > 0, got {distill.unlabeled_ratio}")
    if not (isinstance(distill.temperature, float) and distill.temperature > 0):
        raise MarsError(f"distill.temperature: must be > 0, got {distill.temperature!r}")


def _non_negative(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise MarsError(f"{key}: must be a number >= 0, got {value!r}")


def _check_distillation(config: ExperimentConfig) -> None:
    distill = config.distill
    teacher_terms = bool(distill.alpha or distill.kd or any(distill.attention.values()))
    if not (teacher_terms or distill.flow_regression):
        raise MarsError("distill: alpha, kd, attention and flow_regression are all 0; no "
                        "teacher term (nor flow regression) is left")
    if teacher_terms and not distill.teacher:
        raise MarsError(
            f"stream {config.stream}: distill.teacher (a Flow checkpoint) is required by "
            f"distill.alpha/kd/attention (flow regression alone: distill.alpha=0 "
            f"distill.flow_regression=1)")
    if config.stream != "mers":
        return
    if config.distill.feature not in ("pooled", "layer4") or not config.distill.pool_maps:
        raise MarsError(
            "mers: distill.feature must be the pooled feature the classifier reads "
            f"(pooled, or layer4 pooled), got {config.distill.feature}"
        )
    sequential = config.mers.variant == "sequential"
    if sequential and not config.schedule.steps and not (
        0 < config.mers.classifier_epochs < config.schedule.epochs
    ):
        raise MarsError(
            f"mers.classifier_epochs: {config.mers.classifier_epochs} must be between 1 and "
            f"schedule.epochs - 1 ({config.schedule.epochs - 1}) for the sequential variant"
        )


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise MarsError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


# (key, lowest allowed, whether the lowest itself is allowed): every number a run
# reads, checked at load so a bad value is one line before any run folder exists.
_LOWER_BOUNDS = (
    ("data.clip_len", 1, True),
    ("data.crop_size", 1, True),
    ("data.stride", 1, True),
    ("data.fold", 1, True),
    ("data.short_side", 1, True),
    ("data.num_workers", 0, True),
    ("data.fps", 0, False),
    ("data.flow_scale", 0, False),
    ("optim.lr", 0, False),
    ("optim.momentum", 0, True),
    ("optim.dampening", 0, True),
    ("optim.weight_decay", 0, True),
    ("schedule.patience", 0, True),
    ("schedule.factor", 0, False),
    ("schedule.min_lr", 0, True),
    ("mers.classifier_epochs", 0, True),
    ("mers.classifier_lr", 0, False),
    ("train.save_every_steps", 0, True),
    ("train.threads", 1, True),
)
_FRACTIONS = ("data.val_fraction", "optim.momentum", "optim.dampening", "schedule.factor")


def _check_ranges(config: ExperimentConfig) -> None:
    """Numbers within their ranges (types and finiteness are checked when parsing)."""
    for key, lowest, inclusive in _LOWER_BOUNDS:
        value = _get(config, key)
        if value is not None and (value < lowest if inclusive else value <= lowest):
            sign = ">=" if inclusive else ">"
            raise MarsError(f"{key}={value}: must be {sign} {lowest}")
    for key in _FRACTIONS:
        value = _get(config, key)
        if value is not None and not 0 <= value <= 1:
            raise MarsError(f"{key}={value}: must be between 0 and 1")
    if config.data.val_fraction == 1:
        raise MarsError("data.val_fraction=1.0: must be below 1 (nothing would be left to train)")
    for milestone in config.schedule.milestones:
        if milestone < 1:
            raise MarsError(f"schedule.milestones={config.schedule.milestones}: epochs are >= 1")


def _get(config: ExperimentConfig, key: str):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)
