"""Wall time of ``mars demo`` from nothing (target: <= 10 minutes on 2 CPU cores).

Runs the full demo in a fresh temporary folder through the command line, so the
time includes imports, and records each stage's seconds and the demo's accuracies.
``--quick`` times the smoke version instead. Usage::

    .venv/bin/python benchmarks/bench_demo.py [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from harness import write_result

from mars_action.cli import main as mars

TARGET_S = {"full": 600.0, "quick": 120.0}


def run_demo(out: Path, quick: bool) -> tuple[float, dict]:
    start = time.perf_counter()
    code = mars(["demo", "--out", str(out), *(["--quick"] if quick else [])])
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"mars demo exited with {code}")
    return seconds, json.loads((out / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    args = parser.parse_args()
    kind = "quick" if args.quick else "full"
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "demo"
        seconds, results = run_demo(out, args.quick)
    top1 = {row["name"]: row["top1"] for row in results["table1"]}
    static = {name: row["static_top1"] for name, row in results["static"].items()}
    figures = {"kind": kind, "wall_s": round(seconds, 1), "target_s": TARGET_S[kind],
               "stage_s": results["stage_seconds"], "test_top1": top1, "static_top1": static,
               "chance_top1": results["chance_top1"]}
    summary = (f"demo ({kind}): {seconds / 60:.1f} min (target <= {TARGET_S[kind] / 60:.0f}); "
               + ", ".join(f"{k} {top1[k]:.1f}%" for k in ("RGB", "Flow", "MERS", "MARS")))
    write_result(f"demo_{kind}", figures, summary)


if __name__ == "__main__":
    main()
