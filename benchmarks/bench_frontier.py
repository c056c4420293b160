"""The efficiency frontier: accuracy of RGB and MARS students of several families vs their
cost (GMACs, CPU latency per clip at fp32 / bf16 / int8).

One Flow teacher (resnet10_tiny, the demo's) distils into students of every family in
``ARCHS`` (cross-family through adapters); each family is also trained on RGB alone,
with the same recipe, over several seeds. Work files go to ``benchmarks/frontier/runs``
(ignored); results to ``benchmarks/results/frontier.json``. Two stages, resumable::

    OMP_NUM_THREADS=1 flock /tmp/mars-heavy.lock nice -n 5 \\
        .venv/bin/python benchmarks/bench_frontier.py train --seeds 0 1 2
    ... bench_frontier.py latency      # CPU latency, precisions, agreement, stream fps
                                       # (frontier_precision.py)
    ... bench_frontier.py train --study synthetic   # the study's set: frontier_synthetic.py
    ... bench_frontier.py train --study ucf101 --splits 1 2 3 --seeds 0 1 2 --archs x3d_xs

The recipe is the demo's (``DemoSettings.full``: 16-frame clips, 28 px crops, MSE on
``layer3`` maps, SGD lr 0.1 cosine) but with the maps standardised with the teacher's
statistics and alpha 5 (``MARS_NORMALIZE``, ``MARS_ALPHA``), on a smaller synthetic set
(24 videos per class) and 40 epochs so that 19 runs fit in about ten minutes of one CPU
core; MARS
students start from scratch (the demo starts them from the RGB weights). X3D-XS reads
4-frame clips, its own input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from frontier_precision import precision_table, stream_fps, ucf101_precision
from harness import write_result

HERE = Path(__file__).resolve().parent / "frontier"
ARCHS = ("resnet10_tiny", "x3d_xs", "mobilenet3d_v2_half")
TEACHER_ARCH = "resnet10_tiny"
CLIP_LEN = {"x3d_xs": 4}  # X3D-XS's input is 4 frames; the others take the demo's 16
STREAMS = ("rgb", "mars")
# The raw MSE of the demo (alpha 20 on layer3 maps, lr 0.1) made the X3D-XS and MobileNet
# students diverge (NaN in epochs 1-2, through freshly initialised adapters, 3 of 3 runs
# tried); standardising the maps with the teacher's statistics keeps every family stable.
MARS_NORMALIZE = "standardize"
MARS_ALPHA = 5.0  # alpha 20 (the demo's) with standardised maps still diverged (MobileNet)


def settings(seed: int, epochs: int, videos: int):
    from mars_action.data.synthetic import spec_with_classes
    from mars_action.demo.settings import DemoSettings

    spec = spec_with_classes(8, videos_per_class=videos, height=32, width=32, num_frames=24,
                             speed=(0.6, 1.3))
    return DemoSettings(source=spec, epochs=epochs, from_rgb=(), from_pretrain=(), seed=seed,
                        threads=1, alpha=MARS_ALPHA)


def prepare_data(layout, demo) -> None:
    """Videos, frames and TV-L1 flow, once for every run (skipped when present)."""
    from mars_action.data.synthetic import generate_dataset
    from mars_action.demo.settings import video_source
    from mars_action.flow.extract import FlowJob, extract_flow
    from mars_action.video.extract import extract_frames

    generate_dataset(layout.data, demo.source)
    videos = video_source(demo, layout)
    extract_frames(videos.root, layout.frames, fps=videos.fps, short_side=videos.short_side,
                   workers=1)
    extract_flow(layout.frames, FlowJob(method="tvl1"), workers=1)


def experiment(stream: str, arch: str, demo, layout):
    """The demo's config of ``stream`` with the student's family (channels_last: the
    channel-wise 3D convs of X3D and MobileNet train ~4x faster on the CPU in it)."""
    from mars_action.demo.settings import stream_config

    config = stream_config(stream, demo, layout)
    model = dataclasses.replace(config.model, arch=arch, channels_last=True)
    data = dataclasses.replace(config.data, clip_len=CLIP_LEN.get(arch, demo.clip_len))
    distill = dataclasses.replace(config.distill, normalize=MARS_NORMALIZE)
    return dataclasses.replace(config, name=f"frontier_{arch}_{stream}", model=model, data=data,
                               distill=distill)


def datasets(config, demo):
    """The training stage's datasets with the demo's two largest crop scales."""
    from mars_action.data import TrainTransform
    from mars_action.training import resolve
    from mars_action.training.datasets import build_datasets

    data = resolve(config).data
    modalities = {"flow": ("flow",), "rgb": ("rgb",)}.get(config.stream, ("rgb", "flow"))
    train_set, val_set = build_datasets(data, modalities)
    train_set.transform = TrainTransform(data.crop_size, scales=demo.crop_scales,
                                         flow_scale=data.flow_scale,
                                         scale_vectors=data.scale_flow_vectors)
    return train_set, val_set


def test_top1(checkpoint: Path, demo, layout) -> dict:
    """Video top-1 (and clip top-1) on the test split, every clip of each video."""
    from mars_action.demo.settings import video_source
    from mars_action.evaluation import evaluate
    from mars_action.evaluation.loading import DataSettings, build_test_set
    from mars_action.evaluation.metrics import summarize
    from mars_action.models import load_checkpoint

    videos = video_source(demo, layout)
    data = DataSettings(format=videos.format, root=videos.root, annotations=videos.annotations,
                        frame_root=str(layout.frames), val_fraction=demo.val_fraction,
                        seed=demo.split_seed)
    model, meta = load_checkpoint(checkpoint)
    scores = evaluate(model, meta, build_test_set(data, meta, "test"), progress=False)
    summary = summarize(scores)
    return {"top1": summary["top1"], "clip_top1": summary.get("clip_top1")}


def train_all(args) -> None:
    import torch

    from mars_action.demo.settings import Layout
    from mars_action.errors import MarsError
    from mars_action.training import train

    torch.set_num_threads(1)
    work = args.work
    store = work / "store"
    results_path = work / "accuracy.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for seed in args.seeds:
        demo = settings(seed, args.epochs, args.videos)
        layout = Layout(work / f"seed{seed}", store)
        if seed == args.seeds[0]:
            tic = time.perf_counter()
            prepare_data(layout, demo)
            print(f"data ready in {time.perf_counter() - tic:.0f} s", flush=True)
        # One teacher for every student: the first seed's Flow resnet10_tiny.
        teacher_layout = Layout(work / f"seed{args.seeds[0]}", store)
        jobs = [("flow", TEACHER_ARCH)] if seed == args.seeds[0] else []
        jobs += [(stream, arch) for arch in ARCHS for stream in STREAMS]
        for stream, arch in jobs:
            key = f"{arch}/{stream}/seed{seed}"
            if key in results:
                continue
            config = experiment(stream, arch, demo, layout)
            if stream == "mars":
                teacher = str(teacher_layout.runs / f"{TEACHER_ARCH}_flow/checkpoints/best.pt")
                config = dataclasses.replace(
                    config, distill=dataclasses.replace(config.distill, teacher=teacher))
            run_dir = layout.runs / f"{arch}_{stream}"
            tic = time.perf_counter()
            train_set, val_set = datasets(config, demo)
            try:
                summary = train(config, run_dir, resume=True, train_set=train_set,
                                val_set=val_set)
            except MarsError as error:  # a diverged run is a result too; the others go on
                results[key] = {"arch": arch, "stream": stream, "seed": seed,
                                "failed": str(error)}
                results_path.write_text(json.dumps(results, indent=2))
                print(f"{key}: FAILED {error}", flush=True)
                continue
            seconds = time.perf_counter() - tic
            accuracy = test_top1(summary.best_checkpoint, demo, layout)
            results[key] = {"arch": arch, "stream": stream, "seed": seed,
                            "train_s": round(seconds, 1), "best_epoch": summary.best_epoch,
                            "checkpoint": str(summary.best_checkpoint), **accuracy}
            results_path.write_text(json.dumps(results, indent=2))
            print(f"{key}: test top-1 {accuracy['top1']:.1f}% ({seconds:.0f} s)", flush=True)


def _clips(dataset, modality: str, limit: int):
    """Up to ``limit`` clips (K, C, T, S, S) from a dataset's samples, in order."""
    import torch

    clips, index = [], 0
    while sum(len(c) for c in clips) < limit and index < len(dataset):
        value = torch.as_tensor(dataset[index][modality])
        clips.append(value if value.dim() == 5 else value[None])
        index += 1
    return torch.cat(clips)[:limit]


def latency_rows(arch: str, checkpoint: Path, demo, layout, side: int | None = None) -> dict:
    """ms per clip at batch 1 and 8 (one thread) of eager fp32, optimised fp32, bf16 and
    int8, with each one's top-1 agreement with eager fp32 on the test clips (``side``:
    the clips enlarged to ``side`` px, the paper's 112, as the first 96 clips)."""
    from mars_action.demo.settings import video_source
    from mars_action.evaluation.loading import DataSettings, build_test_set
    from mars_action.models import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    videos = video_source(demo, layout)
    data = DataSettings(format=videos.format, root=videos.root, annotations=videos.annotations,
                        frame_root=str(layout.frames), val_fraction=demo.val_fraction,
                        seed=demo.split_seed)
    test = _clips(build_test_set(data, meta, "test"), "rgb", 400)
    config = experiment("rgb", arch, demo, layout)
    calibration = _clips(datasets(config, demo)[0], "rgb", 32)
    return precision_table(model, test, calibration, side)


def measure_latency(args) -> None:
    import os

    import torch

    from mars_action.demo.settings import Layout

    torch.set_num_threads(1)
    work = args.work
    accuracy = json.loads((work / "accuracy.json").read_text())
    demo = settings(args.seeds[0], args.epochs, args.videos)
    layout = Layout(work / f"seed{args.seeds[0]}", work / "store")
    rows = {}
    for arch in ARCHS:
        run = accuracy.get(f"{arch}/mars/seed{args.seeds[0]}", {})
        if "checkpoint" not in run:
            continue
        rows[arch] = latency_rows(arch, Path(run["checkpoint"]), demo, layout)
        rows[arch]["at_112"] = latency_rows(arch, Path(run["checkpoint"]), demo, layout, 112)
        print(arch, json.dumps(rows[arch]), flush=True)
    light = accuracy.get(f"{ARCHS[-1]}/mars/seed{args.seeds[0]}", {})
    stream = stream_fps(Path(light["checkpoint"]), work) if "checkpoint" in light else None
    figures = {"accuracy": accuracy, "latency": rows, "stream": stream,
               "load_average": os.getloadavg(), "archs": ARCHS, "teacher": TEACHER_ARCH,
               "epochs": args.epochs, "videos_per_class": args.videos, "seeds": args.seeds}
    (work / "latency.json").write_text(json.dumps(figures, indent=2))
    write_result("frontier", figures, summary=frontier_summary(figures))


def refresh_accuracy(args) -> None:
    """Rewrite the result with every seed's accuracy, keeping the measured latencies."""
    work = args.work
    measured = work / "latency.json"
    figures = json.loads(measured.read_text()) if measured.is_file() else {
        "latency": {}, "stream": None, "archs": ARCHS, "teacher": TEACHER_ARCH,
        "epochs": args.epochs, "videos_per_class": args.videos}
    figures["accuracy"] = json.loads((work / "accuracy.json").read_text())
    figures["seeds"] = args.seeds
    (work / "latency.json").write_text(json.dumps(figures, indent=2))
    write_result("frontier", figures, summary=frontier_summary(figures))


def frontier_summary(figures: dict) -> str:
    """One line: MARS - RGB per family (mean over seeds) and the fastest int8 speed-up."""
    from mars_action.evaluation.frontier import mean_top1

    parts = []
    for arch in figures["archs"]:
        rgb, mars = (mean_top1(figures["accuracy"], arch, s) for s in ("rgb", "mars"))
        if rgb is not None and mars is not None:
            parts.append(f"{arch} RGB {rgb:.1f} MARS {mars:.1f}")
    return "frontier: " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage",
                        choices=("train", "latency", "all", "refresh", "ucf101-precision"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--videos", type=int, default=24, help="synthetic videos per class")
    parser.add_argument("--work", type=Path, default=HERE / "runs", help="runs and data")
    parser.add_argument("--checkpoint", type=Path, help="ucf101-precision: a trained MARS .pt")
    parser.add_argument("--ucf101", type=Path, default=Path("/work/shared/data/ucf101-subset"))
    parser.add_argument("--study", choices=("toy", "synthetic", "ucf101"), default="toy",
                        help="synthetic, ucf101: the motion-transfer study's sets and teachers")
    parser.add_argument("--splits", type=int, nargs="+",
                        help="--study: splits paired with --seeds in order (default 1)")
    parser.add_argument("--archs", nargs="+", help="--study: light families")
    parser.add_argument("--streams", nargs="+", help="--study: rgb mars_paper ...")
    args = parser.parse_args()
    if args.study != "toy":  # see frontier_synthetic.py
        __import__("frontier_synthetic").run_stage(args)
    elif args.stage == "ucf101-precision":
        ucf101_precision(args)
    elif args.stage == "refresh":  # the result from what has finished (an interrupted run)
        refresh_accuracy(args)
    elif args.stage == "train":
        train_all(args)
    elif args.stage == "latency":
        measure_latency(args)
    else:  # the first seed, its latencies, then the other seeds: results early, then whole
        first, rest = args.seeds[0], args.seeds[1:]
        train_all(argparse.Namespace(**{**vars(args), "seeds": [first]}))
        measure_latency(args)
        if rest:
            train_all(args)
            refresh_accuracy(args)


if __name__ == "__main__":
    main()
