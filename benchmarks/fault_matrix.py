"""Fault matrix on real UCF101 clips: concurrent runs, kill -9 at a random moment, bad inputs.

Repeats, on a few clips of /work/shared/data/ucf101-subset (skips cleanly without it):

- ``concurrency``: 2 and 3 ``mars frames`` runs on the same list and store, each
  started after a random delay (0-1.5 s); afterwards every video must be done and
  every ``done`` must match its record;
- ``kill``: one run (2 workers) killed with SIGKILL at a random moment; then nothing
  may still be written (a surviving worker), whatever is marked done must be
  complete, and a rerun must complete the store;
- ``bad_inputs``: a corpus of command lines that must each fail with one line
  (no traceback, non-zero exit): bad config values, missing files, link loops,
  random bytes, a pickle with code, an output over its input, a path leaving OUT.

Across all of it: source clips are checksummed before and after (inputs
overwritten), and every trial's folder is listed (files written outside OUT).
Targets: all counts 0, every interrupted run completed by a rerun.

    flock /tmp/mars-heavy.lock nice -n 5 python benchmarks/fault_matrix.py [--trials 20]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import write_result

SUBSET = Path("/work/shared/data/ucf101-subset")
MARS = [sys.executable, "-m", "mars_action.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FRAMES = ["--short-side", "128", "--threads", "1"]
ROOT = Path(__file__).resolve().parents[1]


def pick_clips(count: int) -> list[Path]:
    """``count`` clips spread over the subset's classes."""
    clips = sorted(SUBSET.glob("*/*.mp4")) + sorted(SUBSET.glob("*/*.avi"))
    step = max(1, len(clips) // count)
    return clips[::step][:count]


def checksums(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for p in paths}


def listing(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its size: a snapshot to compare."""
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def outside(trial: Path, allowed: tuple[str, ...]) -> int:
    """Files in ``trial`` not under one of its ``allowed`` top-level entries."""
    return sum(1 for name in listing(trial) if name.split(os.sep)[0] not in allowed)


def verify(out: Path) -> tuple[int, int]:
    """(done markers, markers not matching their record) of a store."""
    from mars_action.video.completeness import verify_store

    if not out.is_dir():
        return 0, 0
    checked, problems = verify_store(out)
    return checked, len(problems)


def start(list_file: Path, out: Path, workers: int) -> subprocess.Popen:
    command = [*MARS, "frames", str(list_file), str(out), "--workers", str(workers), *FRAMES]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=out.parent
    )


def concurrency_trial(list_file: Path, trial: Path, writers: int, clips: int, rng) -> dict:
    out = trial / "out"
    runs = []
    for _ in range(writers):
        time.sleep(rng.uniform(0.0, 1.5))
        runs.append(start(list_file, out, workers=1))
    errors = [run.communicate(timeout=600)[1] for run in runs]
    done, bad = verify(out)
    return {
        "exit_codes": [run.returncode for run in runs],
        "tracebacks": sum(b"Traceback" in err for err in errors),
        "done": done,
        "bad_done": bad,
        "complete": done == clips and bad == 0,
        "outside": outside(trial, ("out",)),
    }


def still_writing(out: Path, seconds: float = 1.0) -> bool:
    before = listing(out) if out.is_dir() else {}
    time.sleep(seconds)
    return before != (listing(out) if out.is_dir() else {})


def kill_trial(list_file: Path, trial: Path, clips: int, rng, duration: float) -> dict:
    """Kill at a moment drawn over a whole run's ``duration`` (start-up included)."""
    out = trial / "out"
    run = start(list_file, out, workers=2)
    delay = rng.uniform(0.1, duration)
    time.sleep(delay)
    finished_first = run.poll() is not None
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    time.sleep(0.3)
    writing = still_writing(out)
    done_before, bad = verify(out)
    rerun = start(list_file, out, workers=1)
    _, err = rerun.communicate(timeout=600)
    done_after, bad_after = verify(out)
    return {
        "kill_after_s": round(delay, 2),
        "finished_before_kill": finished_first,
        "worker_still_writing": writing,
        "done_before_rerun": done_before,
        "interrupted_with_work_left": done_before < clips,
        "bad_done": bad + bad_after,
        "rerun_exit": rerun.returncode,
        "tracebacks": int(b"Traceback" in err),
        "completed_by_rerun": rerun.returncode == 0 and done_after == clips and not bad_after,
        "outside": outside(trial, ("out",)),
    }


def bad_input_corpus(work: Path, clip: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of command lines that must fail with one line."""
    import torch

    from mars_action.models import CheckpointMeta, build_model
    from mars_action.models.checkpoint import save_checkpoint
    from mars_action.video.writer import write_video

    tiny = str(ROOT / "configs" / "tiny" / "rgb.yaml")
    good = save_checkpoint(
        work / "tiny.pt",
        build_model("resnet10_tiny", in_channels=3, num_classes=2),
        CheckpointMeta("resnet10_tiny", 3, 2, class_names=["a", "b"], clip_len=8, crop_size=64),
    )

    class Code:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"state_dict": Code()}, work / "evil.pt")
    (work / "loop.pt").symlink_to(work / "loop.pt")
    (work / "loop.mp4").symlink_to(work / "loop.mp4")
    (work / "random.mp4").write_bytes(os.urandom(4096))
    (work / "random.npz").write_bytes(os.urandom(4096))
    (work / "empty.mp4").write_bytes(b"")
    own = work / "own.mp4"
    own.write_bytes(clip.read_bytes())
    escape = work / "escape"
    (escape / "sub").mkdir(parents=True)
    import numpy as np

    write_video(escape / "...mp4", np.zeros((4, 32, 32, 3), np.uint8))
    (escape / "list.txt").write_text("sub/../...mp4\n")
    train = ["train", tiny, "--run-dir", str(work / "run")]
    cases = [(f"train {value}", [*train, value]) for value in (
        "optim.lr=abc", "optim.lr=nan", "optim.lr=-1", "data.clip_len=0",
        "data.num_workers=-3", "data.batch_size=true",
    )]
    cases += [
        ("train without its dataset", [*train, f"data.annotations={work}/none.csv"]),
        ("predict evil pickle", ["predict", str(clip), "--checkpoint", str(work / "evil.pt")]),
        ("predict checkpoint loop", ["predict", str(clip), "--checkpoint", str(work / "loop.pt")]),
        ("predict output = input", ["predict", str(own), "--checkpoint", str(good),
                                    "--output", str(own)]),
        ("predict video loop", ["predict", str(work / "loop.mp4"), "--checkpoint", str(good)]),
        ("predict random bytes", ["predict", str(work / "random.mp4"), "--checkpoint", str(good)]),
        ("predict empty file", ["predict", str(work / "empty.mp4"), "--checkpoint", str(good)]),
        ("fuse random npz", ["fuse", str(work / "random.npz"), str(work / "random.npz")]),
        ("export atol nan", ["export", str(good), "--format", "torchscript", "--atol", "nan"]),
        ("frames missing source", ["frames", str(work / "none"), str(work / "out1")]),
        ("frames entry leaving OUT", ["frames", str(escape / "list.txt"), str(escape / "out")]),
        ("data-summary missing", ["data-summary", "manifest", "--annotations", str(work / "x")]),
        ("flow missing source", ["flow", str(work / "none"), "--out", str(work / "out2")]),
    ]
    return cases


def run_corpus(work: Path, clip: Path) -> dict:
    results = {}
    for name, argv in bad_input_corpus(work, clip):
        done = subprocess.run([*MARS, *argv], capture_output=True, env=ENV, cwd=work, timeout=300)
        err = done.stderr.decode(errors="replace")
        results[name] = {
            "exit": done.returncode,
            "traceback": "Traceback" in err,
            "ran_code": "this must never run" in done.stdout.decode(errors="replace"),
            "last_line": err.strip().splitlines()[-1] if err.strip() else "",
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not SUBSET.is_dir():
        print(f"fault_matrix: {SUBSET} not found; skipped")
        return
    rng = random.Random(args.seed)
    clips = pick_clips(args.clips)
    before = checksums(clips)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mars-faults-") as tmp:
        tmp = Path(tmp)
        list_file = tmp / "clips.txt"
        list_file.write_text("".join(f"{clip}\n" for clip in clips))
        baseline = time.perf_counter()
        start(list_file, tmp / "baseline", workers=2).communicate(timeout=600)
        duration = time.perf_counter() - baseline
        trials: dict[str, list[dict]] = {"writers_2": [], "writers_3": [], "kill9": []}
        for i in range(args.trials):
            for writers in (2, 3):
                folder = tmp / f"w{writers}_{i}"
                folder.mkdir()
                trials[f"writers_{writers}"].append(
                    concurrency_trial(list_file, folder, writers, len(clips), rng)
                )
            folder = tmp / f"kill_{i}"
            folder.mkdir()
            trials["kill9"].append(kill_trial(list_file, folder, len(clips), rng, duration))
            print(f"trial {i + 1}/{args.trials} done ({time.perf_counter() - started:.0f} s)")
        corpus_dir = tmp / "corpus"
        corpus_dir.mkdir()
        corpus = run_corpus(corpus_dir, clips[0])
    after = checksums(clips)
    every = [t for group in trials.values() for t in group]
    figures = {
        "clips": [str(c) for c in clips],
        "trials_each": args.trials,
        "targets": {
            "videos_marked_done_incomplete": sum(t["bad_done"] for t in every),
            "inputs_overwritten": sum(before[k] != after[k] for k in before),
            "files_written_outside_out": sum(t["outside"] for t in every),
            "tracebacks": sum(t["tracebacks"] for t in every)
            + sum(c["traceback"] for c in corpus.values()),
            "bad_inputs_accepted": sum(c["exit"] == 0 for c in corpus.values()),
            "pickled_code_ran": sum(c["ran_code"] for c in corpus.values()),
            "concurrent_stores_incomplete": sum(
                not t["complete"] for k in ("writers_2", "writers_3") for t in trials[k]
            ),
            "kills_with_a_worker_still_writing": sum(
                t["worker_still_writing"] for t in trials["kill9"]
            ),
            "interrupted_runs_not_completed_by_rerun": sum(
                not t["completed_by_rerun"] for t in trials["kill9"]
            ),
        },
        "one_run_seconds": round(duration, 2),
        "kills_with_work_left": sum(t["interrupted_with_work_left"] for t in trials["kill9"]),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": os.getloadavg(),
        "trials": trials,
        "bad_inputs": corpus,
    }
    targets = figures["targets"]
    summary = "fault_matrix: " + ", ".join(f"{k} {v}" for k, v in targets.items()) + (
        f" ({args.trials} trials each, {figures['kills_with_work_left']} kills with work left, "
        f"{len(corpus)} bad inputs, {figures['seconds']} s)"
    )
    write_result("fault_matrix", figures, summary)


if __name__ == "__main__":
    main()
