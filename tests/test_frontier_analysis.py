"""``mars analyze frontier``: points over seeds, the issue's targets with numbers, PNG + JSON."""

from __future__ import annotations

import json

from mars_action.cli import main
from mars_action.evaluation.frontier import frontier_points, mean_top1, targets


def _run(arch, stream, seed, top1):
    return {"arch": arch, "stream": stream, "seed": seed, "top1": top1}


def _latency(b1: float, b8: float, agreement: float) -> dict:
    return {"ms_per_clip_b1": 10 / b1, "ms_per_clip_b8": 10 / b8, "speedup_b1": b1,
            "speedup_b8": b8, "agreement": agreement}


FIGURES = {
    "archs": ["big", "light"],
    "accuracy": {
        "big/rgb/0": _run("big", "rgb", 0, 50.0), "big/rgb/1": _run("big", "rgb", 1, 52.0),
        "big/mars/0": _run("big", "mars", 0, 60.0), "big/mars/1": _run("big", "mars", 1, 62.0),
        "light/rgb/0": _run("light", "rgb", 0, 40.0),
        "light/mars/0": _run("light", "mars", 0, 49.0),
        "light/mars/1": {"arch": "light", "stream": "mars", "seed": 1, "failed": "diverged"},
    },
    "latency": {
        "big": {"gmacs": 1.0, "fp32_eager": _latency(1, 1, 1.0), "fp32": _latency(1.5, 2, 1.0),
                "bf16": _latency(3.0, 2.6, 0.995), "int8": _latency(5, 5, 0.9)},
    },
    "stream": {"frames_per_s": 31.5},
}


def test_means_over_finished_seeds_and_targets():
    assert mean_top1(FIGURES["accuracy"], "big", "mars") == 61.0
    assert mean_top1(FIGURES["accuracy"], "light", "mars") == 49.0  # the failed seed is out
    points = frontier_points(FIGURES)
    assert [(p["arch"], p["stream"], p["seeds"]) for p in points] == [
        ("big", "rgb", 2), ("big", "mars", 2), ("light", "rgb", 1), ("light", "mars", 1)]
    assert points[1]["top1_std"] > 1.4 and points[1]["ms_bf16"] == 10 / 3.0
    gain, speed, stream = targets(FIGURES, "light", "big")
    assert gain["kept"] == 0.9 and gain["met"]  # 9 points of 10
    assert speed["precision"] == "bf16" and speed["speedup_min_b1_b8"] == 2.6 and speed["met"]
    assert stream["met"] and stream["frames_per_s"] == 31.5


def test_cli_writes_png_and_json(tmp_path, capsys):
    result = tmp_path / "frontier.json"
    result.write_text(json.dumps({"figures": FIGURES}))
    out = tmp_path / "analysis"
    assert main(["analyze", "frontier", str(result), "--light", "light", "--reference", "big",
                 "--out", str(out)]) == 0
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((out / "frontier.json").read_text())
    assert len(written["points"]) == 4 and all(t["met"] for t in written["targets"])
    assert "met: light keeps >= 80% of big's MARS gain" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{}")
    assert main(["analyze", "frontier", str(tmp_path / "bad.json")]) == 2
    assert "no 'accuracy'" in capsys.readouterr().err


def test_per_seed_gains_and_gmacs_without_latency_rows():
    """The synthetic study's result: GMACs per family without latency rows, and the gain
    kept as the mean of the per-seed ratios (met only with >= 3 seeds)."""
    runs = {f"{arch}/{stream}/{seed}": _run(arch, stream, seed, top1)
            for arch, stream, seed, top1 in (
                ("big", "rgb", 0, 30.0), ("big", "mars", 0, 60.0),
                ("big", "rgb", 1, 20.0), ("big", "mars", 1, 60.0),
                ("light", "rgb", 0, 20.0), ("light", "mars", 0, 47.0),
                ("light", "rgb", 1, 20.0), ("light", "mars", 1, 40.0),
                ("light", "rgb_control", 0, 25.0))}
    kept = {"per_seed": {0: {"kept": 0.9}, 1: {"kept": 0.5}}, "mean_kept": 0.7}
    figures = {"archs": ["big", "light"], "accuracy": runs, "latency": {},
               "gmacs": {"big": {"gmacs": 0.06}, "light": {"gmacs": 0.01}},
               "gain_kept": {"light": {"vs_rgb": kept}}}
    points = frontier_points(figures)
    assert [(p["arch"], p["stream"], p["gmacs"]) for p in points][-1] == (
        "light", "rgb_control", 0.01)
    (gain,) = targets(figures, "light", "big")
    assert gain["kept"] == 0.7 and gain["seeds"] == 2 and not gain["met"]
    assert gain["light_gain"] == 23.5 and gain["reference_gain"] == 35.0  # means over seeds
    kept.update(per_seed={0: {"kept": 0.9}, 1: {"kept": 0.8}, 2: {"kept": 0.85}}, mean_kept=0.85)
    assert targets(figures, "light", "big")[0]["met"]
