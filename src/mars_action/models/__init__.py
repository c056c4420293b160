"""3D ResNet/ResNeXt models, built by name, and their checkpoints."""

from mars_action.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "mars_action.models.checkpoint": (
            "CheckpointMeta",
            "load_checkpoint",
            "read_checkpoint",
            "read_labels",
            "save_checkpoint",
        ),
        "mars_action.models.complexity": ("count_macs", "count_parameters"),
        "mars_action.models.registry": ("build_model", "list_models"),
        "mars_action.models.resnet3d": ("FEATURE_NAMES", "ResNet3d"),
    },
)
