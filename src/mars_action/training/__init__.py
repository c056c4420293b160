"""Losses (MARS, MERS), optimizers and schedules, the training loop.

Entry points::

    from mars_action.training import load_experiment, train
    config = load_experiment("configs/paper/ucf101_mars_16f.yaml", ["distill.teacher=flow.pt"])
    summary = train(config, "runs/ucf101_mars_16f")   # or resume=True
"""

from mars_action.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "mars_action.training.config": (
            "DataConfig",
            "DistillConfig",
            "ExperimentConfig",
            "MersConfig",
            "ModelConfig",
            "OptimConfig",
            "ScheduleConfig",
            "TrainConfig",
            "load_experiment",
            "recipe_defaults",
            "resolve",
        ),
        "mars_action.training.engine": ("NonFiniteLoss",),
        "mars_action.training.losses": (
            "Objective",
            "Phase",
            "StreamLoss",
            "Student",
            "plan_phases",
        ),
        "mars_action.training.trainer": ("RunSummary", "train"),
    },
)
