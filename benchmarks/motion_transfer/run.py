"""Motion transfer on footage never seen: the paper's recipe against new objectives.

Trains, on the UCF101 subset (official splits 1-3, one training seed each, pooled test:
every video is tested once) and on the synthetic motion set, the Flow teacher, RGB and
distilled students with the demo's pipeline pieces, tests every stream on normal and
static clips, and writes ``results.json`` and ``results.md`` here (and
``benchmarks/results/motion_transfer.json``). Flow: TV-L1 on the synthetic set,
Farneback on the UCF101 subset (see :func:`flow_prefix`). Streams (see ``STREAMS``):

- ``flow``, ``rgb``: from scratch, the demo's recipe (60 epochs, cosine, lr 0.1);
- ``rgb_control``: RGB fine-tuned from itself as long again (the control of the
  students that start from the RGB stream);
- ``mars_paper``: the demo's MARS (layer3 maps, alpha 20) started from the RGB stream;
- ``mars_std``: MARS from scratch: CE + standardised MSE of the pooled feature and of
  the layer3 maps (teacher statistics) + logit distillation (T 4);
- ``mers_std``: MERS from scratch (the paper's two steps) on the same standardised
  feature terms (no CE until the classifier step);
- ``mars_maps`` / ``mars_std_nokd``: ablations from scratch (the demo's layer3-map
  objective; the standardised terms without KD);
- ``pretrain_maps``: motion pretraining (what ``mars pretrain`` runs: the teacher terms
  alone, labels unused) on the training videos, with the layer3-map term (alpha 20);
  not tested (no classifier);
- ``mars_pre``: MARS (layer3 maps, alpha 20) started from ``pretrain_maps``: a student
  that never starts from the RGB stream. Its control is ``rgb_control`` (RGB trained as
  long, 120 epochs); the margin over ``rgb`` (same labels, same 60 labelled epochs) is
  reported too.
- ``mers_pre`` / ``mers_pre_tfc`` / ``mers_tfc``: MERS (the paper's two steps) on the raw
  pooled feature plus the layer3 maps, 50 mimic + 10 classifier epochs; from
  ``pretrain_maps`` or from scratch; ``tfc``: the classifier starts as the teacher's
  (``mers.classifier_init: teacher``) and logit KD (T 4) reaches the backbone through it
  while it is frozen.
- ``mars_at`` / ``mars_l2`` / ``mars_kd`` / ``mars_l2maps``: MARS from scratch with one
  teacher term each: attention transfer on layer3, L2-normalised pooled features, logit
  KD alone, the layer2 maps.
- ``mers_pre_unl`` (synthetic): ``mers_pre`` with unlabelled clips in every batch
  (``distill.unlabeled``): a second synthetic set, generator seed 1000, 30 videos a
  class (:func:`unlabeled_store`); never a test video.
- ``pretrain_flow`` / ``mars_preflow``: motion pretraining with no teacher (``mars
  pretrain`` with ``distill.flow_regression``: the layer3 maps regress the clip's flow
  pooled to their grid, end-point error) on the training videos, then MARS (layer3
  maps, alpha 20) from it; controls as ``mars_pre``.

A stream is tested with its last epoch's weights (``last.pt``: the cosine schedule
has reached lr 0; a handful of validation videos does not pick the epoch). The
validation split (whole UCF101 groups of the training groups, never the test
split) is kept for choosing recipes: its accuracy is in the JSON per stream.

    .venv/bin/python benchmarks/motion_transfer/run.py job ucf101 --split 1 --seed 0
    .venv/bin/python benchmarks/motion_transfer/run.py job synthetic --seed 0
    .venv/bin/python benchmarks/motion_transfer/run.py gather
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the harness
sys.path.insert(0, str(HERE))  # study_tables, also when loaded from another folder

import study_tables  # noqa: E402
from harness import write_result  # noqa: E402

from mars_action.demo.pipeline import _datasets  # noqa: E402
from mars_action.demo.settings import DemoSettings, Layout, RealData, stream_config  # noqa: E402
from mars_action.evaluation import evaluate  # noqa: E402
from mars_action.evaluation.loading import DataSettings, GuardedVideos, build_test_set  # noqa: E402
from mars_action.evaluation.static import static_transform  # noqa: E402
from mars_action.models import load_checkpoint  # noqa: E402
from mars_action.training import train  # noqa: E402

UCF101 = Path(os.environ.get("MARS_UCF101_SUBSET",
                             HERE.parents[2] / "shared" / "data" / "ucf101-subset"))
WORK = HERE / "runs"

STD_TERMS = {"normalize": "standardize", "feature": "pooled", "pool_maps": True,
             "hints": {"layer3": 1.0}, "alpha": 1.0}
MAP_TERMS = {"feature": "layer3", "pool_maps": False, "alpha": 20.0}
# "mers": settings of the config's mers section
MERS_TERMS = {"feature": "pooled", "pool_maps": True, "hints": {"layer3": 1.0}, "alpha": 20.0,
              "mers": {"classifier_epochs": 10}}
MERS_TFC = {**MERS_TERMS, "kd": 1.0, "temperature": 4.0,
            "mers": {"classifier_epochs": 10, "classifier_init": "teacher"}}
# name: (stream kind, the stream whose last weights it starts from or None, distill settings)
STREAMS: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "flow": ("flow", None, {}),
    "rgb": ("rgb", None, {}),
    "mars_std": ("mars", None, {**STD_TERMS, "kd": 1.0, "temperature": 4.0}),
    "rgb_control": ("rgb", "rgb", {}),
    "mars_paper": ("mars", "rgb", MAP_TERMS),
    "mers_std": ("mers", None, STD_TERMS),
    # ablations on the synthetic set, where mars_std stayed at chance
    "mars_maps": ("mars", None, MAP_TERMS),
    "mars_std_nokd": ("mars", None, STD_TERMS),
    # motion pretraining without labels, then MARS from it (never from the RGB stream)
    "pretrain_maps": ("pretrain", None, MAP_TERMS),
    "mars_pre": ("mars", "pretrain_maps", MAP_TERMS),
    # MERS (issue 12, fixed before their results; chosen on validation): the paper's raw
    # pooled MSE plus the layer3 maps, 50 mimic + 10 classifier epochs; from motion
    # pretraining, and with the classifier started as the teacher's (KD reaches the backbone
    # through it while it is frozen)
    "mers_pre": ("mers", "pretrain_maps", MERS_TERMS),
    "mers_pre_tfc": ("mers", "pretrain_maps", MERS_TFC),
    "mers_tfc": ("mers", None, MERS_TFC),
    # one teacher term each, MARS from scratch (issue 12 item 7; weights fixed before any
    # result): attention transfer on layer3 (the authors' beta 1e3), L2-normalised pooled
    # features (alpha = the 128 dims: the term is 2 (1 - cos)), logit KD alone (T 4), the
    # layer2 maps (alpha 20, as the layer3 maps of mars_maps)
    "mars_at": ("mars", None, {"alpha": 0.0, "attention": {"layer3": 1000.0}}),
    "mars_l2": ("mars", None, {"normalize": "l2", "alpha": 128.0}),
    "mars_kd": ("mars", None, {"alpha": 0.0, "kd": 1.0, "temperature": 4.0}),
    "mars_l2maps": ("mars", None, {"feature": "layer2", "pool_maps": False, "alpha": 20.0}),
    # motion pretraining without a teacher (fixed before any result): layer3 maps regress
    # the clip's flow pooled to their grid (end-point error, weight 1), then MARS from it
    "pretrain_flow": ("pretrain", None, {"alpha": 0.0, "flow_regression": 1.0,
                                         "flow_layer": "layer3"}),
    "mars_preflow": ("mars", "pretrain_flow", MAP_TERMS),
    # the same from layer2 (fixed before its result): on UCF101 layer3's 2x3x3 grid left
    # little flow to predict (validation EPE near a constant's); layer2's is 4x5x5
    "pretrain_flow2": ("pretrain", None, {"alpha": 0.0, "flow_regression": 1.0,
                                          "flow_layer": "layer2"}),
    "mars_preflow2": ("mars", "pretrain_flow2", MAP_TERMS),
    # synthetic only (fixed before any result): mers_pre whose mimic phase also sees the
    # clips of a second synthetic set (unlabeled_store), one unlabelled clip per labelled
    "mers_pre_unl": ("mers", "pretrain_maps",
                     {**MERS_TERMS, "unlabeled": str(WORK / "synthetic" / "unlabeled" / "frames"),
                      "unlabeled_ratio": 1.0}),
}
# The controls each student is measured against, the first the main one (same labels,
# same training length); margins and sign tests are given against each.
CONTROL = {"mars_std": ("rgb",), "mers_std": ("rgb",), "mars_paper": ("rgb_control",),
           "mars_maps": ("rgb",), "mars_std_nokd": ("rgb",),
           "mars_pre": ("rgb_control", "rgb"), "mers_pre": ("rgb_control", "rgb"),
           "mers_pre_tfc": ("rgb_control", "rgb"), "mers_tfc": ("rgb",),
           "mars_at": ("rgb",), "mars_l2": ("rgb",), "mars_kd": ("rgb",),
           "mars_l2maps": ("rgb",), "mars_preflow": ("rgb_control", "rgb"),
           "mars_preflow2": ("rgb_control", "rgb"),
           "mers_pre_unl": ("rgb_control", "rgb")}
UNLABELED_SEED = 1000  # the generator seed of the unlabelled synthetic set


def unlabeled_store() -> Path:
    """Frames and TV-L1 flow of a second synthetic set, the ``distill.unlabeled`` source of
    ``mers_pre_unl`` (resumable). Same spec as the labelled set but generator seed
    1000 and 30 videos a class: other videos, and their ids (index 0-29) are below the
    labelled set's first test index (56), so the test-video guard passes honestly."""
    from mars_action.demo.pipeline import _flow, _frames, _videos

    settings = DemoSettings.full()
    spec = dataclasses.replace(settings.source, seed=UNLABELED_SEED, videos_per_class=30)
    settings = dataclasses.replace(settings, source=spec)
    layout = Layout(WORK / "synthetic" / "unlabeled")
    _videos(layout, settings)
    _frames(layout, settings, workers=1)
    _flow(layout, workers=1)
    return layout.frames


def split_lists(folder: Path, split: int) -> Path:
    """UCF101 lists of split ``split`` from the subset's manifest (split k tests groups
    7k-6..7k, the official rule), with the subset's ``classInd.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    first, last = 7 * split - 6, 7 * split
    train, test = [], []
    with open(UCF101 / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    classes = [line.split()[1] for line in
               (UCF101 / "ucfTrainTestlist" / "classInd.txt").read_text().splitlines() if line]
    for row in rows:
        name = row["path"].rsplit(".", 1)[0] + ".avi"
        if first <= int(row["group"]) <= last:
            test.append(name)
        else:
            train.append(f"{name} {classes.index(row['label']) + 1}")
    (folder / "classInd.txt").write_text(
        (UCF101 / "ucfTrainTestlist" / "classInd.txt").read_text())
    (folder / f"trainlist0{split}.txt").write_text("\n".join(train) + "\n")
    (folder / f"testlist0{split}.txt").write_text("\n".join(test) + "\n")
    return folder


def settings_for(dataset: str, split: int, seed: int) -> DemoSettings:
    demo = DemoSettings.full()
    if dataset == "synthetic":
        return dataclasses.replace(demo, seed=seed, threads=1, from_rgb=())
    lists = split_lists(WORK / "ucf101" / "lists", split)
    source = RealData(format="ucf101", root=str(UCF101), annotations=str(lists), fold=split,
                      fps=25.0, short_side=48)
    return dataclasses.replace(demo, source=source, crop_size=40, seed=seed, threads=1,
                               from_rgb=())


def flow_prefix(settings: DemoSettings) -> str:
    """TV-L1 on the synthetic set; Farneback on the UCF101 subset (OpenCV's TV-L1 took
    0.29 s a pair on this shared CPU: hours for its 32k frame pairs)."""
    return "FARNjpg_" if isinstance(settings.source, RealData) else "TVL1jpg_"


def layout_for(dataset: str, split: int, seed: int) -> Layout:
    return Layout(WORK / dataset / f"split{split}-seed{seed}", WORK / dataset / "store")


def stream_experiment(name: str, settings: DemoSettings, layout: Layout):
    """The demo's config of the stream's kind, with this study's start and terms
    (``pretrain``: the MARS config with stream ``pretrain``, as ``mars pretrain`` sets it)."""
    kind, start, terms = STREAMS[name]
    config = stream_config("mars" if kind == "pretrain" else kind, settings, layout)
    config.stream = kind
    config.name = f"study_{name}"
    config.data.flow_prefix = flow_prefix(settings)
    config.model.pretrained = str(layout.run(start) / "checkpoints" / "last.pt") if start \
        else None
    if kind in ("mars", "mers", "pretrain"):
        teacher = str(layout.run("flow") / "checkpoints" / "last.pt")
        base = {"teacher": teacher, "feature": "pooled", "pool_maps": True, "hint": None}
        distill = {k: v for k, v in terms.items() if k != "mers"}
        config.distill = dataclasses.replace(config.distill, **{**base, **distill})
        config.mers = dataclasses.replace(config.mers, **terms.get("mers", {}))
    return config


def run_job(dataset: str, split: int, seed: int, names: list[str],
            settings: DemoSettings | None = None, layout: Layout | None = None) -> None:
    """Train (resumable) and test the streams of one split and seed; scores to JSON.

    ``settings`` and ``layout`` replace the study's own (another frame size, another
    folder: ``benchmarks/deploy_ucf101.py``)."""
    settings = settings or settings_for(dataset, split, seed)
    layout = layout or layout_for(dataset, split, seed)
    layout.root.mkdir(parents=True, exist_ok=True)
    for name in names:
        if "unlabeled" in STREAMS[name][2]:
            unlabeled_store()
        config = stream_experiment(name, settings, layout)
        config.train.progress = False
        done = layout.run(name) / "done.json"
        if not done.is_file():
            tic = time.perf_counter()
            train_set, val_set = _datasets(config, settings)
            summary = train(config, layout.run(name), resume=True, train_set=train_set,
                            val_set=val_set)
            last = summary.history[-1]
            done.write_text(json.dumps({
                "seconds": round(time.perf_counter() - tic, 1),
                "train_acc": last.get("train_acc"), "val_acc_last": last.get("val_acc"),
                "val_acc_best": summary.best_val_acc, "best_epoch": summary.best_epoch,
                "epochs": summary.epochs, "uptime": os.getloadavg()}, indent=1))
        if STREAMS[name][0] != "pretrain":  # no classifier to test
            _test(name, settings, layout)
        print(f"{dataset} split {split} seed {seed}: {name} done", flush=True)


def _test(name: str, settings: DemoSettings, layout: Layout) -> None:
    out = layout.root / "scores" / f"{name}.json"
    if out.is_file():
        return
    checkpoint = layout.run(name) / "checkpoints" / "last.pt"
    model, meta = load_checkpoint(checkpoint)
    videos = settings.source if isinstance(settings.source, RealData) else None
    if videos is None:
        from mars_action.demo.settings import video_source

        videos = video_source(settings, layout)
    data = DataSettings(format=videos.format, root=videos.root, annotations=videos.annotations,
                        frame_root=str(layout.frames), fold=videos.fold,
                        val_fraction=settings.val_fraction, seed=settings.split_seed,
                        flow_prefix=flow_prefix(settings))
    dataset = GuardedVideos(build_test_set(data, meta, "test"))
    result = {}
    for key, transform in (("normal", None), ("static", static_transform(meta))):
        scores = evaluate(model, meta, dataset, clip_transform=transform, progress=False)
        hits = (scores.scores.argmax(1) == scores.labels).astype(int)
        result[key] = dict(zip(scores.video_ids, hits.tolist(), strict=True))
    result["chance"] = 100.0 / len(meta.class_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    job = commands.add_parser("job", help="train and test the streams of one split and seed")
    job.add_argument("dataset", choices=("ucf101", "synthetic"))
    job.add_argument("--split", type=int, default=1, choices=(1, 2, 3))
    job.add_argument("--seed", type=int, default=0)
    job.add_argument("--streams", nargs="+", default=list(STREAMS), choices=list(STREAMS))
    commands.add_parser("gather", help="results.json and results.md from the finished jobs")
    args = parser.parse_args()
    if args.command == "job":
        run_job(args.dataset, args.split, args.seed, args.streams)
        return
    results = study_tables.gather(WORK, STREAMS, CONTROL)
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "results.md").write_text(study_tables.markdown(results))
    write_result("motion_transfer", results, study_tables.markdown(results).splitlines()[0])


if __name__ == "__main__":
    main()
