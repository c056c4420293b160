"""Losses (MARS, MERS), optimizers and schedules, the training loop.

Entry points::

    from mars_action.training import load_experiment, train
    config = load_experiment("configs/paper/ucf101_mars_16f.yaml", ["distill.teacher=flow.pt"])
    summary = train(config, "runs/ucf101_mars_16f")   # or resume=True
"""

from mars_action.training.config import (
    DataConfig,
    DistillConfig,
    ExperimentConfig,
    MersConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    load_experiment,
    recipe_defaults,
    resolve,
)
from mars_action.training.engine import NonFiniteLoss
from mars_action.training.losses import Objective, Phase, StreamLoss, Student, plan_phases
from mars_action.training.trainer import RunSummary, train

__all__ = [
    "DataConfig",
    "DistillConfig",
    "ExperimentConfig",
    "MersConfig",
    "ModelConfig",
    "NonFiniteLoss",
    "Objective",
    "OptimConfig",
    "Phase",
    "RunSummary",
    "ScheduleConfig",
    "StreamLoss",
    "Student",
    "TrainConfig",
    "load_experiment",
    "plan_phases",
    "recipe_defaults",
    "resolve",
    "train",
]
