"""3D ResNet/ResNeXt models, built by name, and their checkpoints."""

from mars_action.models import zoo as _zoo  # noqa: F401  (registers the builders)
from mars_action.models.checkpoint import (
    CheckpointMeta,
    load_checkpoint,
    read_checkpoint,
    read_labels,
    save_checkpoint,
)
from mars_action.models.complexity import count_macs, count_parameters
from mars_action.models.registry import build_model, list_models
from mars_action.models.resnet3d import FEATURE_NAMES, ResNet3d

__all__ = [
    "FEATURE_NAMES",
    "CheckpointMeta",
    "ResNet3d",
    "build_model",
    "count_macs",
    "count_parameters",
    "list_models",
    "load_checkpoint",
    "read_checkpoint",
    "read_labels",
    "save_checkpoint",
]
