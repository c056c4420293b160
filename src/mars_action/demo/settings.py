"""What the demo runs: the dataset, the recipe of the four streams (and of MARS's
motion pretraining), and where files go.

Two presets: :meth:`DemoSettings.full` (the demo: about 7 minutes on 2 CPU cores)
and :meth:`DemoSettings.quick` (every stage on a dozen tiny videos in seconds; its
accuracies mean nothing). The recipe was chosen on the validation split of the
synthetic set; ``benchmarks/paper_claims/README.md`` tells why each value differs
from the paper's where it does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from mars_action.data import SCALES
from mars_action.data.synthetic import MANIFEST, SynthSpec, spec_with_classes
from mars_action.training import (
    DataConfig,
    DistillConfig,
    ExperimentConfig,
    MersConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
)

# Training order: the Flow stream first, it is the teacher of MERS and MARS.
STREAMS = ("flow", "rgb", "mers", "mars")
# A training step that is not a stream (no classifier, not tested, not in the tables): the
# RGB network regresses its clips' own flow, no teacher, no labels (``mars pretrain`` with
# ``distill.flow_regression``); the start of the streams in ``DemoSettings.from_pretrain``.
PRETRAIN = "pretrain"
# A control for the distilled streams' head start: the RGB stream fine-tuned from its
# own weights with the same recipe, so it has trained exactly as long as MARS and MERS.
RGB_CONTINUED = "rgb_continued"


@dataclass(frozen=True)
class RealData:
    """A dataset already on disk (e.g. the UCF101 subset), in one of the data stage's formats.

    Attributes:
        format: ``ucf101``, ``hmdb51``, ``manifest``... (``mars_action.data.FORMATS``).
        root: the videos, ``<root>/<class>/<video>.<ext>``.
        annotations: the format's annotation file or folder (None: the format's default).
        fold: split number of UCF101 / HMDB51.
        fps, short_side: frames extracted at this rate and size (small: TV-L1 on a CPU).
    """

    format: str
    root: str
    annotations: str | None = None
    fold: int = 1
    fps: float = 25.0
    short_side: int = 64


@dataclass(frozen=True)
class DemoSettings:
    """The dataset and the recipe of the demo (plain data: saved beside the results).

    Attributes:
        source: the synthetic dataset to generate, or a dataset on disk.
        clip_len, crop_size: network input, frames x pixels.
        crop_scales: training crop sides, as fractions of the short side (the paper's
            largest two: its smaller crops often miss the object on tiny frames).
        batch_size: clips per step.
        epochs: of every stream; MERS's include its classifier epochs.
        lr: SGD learning rate (the paper's 0.1), cosine decay to 0.
        alpha: weight of the feature MSE of MARS and MERS.
        mars_feature, mars_pool_maps: what MARS distils: the ``layer3`` maps, not pooled.
        mers_hint: maps MERS mimics besides the pooled feature its classifier reads (the
            pooled feature alone collapses onto the teacher's mean feature here).
        from_rgb: the distilled streams that start from the trained RGB stream's weights
            (the paper starts them from Kinetics-pretrained weights on its small datasets;
            from scratch, MERS's mimicking loss barely moves on a few hundred videos).
        from_pretrain: the distilled streams that start from the :data:`PRETRAIN` step
            instead (trained first, on the same training videos, ``epochs`` long): MARS,
            chosen on validation in ``benchmarks/motion_transfer`` (last-10-epoch mean
            73.2 vs 64.4 from the RGB stream on the synthetic set, 32.8 vs 29.0 on the
            UCF101 subset), and it does not copy RGB's appearance bias. Wins over
            ``from_rgb``; empty: no pretraining step.
        flow_layer: the maps that regress the flow in the pretraining step.
        mers_classifier_epochs: MERS step 2 (classifier only) epochs.
        val_fraction: share of each class's training videos held out to pick epochs.
        split_seed: seed of that held-out draw (fixed across training seeds, so that
            the teacher never trained on a student's validation videos).
        rgb_control: also train and test :data:`RGB_CONTINUED` (one more RGB training).
        scale_flow_vectors: flow in pixels of the network input (see ``TrainTransform``).
        seed: training seed (initial weights, clip sampling).
        threads: torch CPU threads (None: torch's default).
    """

    source: SynthSpec | RealData
    clip_len: int = 16
    crop_size: int = 28
    crop_scales: tuple[float, ...] = SCALES[:2]
    batch_size: int = 16
    epochs: int = 60
    lr: float = 0.1
    alpha: float = 20.0
    mars_feature: str = "layer3"
    mars_pool_maps: bool = False
    mers_hint: str | None = "layer3"
    from_rgb: tuple[str, ...] = ("mers",)
    from_pretrain: tuple[str, ...] = ("mars",)
    flow_layer: str = "layer3"
    rgb_control: bool = False
    scale_flow_vectors: bool = True
    mers_classifier_epochs: int = 5
    val_fraction: float = 0.15
    split_seed: int = 0
    seed: int = 0
    threads: int | None = None

    @classmethod
    def full(cls) -> DemoSettings:
        """The demo: differences between streams a reader can trust, in minutes."""
        spec = spec_with_classes(8, videos_per_class=80, height=32, width=32, num_frames=24,
                                 speed=(0.6, 1.3))
        return cls(source=spec)

    @classmethod
    def on_disk(cls, format: str, root: str, annotations: str | None = None) -> DemoSettings:
        """The demo's recipe on a dataset on disk, frames at 48 px and 40 px crops (TV-L1 at
        this size is minutes on a CPU, at 256 px hours): the walkthrough of the README on
        the UCF101 subset, and ``benchmarks/paper_claims``'s UCF101 runs."""
        source = RealData(format=format, root=str(root), annotations=annotations, fps=25.0,
                          short_side=48)
        return dataclasses.replace(cls.full(), source=source, crop_size=40)

    @classmethod
    def quick(cls) -> DemoSettings:
        """Every stage on a handful of tiny videos: checks the plumbing, not the method."""
        spec = spec_with_classes(3, videos_per_class=4, test_fraction=0.25, height=32, width=32,
                                 num_frames=10, speed=(0.6, 1.3))
        return cls(source=spec, clip_len=8, crop_size=24, batch_size=4, epochs=2, lr=0.01,
                   mers_classifier_epochs=1, val_fraction=0.34)

    @property
    def streams(self) -> tuple[str, ...]:
        """What the demo tests and reports, in training order."""
        return STREAMS + ((RGB_CONTINUED,) if self.rgb_control else ())

    @property
    def trainings(self) -> tuple[str, ...]:
        """What the demo trains, in order: the streams, with the pretraining step (when a
        stream starts from it) before the distilled streams."""
        step = (PRETRAIN,) if self.from_pretrain else ()
        return (*STREAMS[:2], *step, *self.streams[2:])

    def to_dict(self) -> dict:
        """Plain JSON-able data with the kind of source: the demo folder keeps it to refuse
        a second run with other settings, and the paper-claims results record it."""
        return {"source_kind": type(self.source).__name__, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Layout:
    """Where each stage writes: runs and results under ``root``; videos, frames and flow
    under ``store`` (default ``root``), which runs of several seeds can share."""

    root: Path
    shared: Path | None = None

    @property
    def store(self) -> Path:
        """Where the videos, frames and flow live: shared by seeds when given, since
        TV-L1 dominates the demo's time and does not depend on the seed."""
        return self.shared or self.root

    @property
    def data(self) -> Path:
        """The generated synthetic videos (a dataset on disk is read where it is)."""
        return self.store / "data"

    @property
    def manifest(self) -> Path:
        """The synthetic set's manifest: labels and its train/test split."""
        return self.data / MANIFEST

    @property
    def frames(self) -> Path:
        """The frame store, with the TV-L1 flow beside the frames."""
        return self.store / "frames"

    @property
    def runs(self) -> Path:
        """One ``mars train`` run folder per training (per seed: under ``root``)."""
        return self.root / "runs"

    def run(self, stream: str) -> Path:
        """The run folder of one stream or of the pretraining step."""
        return self.runs / stream

    def checkpoint(self, stream: str) -> Path:
        """The checkpoint the demo tests and that later streams start or distil from."""
        return self.run(stream) / "checkpoints" / "best.pt"

    @property
    def scores(self) -> Path:
        """Score files of every stream on normal and static clips (read back, not
        recomputed, when the demo runs again)."""
        return self.root / "scores"

    @property
    def analysis(self) -> Path:
        """Table 1 as text and the static-clip figure."""
        return self.root / "analysis"

    @property
    def report(self) -> Path:
        """The HTML report, the first thing to open."""
        return self.root / "report.html"

    @property
    def settings(self) -> Path:
        """The settings the folder was made with: a run with others is refused, not mixed."""
        return self.root / "demo-settings.json"

    @property
    def results(self) -> Path:
        """Every number of the run (tables, static clips, stage times) as JSON."""
        return self.root / "results.json"


def stream_config(stream: str, settings: DemoSettings, layout: Layout) -> ExperimentConfig:
    """The ``mars train`` experiment of one stream of the demo (resnet10_tiny, SGD, cosine),
    or of the :data:`PRETRAIN` step (``mars pretrain``'s: flow regression, no teacher)."""
    kind = "rgb" if stream == RGB_CONTINUED else stream
    distilled = kind in ("mars", "mers")
    pretrain = kind == PRETRAIN
    videos = video_source(settings, layout)
    return ExperimentConfig(
        name=f"demo_{stream}",
        stream=kind,
        recipe="paper",
        data=DataConfig(
            format=videos.format,
            root=videos.root,
            annotations=videos.annotations,
            fold=videos.fold,
            frame_root=str(layout.frames),
            val_fraction=settings.val_fraction,
            seed=settings.split_seed,
            clip_len=settings.clip_len,
            crop_size=settings.crop_size,
            fps=videos.fps,
            short_side=videos.short_side,
            scale_flow_vectors=settings.scale_flow_vectors,
            batch_size=settings.batch_size,
            num_workers=0,
        ),
        model=ModelConfig(arch="resnet10_tiny",
                          pretrained=_initial_weights(stream, settings, layout)),
        optim=OptimConfig(lr=settings.lr),
        schedule=ScheduleConfig(epochs=settings.epochs, scheduler="cosine"),
        distill=DistillConfig(
            teacher=str(layout.checkpoint("flow")) if distilled else None,
            alpha=0.0 if pretrain else settings.alpha,
            flow_regression=1.0 if pretrain else 0.0,
            flow_layer=settings.flow_layer,
            feature=settings.mars_feature if stream == "mars" else "pooled",
            pool_maps=settings.mars_pool_maps if stream == "mars" else True,
            hint=settings.mers_hint if stream == "mers" else None,
        ),
        mers=MersConfig(variant="sequential", classifier_epochs=settings.mers_classifier_epochs),
        train=TrainConfig(device="auto", seed=settings.seed, threads=settings.threads),
    )


def _initial_weights(stream: str, settings: DemoSettings, layout: Layout) -> str | None:
    """A distilled stream fine-tunes the pretraining step or the RGB stream when asked (the
    control always the RGB stream); the others start from scratch."""
    if stream in settings.from_pretrain:
        return str(layout.checkpoint(PRETRAIN))
    if stream in settings.from_rgb or stream == RGB_CONTINUED:
        return str(layout.checkpoint("rgb"))
    return None


def video_source(settings: DemoSettings, layout: Layout) -> RealData:
    """Where the videos are and how frames are taken from them, synthetic or not."""
    source = settings.source
    if isinstance(source, RealData):
        return source
    return RealData(format="manifest", root=str(layout.data), annotations=str(layout.manifest),
                    fps=source.fps, short_side=min(source.height, source.width))
