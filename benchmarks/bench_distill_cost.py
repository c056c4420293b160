"""Cost of a distillation step: each objective of ``distill.*`` against an RGB step.

One training step of the engine (forward, loss, backward, SGD) of resnet10_tiny on
the study's clips (16 frames, 40 px, batch 16), on one thread, for an RGB step and
for MARS with each objective; every MARS step includes the frozen Flow teacher's
forward. The modes are timed in interleaved rounds (median), so other processes'
load hits every mode alike. The issue's bound: a MARS step <= 1.5x an RGB step.
Teacher statistics (``normalize: standardize``) are computed once before training
and are not part of a step.

    python benchmarks/bench_distill_cost.py [--rounds 15] [--side 40]
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch
from harness import time_call, write_result

from mars_action.models import build_model
from mars_action.training import load_experiment, plan_phases
from mars_action.training.build import build_engine
from mars_action.training.distill import freeze, teacher_statistics
from mars_action.training.distributed import Process
from mars_action.training.engine import train_one_epoch

CLASSES = 20
OBJECTIVES = {  # name: overrides (None: the RGB stream)
    "rgb": None,
    "mars_paper_pooled": ["distill.alpha=50"],
    "mars_layer3_maps": ["distill.feature=layer3", "distill.pool_maps=false", "distill.alpha=20"],
    "mars_std_kd": ["distill.normalize=standardize", "distill.hints.layer3=1", "distill.kd=1",
                    "distill.alpha=1"],
    "mars_hints_all": ["distill.hints.layer1=1", "distill.hints.layer2=1",
                       "distill.hints.layer3=1", "distill.hints.layer4=1", "distill.alpha=1"],
    "mars_attention": ["distill.attention.layer2=100", "distill.attention.layer3=100",
                       "distill.kd=1", "distill.alpha=0"],
}


def make_step(name: str, batch: dict):
    overrides = OBJECTIVES[name]
    stream = "rgb" if overrides is None else "mars"
    config = load_experiment(None, [f"stream={stream}", "model.arch=resnet10_tiny",
                                    "distill.teacher=unused.pt", "optim.lr=0.001",
                                    *(overrides or [])])
    torch.manual_seed(0)
    model = build_model("resnet10_tiny", num_classes=CLASSES)
    phase = plan_phases(config)[0]
    teacher = stats = None
    if stream == "mars":
        teacher = freeze(build_model("resnet10_tiny", in_channels=2, num_classes=CLASSES))
        keys = phase.objective.distill.standardized
        stats = teacher_statistics(teacher, [batch["flow"]], keys) if keys else None
    device = Process(0, 1, torch.device("cpu"))
    engine, _, _ = build_engine(phase, model, teacher, config, device, stats=stats)
    model.train()
    return lambda: train_one_epoch(engine, [batch], epoch=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--side", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch, 16, args.side, args.side)
    batch = {"rgb": torch.randn(shape[0], 3, *shape[1:], generator=generator),
             "flow": torch.randn(shape[0], 2, *shape[1:], generator=generator),
             "label": torch.randint(0, CLASSES, (args.batch,), generator=generator)}
    steps = {name: make_step(name, batch) for name in OBJECTIVES}
    for step in steps.values():
        time_call(step, warmup=2, repeat=1)
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(args.rounds):
        for name in names[index % len(names):] + names[:index % len(names)]:
            times[name].append(time_call(steps[name], warmup=0, repeat=1))
    median = {name: statistics.median(values) for name, values in times.items()}
    results = {
        "clip": f"{args.batch}x16x{args.side}x{args.side}", "threads": 1, "rounds": args.rounds,
        "load_average": os.getloadavg(),
        "s_per_step": {k: round(v, 4) for k, v in median.items()},
        "vs_rgb": {k: round(v / median["rgb"], 3) for k, v in median.items()},
        "bound": 1.5,
    }
    worst = max(v for k, v in results["vs_rgb"].items() if k != "rgb")
    write_result("distill_cost", results,
                 f"distill_cost: MARS step / RGB step {min(results['vs_rgb'].values()):.2f}.."
                 f"{worst:.2f} (bound 1.5), load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
