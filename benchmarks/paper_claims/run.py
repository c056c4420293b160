"""The paper's central claim, measured: RGB, Flow, MERS, MARS (and fusions) over seeds.

Runs the demo's pipeline (``mars_action.demo.pipeline.run``: frames -> TV-L1 flow ->
train -> eval -> fuse -> static clips -> report) with the demo's recipe on

- ``synthetic``: the synthetic motion dataset, larger than the demo's;
- ``ucf101``: the real UCF101 subset (official split 1; model selection on a
  validation split held out of train, never on test);

for several training seeds (the videos, frames, flow and splits are shared), and
writes ``results.json`` and ``results.md`` beside this file (plus
``benchmarks/results/paper_claims.json`` through the harness). Usage::

    .venv/bin/python benchmarks/paper_claims/run.py [--datasets synthetic ucf101]
        [--seeds 0 1 2] [--work benchmarks/paper_claims/runs] [--fresh]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the harness

from harness import write_result  # noqa: E402

from mars_action.demo.pipeline import run  # noqa: E402
from mars_action.demo.settings import RGB_CONTINUED, DemoSettings  # noqa: E402

UCF101 = Path(os.environ.get("MARS_UCF101_SUBSET",
                             HERE.parents[2] / "shared" / "data" / "ucf101-subset"))
ROWS = ("RGB", "Flow", "MERS", "MARS", "MARS+RGB", "RGB+Flow", RGB_CONTINUED)


def synthetic_settings(seed: int) -> DemoSettings:
    """The demo's recipe on a larger synthetic set (the same videos for every seed), with
    the RGB control (the RGB stream trained as long as the distilled streams).

    Flow vectors unscaled: these runs were made before the loaders scaled them; on 32 px
    frames with 27-32 px crops resized to 28 the factor would be 0.88-1.04.
    """
    demo = DemoSettings.full()
    spec = dataclasses.replace(demo.source, videos_per_class=150)
    return dataclasses.replace(demo, source=spec, seed=seed, rgb_control=True,
                               scale_flow_vectors=False)


def ucf101_settings(seed: int) -> DemoSettings:
    """The demo's recipe on the real UCF101 subset, frames at 48 px (TV-L1 on a CPU:
    ~34k frame pairs at 25 fps, ~7 minutes on 2 cores at this size, ~20 at 64 px)."""
    demo = DemoSettings.on_disk("ucf101", str(UCF101))
    return dataclasses.replace(demo, seed=seed, rgb_control=True)


DATASETS = {"synthetic": synthetic_settings, "ucf101": ucf101_settings}


def measure(dataset: str, seeds: list[int], work: Path, workers: int | None,
            threads: int | None = None, fresh: bool = False) -> dict[str, Any]:
    """Every seed's results.json, and their mean and std per Table 1 row.

    A seed whose runs are complete is only re-read (the pipeline resumes), so seeds can
    be run in parallel processes first and gathered by one more call. ``fresh`` starts
    each seed's folder over (the demo's ``--fresh``; the shared store is kept): a folder
    made with other settings is refused otherwise.
    """
    runs = []
    for seed in seeds:
        settings = dataclasses.replace(DATASETS[dataset](seed), threads=threads)
        print(f"\n===== {dataset}, seed {seed} =====", flush=True)
        runs.append(run(work / dataset / f"seed{seed}", settings, fresh=fresh, workers=workers,
                        store=work / dataset / "store"))
    per_seed = [{"seed": seed, "table1": result["table1"], "table1_static": result["table1_static"],
                 "total_seconds": result["total_seconds"]}
                for seed, result in zip(seeds, runs, strict=True)]
    return {"seeds": seeds, "chance_top1": runs[0]["chance_top1"],
            "test_top1": _aggregate(runs, "table1"),
            "static_top1": _aggregate(runs, "table1_static"), "runs": per_seed}


def _aggregate(runs: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    values: dict[str, list[float]] = {}
    for result in runs:
        for row in result[key]:
            values.setdefault(row["name"], []).append(row["top1"])
    return {name: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                   "values": v} for name, v in values.items()}


def check_targets(synthetic: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets on the synthetic set, each with the measured margin."""
    test = {k: v["mean"] for k, v in synthetic["test_top1"].items()}
    static = {k: v["mean"] for k, v in synthetic["static_top1"].items()}
    chance = synthetic["chance_top1"]
    checks = [
        ("Flow >= RGB + 10", test["Flow"] - test["RGB"], 10.0),
        ("MARS >= RGB + 5", test["MARS"] - test["RGB"], 5.0),
        ("|MERS - Flow| <= 3", -abs(test["MERS"] - test["Flow"]), -3.0),
        ("|Flow static - chance| <= 5", -abs(static["Flow"] - chance), -5.0),
        ("|MERS static - chance| <= 5", -abs(static["MERS"] - chance), -5.0),
    ]
    return [{"target": name, "measured": round(value, 2), "bound": bound, "met": value >= bound}
            for name, value, bound in checks]


def markdown(results: dict[str, Any]) -> str:
    """Test and static-clip top-1 (mean +- std over seeds) per stream and dataset."""
    names = list(results["datasets"])
    header = "| Stream | " + " | ".join(f"{d} test | {d} static" for d in names) + " |"
    lines = ["# Paper claims, measured", "", header,
             "|---|" + "---:|---:|" * len(names)]
    for row in ROWS:
        cells = []
        for dataset in names:
            data = results["datasets"][dataset]
            cells += [_cell(data["test_top1"].get(row)), _cell(data["static_top1"].get(row))]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", "Top-1 video accuracy (%), mean +- std over seeds "
              + ", ".join(f"{d}: {results['datasets'][d]['seeds']}" for d in names)
              + "; chance: " + ", ".join(f"{d} {results['datasets'][d]['chance_top1']:.1f}"
                                         for d in names) + "."]
    if results.get("targets"):
        lines += ["", "| Target (synthetic) | Measured | Met |", "|---|---:|---|"]
        lines += [f"| {t['target']} | {t['measured']:+.1f} | {'yes' if t['met'] else 'no'} |"
                  for t in results["targets"]]
    return "\n".join(lines) + "\n"


def _cell(entry: dict[str, float] | None) -> str:
    return "-" if entry is None else f"{entry['mean']:.1f} +- {entry['std']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=HERE / "runs")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for training (1 when other work shares the cores)")
    parser.add_argument("--fresh", action="store_true",
                        help="start each seed's folder over (folders of an earlier recipe); "
                        "the videos, frames and flow of the store are kept")
    args = parser.parse_args()
    results: dict[str, Any] = {"datasets": _earlier_datasets(), "recipe": _recipe()}
    for dataset in args.datasets:
        results["datasets"][dataset] = measure(dataset, args.seeds, args.work, args.workers,
                                               args.threads, args.fresh)
    if "synthetic" in results["datasets"]:
        results["targets"] = check_targets(results["datasets"]["synthetic"])
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "results.md").write_text(markdown(results))
    summary = "; ".join(
        f"{d}: " + ", ".join(f"{r} {v['test_top1'][r]['mean']:.1f}" for r in ROWS
                             if r in v["test_top1"])
        for d, v in results["datasets"].items())
    write_result("paper_claims", results, f"paper_claims: {summary}")


def _earlier_datasets() -> dict[str, Any]:
    """What an earlier run measured on the datasets this run leaves alone (kept, so that
    the datasets can be measured one at a time), when it used the same recipe."""
    path = HERE / "results.json"
    if not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    same_recipe = earlier.get("recipe") == json.loads(json.dumps(_recipe()))
    return earlier["datasets"] if same_recipe else {}


def _recipe() -> dict[str, Any]:
    """The synthetic settings of seed 0 (the UCF101 ones differ in source and crop size)."""
    settings = synthetic_settings(0)
    recipe = settings.to_dict()
    recipe["synthetic_spec"] = recipe.pop("source")
    return recipe


if __name__ == "__main__":
    main()
