"""The experiment config: typed sections, the two recipes, and checks with clear errors.

A YAML file in ``configs/`` fills :class:`ExperimentConfig`; ``a.b=value`` overrides
go on top (:func:`mars_action.config.load_config`). Optimizer fields left empty
(``null``) are filled by the ``recipe``:

- ``paper`` (section 4.2): SGD momentum 0.9, no dampening, weight decay 5e-4,
  lr 0.1 (0.01 for a 64-frame Flow stream), whether from scratch or fine-tuning.
- ``released`` (the authors' code): SGD momentum 0.9, dampening 0.9, weight decay
  1e-3 from scratch; lr 1e-3 and weight decay 1e-5 when fine-tuning.

Both step the learning rate with ReduceLROnPlateau on the validation loss
(patience 10, factor 0.1): the released code does, and the paper follows its
reference [11], which does too. The resolved config (recipe applied) is what the
run folder keeps, so a run never depends on these defaults changing.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from mars_action.config import load_config, to_dict
from mars_action.errors import MarsError
from mars_action.training.config_checks import check
from mars_action.video import store


@dataclass
class DataConfig:
    """Where clips come from: the arguments of ``mars_action.data.load_annotations`` and
    ``make_dataset``. Training clips are random with multi-scale corner crops and flips;
    validation clips are the centre clip of each held-out video, centre-cropped."""

    format: str = "folder"  # ucf101 | hmdb51 | kinetics | minikinetics | sthsth-v1 | folder | ...
    root: str | None = None  # the videos (<class>/<video>.<ext>)
    annotations: str | None = None  # annotation file or folder of the format
    frame_root: str | None = None  # frame store (<class>/<video>/00001.jpg); needed for flow
    flow_root: str | None = None  # or packed flow (mars flow VIDEOS --out DIR --packed)
    fold: int = 1  # UCF101 / HMDB51 split number
    val_fraction: float = 0.1  # of each class's train videos, held out for validation
    seed: int = 0  # seed of that held-out draw (kept apart from train.seed)
    use_test_as_val: bool = False  # the released code's model selection on the test split
    clip_len: int = 16
    crop_size: int = 112
    stride: int = 1  # temporal stride inside a clip
    flow_prefix: str = "TVL1jpg_"
    flow_scale: float = 1.0  # flow input = (code - 127.5) * flow_scale
    # flow x crop_size / crop side; None: the recipe's (paper: true, released code: false)
    scale_flow_vectors: bool | None = None
    # The frame grid: None takes the frame store's (its store.json; a value that differs
    # is an error), else 25 fps and 256 px (decoding video files). Checkpoints record it.
    fps: float | None = None
    short_side: int | None = None
    on_missing: str = "error"  # empty or missing frame folders: error | skip
    flip: bool = True  # training's horizontal flips; false where a mirror changes the class
    # training crop sides as fractions of the short side; empty: the paper's five scales
    # (tiny frames: the two largest, smaller corner crops often miss the moving object)
    crop_scales: list[float] = field(default_factory=list)
    # How the frame store's frames must have been made (mars frames --preset, recorded in
    # its store.json): released | mars; null accepts any (and shipped frames)
    frames: str | None = None
    strict: bool = False  # missing videos or classes without train videos: error, not warning
    batch_size: int = 32
    num_workers: int = 4


@dataclass
class ModelConfig:
    """The network and its start: architecture, the checkpoint to fine-tune, what stays
    frozen (on UCF101 and HMDB51 the paper trains only the last block and the classifier
    of its Kinetics networks)."""

    arch: str = "resnext101"
    pretrained: str | None = None  # a checkpoint to fine-tune from (ours or a released .pth)
    ft_begin_index: int = 0  # 0: train all; k in 1..4: layer{k..4} + fc; 5: fc only
    frozen_bn: str | None = None  # frozen layers' BN statistics: "freeze" | "update" (recipe)
    channels_last: bool = False  # channels_last_3d memory layout (faster convs on GPU)
    sync_bn: bool = False  # SyncBatchNorm across processes (multi-GPU, small batches)


@dataclass
class OptimConfig:
    """SGD; ``None`` means: the recipe's value."""

    lr: float | None = None
    momentum: float | None = None
    dampening: float | None = None
    weight_decay: float | None = None
    nesterov: bool = False


@dataclass
class ScheduleConfig:
    """How long and how the learning rate falls (the recipes' plateau schedule by default,
    cosine for short runs from scratch)."""

    epochs: int = 250
    scheduler: str = "plateau"  # plateau (on val loss) | step | cosine | constant
    patience: int = 10
    factor: float = 0.1
    milestones: list[int] = field(default_factory=list)  # step: epochs where lr *= factor
    min_lr: float = 0.0
    # > 0: the length in optimizer steps; epochs become ceil(steps / steps per epoch) of
    # the training set (a small dataset trains as long as a large one); 0: ``epochs``
    steps: int = 0


@dataclass
class DistillConfig:
    """The frozen Flow teacher of MARS and MERS and what the student learns from it
    (the terms: ``mars_action.training.distill``). Defaults: the paper's MSE alone."""

    teacher: str | None = None  # a Flow checkpoint (ours or a released Flow_*.pth)
    alpha: float = 50.0  # weight of the feature MSE (0: no feature MSE)
    feature: str = "pooled"  # pooled | layer1..layer4 | logits (section 5.3 ablation)
    pool_maps: bool = True  # layerN: compare pooled vectors (else the whole maps)
    hint: str | None = None  # layer1..layer4: its whole maps compared too (FitNets hint)
    hints: dict = field(default_factory=dict)  # {layerN: weight}: more hints, inside alpha
    normalize: str = "none"  # none | standardize (teacher train-set stats) | l2
    kd: float = 0.0  # weight of T^2 KL(teacher || student) of logits (Hinton 2015)
    temperature: float = 4.0
    attention: dict = field(default_factory=dict)  # {layerN: weight}: attention transfer
    unlabeled: str | None = None  # a frame store with flow: clips for the teacher terms only
    unlabeled_ratio: float = 1.0  # unlabelled clips per labelled clip in a batch
    # weight of the teacher-free term: flow_layer maps regress the clip's own pooled flow
    # (end-point error; training/flow_regression.py). With alpha, kd, attention at 0 no
    # teacher is needed: `mars pretrain CONFIG distill.alpha=0 distill.flow_regression=1`
    flow_regression: float = 0.0
    flow_layer: str = "layer3"  # layer1..layer4


@dataclass
class MersConfig:
    """``sequential``: the paper's two steps; ``joint``: the released code's single loop."""

    variant: str = "sequential"
    classifier_epochs: int = 10  # sequential: the last epochs train only the classifier
    classifier_lr: float | None = None  # sequential step 2; None: optim.lr
    # random | teacher: the classifier starts as a copy of the Flow teacher's (it reads
    # the feature the student mimics; frozen while mimicking, then fine-tuned)
    classifier_init: str = "random"


@dataclass
class TrainConfig:
    """How the loop runs, not what it learns: device, precision, accumulation, seeds,
    checkpoint cadence and which epoch ``best.pt`` keeps."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 on CUDA where supported, else fp16; off on CPU) | ...
    grad_accum: int = 1  # micro-batches per optimizer step
    seed: int = 0
    save_every_steps: int = 0  # also checkpoint mid-epoch every N optimizer steps (0: off)
    eval_every: int = 1  # validate every N epochs (and after the last)
    progress: bool = True
    threads: int | None = None  # torch CPU threads (None: torch's default)
    select: str = "best"  # best.pt: best validation accuracy (best) or the last epoch (last)


@dataclass
class ExperimentConfig:
    """One training run, whole: what ``config.yaml`` in its run folder holds, so that the
    run can be resumed or repeated from the folder alone. ``stream`` picks the objective
    (``pretrain``: flow regression without labels, ``mars pretrain``); ``name`` defaults
    to the YAML file's stem and names the run folder."""

    name: str = ""
    stream: str = "rgb"  # rgb | flow | mars | mers
    recipe: str = "paper"  # paper | released
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    mers: MersConfig = field(default_factory=MersConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_experiment(path: str | Path | None, overrides: list[str] = ()) -> ExperimentConfig:
    """YAML + overrides -> a checked config with the recipe applied."""
    config = load_config(ExperimentConfig, path, list(overrides))
    if not config.name and path is not None:
        config.name = Path(path).stem
    return resolve(config)


def resolve(config: ExperimentConfig) -> ExperimentConfig:
    """Check the config and fill the recipe's values into the empty fields (a copy)."""
    check(config)
    config = dataclasses.replace(config)
    defaults = recipe_defaults(config)
    optim = config.optim
    config.optim = dataclasses.replace(
        optim, **{k: v for k, v in defaults.items() if getattr(optim, k) is None}
    )
    if config.model.frozen_bn is None:
        frozen_bn = "update" if config.recipe == "released" else "freeze"
        config.model = dataclasses.replace(config.model, frozen_bn=frozen_bn)
    config.data = frame_grid(config.data)
    check_frames_preset(config.data)
    if config.data.scale_flow_vectors is None:
        scaled = config.recipe != "released"
        config.data = dataclasses.replace(config.data, scale_flow_vectors=scaled)
    return config


def epochs_for_steps(config: ExperimentConfig, train_size: int) -> ExperimentConfig:
    """``schedule.steps`` as whole epochs of a training set of ``train_size`` clips (a copy;
    unchanged when ``steps`` is 0). The learning-rate schedule then spans those epochs."""
    steps = config.schedule.steps
    if not steps:
        return config
    batch = config.data.batch_size * config.train.grad_accum
    per_epoch = max(1, math.ceil(train_size / batch))
    epochs = max(1, math.ceil(steps / per_epoch))
    if config.stream == "mers" and config.mers.variant == "sequential":
        epochs = max(epochs, config.mers.classifier_epochs + 1)
    config = dataclasses.replace(config)
    config.schedule = dataclasses.replace(config.schedule, epochs=epochs)
    return config


FRAME_GRID_DEFAULTS = {"fps": 25.0, "short_side": 256}


def frame_grid(data: DataConfig) -> DataConfig:
    """``data.fps`` and ``data.short_side`` filled in (a copy): the frame store's when it
    recorded them, so the checkpoint says how its frames were made (``predict`` and
    ``stream`` make theirs the same way), else the config's, else 25 fps and 256 px.

    Raises:
        MarsError: the config names a value the store's frames were not made with.
    """
    recorded = store.frame_grid(data.frame_root) if data.frame_root else {}
    values = {}
    for key, default in FRAME_GRID_DEFAULTS.items():
        given, made = getattr(data, key), recorded.get(key)
        if made is not None and given is not None and float(given) != float(made):
            raise MarsError(
                f"data.{key}={given} contradicts the frame store {data.frame_root}: its frames "
                f"were made at {key} {made} ({store.STORE_FILE}); drop data.{key} or set it "
                f"to {made}"
            )
        values[key] = made if made is not None else given if given is not None else default
    return dataclasses.replace(data, **values)


def check_frames_preset(data: DataConfig) -> None:
    """Refuse a frame store made otherwise than ``data.frames`` says.

    Released checkpoints were trained on frames of the authors' ``ffmpeg`` command; a
    fine-tuning on other frames loses accuracy silently (craston/MARS#2), so the paper
    and released configs ask for ``released`` frames. A store that recorded no preset
    (made before presets were recorded, or shipped as frames) passes.

    Raises:
        MarsError: the store recorded another preset.
    """
    if data.frames is None or not data.frame_root:
        return
    made = store.read(data.frame_root).get(store.FRAMES, {}).get("preset")
    if made is not None and made != data.frames:
        raise MarsError(
            f"{data.frame_root}: frames made with --preset {made}, the config wants "
            f"data.frames={data.frames} (mars frames --preset {data.frames}); or set "
            f"data.frames=null to accept them"
        )


def recipe_defaults(config: ExperimentConfig) -> dict[str, float]:
    """The optimizer values of ``config.recipe`` for this stream, clip length and start."""
    finetune = config.model.pretrained is not None
    if config.recipe == "released":
        return {
            "lr": 1e-3 if finetune else 0.1,
            "momentum": 0.9,
            "dampening": 0.9,
            "weight_decay": 1e-5 if finetune else 1e-3,
        }
    long_flow = config.stream == "flow" and config.data.clip_len >= 64
    return {
        "lr": 0.01 if long_flow else 0.1,
        "momentum": 0.9,
        "dampening": 0.0,
        "weight_decay": 5e-4,
    }


# Settings a resumed run may change: they do not alter what is computed.
RESUMABLE_CHANGES = (
    "name",
    "schedule.epochs",
    "data.num_workers",
    "train.progress",
    "train.threads",
    "train.device",
    "train.save_every_steps",
    "data.strict",
)


def check_resumable(config: ExperimentConfig, saved: Path) -> None:
    """Refuse to resume a run (its ``config.yaml``) with settings that change the result."""
    if not saved.exists():
        return
    before = _flatten(to_dict(load_config(ExperimentConfig, saved)))
    after = _flatten(to_dict(config))
    changed = sorted(
        k
        for k in before.keys() | after.keys()
        if before.get(k) != after.get(k) and k not in RESUMABLE_CHANGES
    )
    if changed:
        raise MarsError(
            f"{saved}: the run was started with other settings "
            f"({', '.join(changed)}); resume with the same config or another --run-dir"
        )


def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
