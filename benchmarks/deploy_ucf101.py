"""A MARS student trained at the paper's input size (16x112x112) on real video: the model
the deployment checks are measured on (reduced-precision agreement, ``mars stream``).

The motion-transfer study trains on 40 px crops of 48 px frames, and a network's bf16 or
int8 agreement on clips enlarged to 112 px is not its agreement on the clips it was
trained for. This trains the study's ``flow`` teacher and its ``mars_maps`` student
(resnet10_tiny, the study's recipe: 60 epochs, lr 0.1 cosine; MARS from scratch with
the layer3 maps, alpha 20: no RGB stream to start from, which halves the cost) on UCF101
split 1, seed 0, from frames at 128 px (short side) with 112 px crops and Farneback flow,
then tests them on the split's test videos (groups 1-7, never seen in training).
Resumable: frames, flow and each stream are kept; ``--streams`` adds the study's others.

    nice -n 5 .venv/bin/python benchmarks/deploy_ucf101.py   # files: benchmarks/runs/
    nice -n 5 .venv/bin/python benchmarks/deploy_ucf101.py --streams flow \
        --arch mobilenet3d_v2_half    # a light student's MARS, same teacher

The trained MARS checkpoint is ``runs/deploy_ucf101/split1-seed0/runs/mars_maps/checkpoints/
last.pt``; ``bench_precision_speed.py --study ucf101-112`` reads its test clips.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "motion_transfer"))

import run as study  # noqa: E402

from mars_action.demo.settings import Layout  # noqa: E402
from mars_action.flow.extract import FlowJob, extract_flow  # noqa: E402
from mars_action.video.extract import extract_frames  # noqa: E402

WORK = HERE / "runs" / "deploy_ucf101"  # ignored by git
SHORT_SIDE, CROP = 128, 112
STREAMS = ("flow", "mars_maps")


def settings(split: int = 1, seed: int = 0):
    """The study's UCF101 settings with frames at 128 px and 112 px crops."""
    base = study.settings_for("ucf101", split, seed)
    source = dataclasses.replace(base.source, short_side=SHORT_SIDE)
    return dataclasses.replace(base, source=source, crop_size=CROP)


def layout(split: int = 1, seed: int = 0) -> Layout:
    return Layout(WORK / f"split{split}-seed{seed}", WORK / "store")


def prepare(workers: int = 1) -> None:
    """Frames (25 fps, 128 px) and Farneback flow of the whole subset, once."""
    where = layout()
    for summary in (
        extract_frames(study.UCF101, where.frames, fps=25.0, short_side=SHORT_SIDE,
                       workers=workers, report_path=where.store / "frames-report.json"),
        extract_flow(where.frames, FlowJob(method="farneback", prefix="FARNjpg_"),
                     workers=workers, report_path=where.store / "flow-report.json"),
    ):
        print(summary.format(), flush=True)
        if summary.exit_code:
            raise SystemExit(f"{summary.desc}: {len(summary.failures)} video(s) failed")


def light_student(arch: str) -> str:
    """Train and test ``mars_maps`` for a light family (``--arch``): the frontier's way
    (channels_last, the family's own optimizer settings); returns the run's name."""
    import frontier_synthetic

    from mars_action.training import train

    name = frontier_synthetic.run_name(arch, "mars_maps")
    config = study.stream_experiment("mars_maps", settings(), layout())
    config.model = dataclasses.replace(config.model, arch=arch, channels_last=True)
    config.optim = dataclasses.replace(config.optim, **frontier_synthetic.OPTIM.get(arch, {}))
    config.name, config.train.progress = f"deploy_{name}", False
    if not (layout().run(name) / "checkpoints" / "last.pt").is_file() or \
            not (layout().root / "scores" / f"{name}.json").is_file():
        train_set, val_set = study._datasets(config, settings())
        train(config, layout().run(name), resume=True, train_set=train_set, val_set=val_set)
        study._test(name, settings(), layout())
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", nargs="+", default=list(STREAMS),
                        choices=list(study.STREAMS))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--arch", help="a light student's family (e.g. mobilenet3d_v2_half): "
                        "train its mars_maps instead, with the Flow teacher of --streams")
    args = parser.parse_args()
    prepare(args.workers)
    study.run_job("ucf101", 1, 0, args.streams, settings=settings(), layout=layout())
    names = [light_student(args.arch)] if args.arch else args.streams
    for name in names:
        scores = json.loads((layout().root / "scores" / f"{name}.json").read_text())
        hits = scores["normal"]
        print(f"{name}: test top-1 {100 * sum(hits.values()) / len(hits):.1f}% "
              f"of {len(hits)} videos (chance {scores['chance']:.1f}%)")


if __name__ == "__main__":
    main()
