"""The frontier on the motion-transfer study's sets (``bench_frontier.py --study
synthetic|ucf101``): light students trained with the study's teachers and recipes.

The study (``benchmarks/motion_transfer``) trained, per seed, a Flow teacher, RGB and the
paper's MARS (``mars_paper``: started from the RGB stream, layer3 maps, alpha 20) for
resnet10_tiny on a set large enough for it to learn (8 classes x 80 videos, TV-L1 flow)
and, per (split, seed), on the UCF101 subset (Farneback flow, 40 px crops).
Here each light family in ``LIGHT`` gets the same streams with the study's settings,
frames, flow and teacher (``runs/flow/checkpoints/last.pt`` of the study's seed folder):

- ``rgb``: from scratch, the study's ``rgb`` recipe;
- ``mars_paper``: started from the family's own ``rgb``, layer3 maps through the
  cross-family adapter, alpha 20 (``mars_paper_std``: the same with the maps
  standardised by the teacher's statistics, trained only where the raw maps diverge);
- ``rgb_control``: the family's ``rgb`` trained as long again.

A family may bring its own optimizer settings (``OPTIM``: the 3D MobileNetV2 trains with its
paper's dampened SGD); its RGB, MARS and control runs all use them.

The comparison student is the study's resnet10_tiny (the teacher's architecture). Gain
kept, per (split, seed) = (light MARS - light RGB) / (resnet10_tiny MARS - resnet10_tiny
RGB), on the same test videos, and pooled (sum of the gains over sum of the reference
gains); tested, as in the study, with each run's last epoch. Runs go to
``benchmarks/frontier/runs/<dataset>/`` (ignored); the figures to
``benchmarks/results/frontier.json`` (synthetic; ``mars analyze frontier`` reads it) or
``frontier_ucf101.json``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "frontier" / "runs"  # ignored; one folder per dataset
REFERENCE = "resnet10_tiny"
LIGHT = ("x3d_xs", "mobilenet3d_v2_half")
# X3D-XS on the study's 16 consecutive frames costs 1.26 GMACs at 16x112x112, 13% of
# ResNeXt-101's 9.57 (over the 1/10 budget); its own input is 4 frames (0.32 GMACs), here
# every 4th frame, so that its clip spans the same 13-16 frames as the others'.
CLIP = {"x3d_xs": (4, 4)}  # arch: (clip_len, stride)
# The 3D MobileNetV2's own optimizer, that of its paper's release (Efficient-3DCNNs'
# opts.json: SGD lr 0.1, momentum 0.9, dampening 0.9). The study's undampened SGD takes
# steps 10x larger; with them this family's 1280-channel ReLU6 head dies in the first
# epochs (every unit 0 on every clip: a constant predictor no gradient can revive), in RGB
# and so in MARS, which starts from it. The runs of the study's optimizer keep their folders.
OPTIM = {"mobilenet3d_v2_half": {"dampening": 0.9}}
RESNEXT101_GMACS_16x112 = 9.57
RUNS = ("rgb", "mars_paper", "rgb_control")
# frontier stream name -> (the study's stream whose recipe it takes, analyze's stream)
KIND = {"rgb": ("rgb", "rgb"), "mars_paper": ("mars_paper", "mars"),
        "mars_paper_std": ("mars_paper", "mars"), "rgb_control": ("rgb_control", "rgb_control")}


def study():
    """``benchmarks/motion_transfer/run.py`` as a module: its settings, layout, streams."""
    spec = importlib.util.spec_from_file_location("motion_transfer_run",
                                                  HERE / "motion_transfer" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tag(dataset: str, split: int, seed: int) -> str:
    """A run's key suffix: ``seedN`` on the synthetic set (one split), else ``splitS-seedN``."""
    return f"seed{seed}" if dataset == "synthetic" else f"split{split}-seed{seed}"


def layouts(mt, dataset: str, split: int, seed: int):
    """(the study's layout of the pair, this benchmark's: same store of frames and flow)."""
    from mars_action.demo.settings import Layout

    theirs = mt.layout_for(dataset, split, seed)
    return theirs, Layout(WORK / dataset / f"split{split}-seed{seed}", theirs.store)


def run_name(arch: str, name: str) -> str:
    """A light run's folder and scores name, ``<arch>_<stream>``, tagged with the family's
    own optimizer settings (``OPTIM``) so that runs of another optimizer never mix in."""
    return arch + "".join(f"_{k}{v:g}" for k, v in OPTIM.get(arch, {}).items()) + f"_{name}"


def experiment(mt, arch: str, name: str, dataset: str, split: int, seed: int):
    """The study's config of ``KIND[name]`` with the teacher of the study's seed, for
    ``arch`` (channels_last: X3D's and MobileNet's channel-wise 3D convs train ~4x faster
    on the CPU in it), started from the family's own runs."""
    settings = mt.settings_for(dataset, split, seed)
    theirs, mine = layouts(mt, dataset, split, seed)
    base = KIND[name][0]
    config = mt.stream_experiment(base, settings, theirs)  # the study's teacher path
    start = mt.STREAMS[base][1]
    pretrained = str(mine.run(run_name(arch, start)) / "checkpoints" / "last.pt") if start \
        else None
    clip_len, stride = CLIP.get(arch, (config.data.clip_len, config.data.stride))
    config.model = dataclasses.replace(config.model, arch=arch, channels_last=True,
                                       pretrained=pretrained)
    config.data = dataclasses.replace(config.data, clip_len=clip_len, stride=stride)
    config.optim = dataclasses.replace(config.optim, **OPTIM.get(arch, {}))
    if name == "mars_paper_std":
        config.distill = dataclasses.replace(config.distill, normalize="standardize")
    config.name = f"frontier_{run_name(arch, name)}"
    config.train.progress = False
    return config, settings, mine


def run_job(arch: str, dataset: str, split: int, seed: int, names: list[str]) -> None:
    """Train (resumable) and test ``names`` of one family and (split, seed); a diverged
    ``mars_paper`` is recorded and followed by ``mars_paper_std``."""
    from mars_action.errors import MarsError
    from mars_action.training import train

    mt = study()
    queue = list(names)
    while queue:
        name = queue.pop(0)
        config, settings, layout = experiment(mt, arch, name, dataset, split, seed)
        run_dir = layout.run(run_name(arch, name))
        done = run_dir / "done.json"
        if not done.is_file():
            tic = time.perf_counter()
            train_set, val_set = mt._datasets(config, settings)
            try:
                summary = train(config, run_dir, resume=True, train_set=train_set,
                                val_set=val_set)
            except MarsError as error:
                done.write_text(json.dumps({"failed": str(error), "uptime": os.getloadavg()}))
                print(f"{arch} {tag(dataset, split, seed)}: {name} FAILED: {error}", flush=True)
                if name == "mars_paper":
                    queue.insert(0, "mars_paper_std")
                continue
            last = summary.history[-1]
            done.write_text(json.dumps({
                "seconds": round(time.perf_counter() - tic, 1),
                "train_acc": last.get("train_acc"), "val_acc_last": last.get("val_acc"),
                "val_acc_last10": mt.study_tables.late_val(run_dir) / 100,
                "epochs": summary.epochs,
                "uptime": os.getloadavg()}, indent=1))
        if "failed" not in json.loads(done.read_text()):
            test(mt, arch, name, config, settings, layout)
        print(f"{arch} {tag(dataset, split, seed)}: {name} done {done.read_text()}", flush=True)


def test(mt, arch: str, name: str, config, settings, layout) -> None:
    """Per test video, whether the last epoch's weights get it right (every clip of the
    video, the clip's own length and stride), as the study's scores files."""
    from mars_action.demo.settings import video_source
    from mars_action.evaluation import evaluate
    from mars_action.evaluation.loading import DataSettings, GuardedVideos, build_test_set
    from mars_action.models import load_checkpoint

    out = layout.root / "scores" / f"{run_name(arch, name)}.json"
    if out.is_file():
        return
    model, meta = load_checkpoint(layout.run(run_name(arch, name)) / "checkpoints" / "last.pt")
    videos = video_source(settings, layout)
    data = DataSettings(format=videos.format, root=videos.root, annotations=videos.annotations,
                        frame_root=str(layout.frames), fold=videos.fold,
                        val_fraction=settings.val_fraction,
                        seed=settings.split_seed, stride=config.data.stride,
                        flow_prefix=mt.flow_prefix(settings))
    scores = evaluate(model, meta, GuardedVideos(build_test_set(data, meta, "test")),
                      progress=False)
    hits = (scores.scores.argmax(1) == scores.labels).astype(int)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"normal": dict(zip(scores.video_ids, hits.tolist(), strict=True)),
                               "chance": 100.0 / len(meta.class_names)}))


def _top1(path: Path) -> float | None:
    if not path.is_file():
        return None
    hits = json.loads(path.read_text())["normal"]
    return 100.0 * sum(hits.values()) / len(hits)


def accuracy(mt, dataset: str, pairs: list[tuple[int, int]]) -> dict[str, dict[str, Any]]:
    """Test top-1 of every finished run, keyed ``arch/stream/<tag>`` (analyze's input):
    the study's resnet10_tiny runs and this benchmark's light ones."""
    rows = {}
    for split, seed in pairs:
        theirs, mine = layouts(mt, dataset, split, seed)
        found = [(REFERENCE, name, theirs.root / "scores" / f"{name}.json") for name in RUNS]
        found += [(arch, name, mine.root / "scores" / f"{run_name(arch, name)}.json")
                  for arch in LIGHT for name in KIND]
        for arch, name, path in found:
            top1 = _top1(path)
            if top1 is None:
                continue
            done = (mine.run(run_name(arch, name)) if arch in LIGHT
                    else theirs.run(name)) / "done.json"
            trained = json.loads(done.read_text()) if done.is_file() else {}
            rows[f"{arch}/{name}/{tag(dataset, split, seed)}"] = {
                "arch": arch, "stream": KIND[name][1], "run": name, "seed": seed,
                "split": split, "top1": top1, "train_acc": trained.get("train_acc"),
                "val_acc_last": trained.get("val_acc_last"), "train_s": trained.get("seconds"),
                "optim": OPTIM.get(arch, {})}
    return rows


def gains(rows: dict[str, dict[str, Any]], dataset: str,
          pairs: list[tuple[int, int]]) -> dict[str, Any]:
    """Per light family: gain kept per (split, seed), its mean and the pooled ratio (sum of
    the gains over sum of the reference gains: steadier when a reference gain is small),
    against RGB (the issue's ratio) and against the RGB control (RGB trained as long as
    RGB + MARS). Keyed by seed on the synthetic set (one split), else by ``splitS-seedN``."""
    def top1(arch: str, stream: str, split: int, seed: int) -> float | None:
        hits = [r["top1"] for r in rows.values()
                if (r["arch"], r["stream"], r["seed"], r.get("split", 1))
                == (arch, stream, seed, split)]
        return hits[0] if hits else None

    out = {}
    for arch in LIGHT:
        for control in ("rgb", "rgb_control"):
            per_seed = {}
            for split, seed in pairs:
                values = [top1(a, s, split, seed) for a in (arch, REFERENCE)
                          for s in ("mars", control)]
                if None in values:
                    continue
                light_gain, reference_gain = values[0] - values[1], values[2] - values[3]
                key = seed if dataset == "synthetic" else tag(dataset, split, seed)
                per_seed[key] = {"light_gain": light_gain, "reference_gain": reference_gain,
                                 "kept": light_gain / reference_gain if reference_gain else None}
            kept = [v["kept"] for v in per_seed.values() if v["kept"] is not None]
            reference = sum(v["reference_gain"] for v in per_seed.values())
            out.setdefault(arch, {})[f"vs_{control}"] = {
                "per_seed": per_seed, "mean_kept": statistics.fmean(kept) if kept else None,
                "pooled_kept": sum(v["light_gain"] for v in per_seed.values()) / reference
                if per_seed and reference else None,
                "met": bool(kept) and len(kept) >= 3 and statistics.fmean(kept) >= 0.8}
    return out


def paired(mt, dataset: str, pairs: list[tuple[int, int]]) -> dict[str, Any]:
    """Per family, MARS against RGB over the test videos of every pair pooled: videos only
    one of them gets right and the exact sign test (``study_tables.paired``), to say
    whether a gain is more than a few lucky videos."""
    hits: dict[tuple[str, str], dict[str, int]] = {}
    for split, seed in pairs:
        theirs, mine = layouts(mt, dataset, split, seed)
        for arch in (REFERENCE, *LIGHT):
            for name in ("rgb", "mars_paper"):
                folder = mine.root if arch in LIGHT else theirs.root
                path = folder / "scores" / (f"{run_name(arch, name)}.json" if arch in LIGHT
                                            else f"{name}.json")
                if path.is_file():
                    videos = json.loads(path.read_text())["normal"]
                    hits.setdefault((arch, name), {}).update(
                        {f"{tag(dataset, split, seed)}/{k}": v for k, v in videos.items()})
    tags = [tag(dataset, split, seed) for split, seed in pairs]
    for (arch, name), videos in hits.items():  # a light run tested on other videos: a bug
        if arch in LIGHT and (REFERENCE, "rgb") in hits and videos.keys() - hits[
                (REFERENCE, "rgb")].keys():
            raise ValueError(f"{arch} {name}: test videos differ from {REFERENCE}'s")
    paired = mt.study_tables.paired
    return {arch: {"videos": len(hits[(arch, "rgb")]),
                   **paired(hits[(arch, "mars_paper")], hits[(arch, "rgb")], tags)}
            for arch in (REFERENCE, *LIGHT)
            if (arch, "rgb") in hits and (arch, "mars_paper") in hits}


def costs(crop: int = 28) -> dict[str, dict[str, Any]]:
    """GMACs of each family at its trained clip (``crop`` px) and at 112 px, against
    ResNeXt-101's 9.57 at 16x112x112."""
    from mars_action.models import build_model, count_macs

    out = {}
    for arch in (REFERENCE, *LIGHT):
        frames = CLIP.get(arch, (16, 1))[0]
        model = build_model(arch, num_classes=8).to("meta")
        trained, paper = (count_macs(model, (3, frames, side, side)) / 1e9
                          for side in (crop, 112))
        out[arch] = {"clip": [frames, crop, crop], "gmacs": trained, "gmacs_112": paper,
                     "fraction_of_resnext101_112": paper / RESNEXT101_GMACS_16x112}
    return out


def latency() -> dict[str, dict[str, Any]]:
    """Per family, the rows ``bench_precision_speed.py --name precision_speed_<arch>``
    measured on its seed-0 MARS student (trained clip size; ``at_112``: enlarged)."""
    rows = {}
    for arch in (REFERENCE, *LIGHT):
        path = HERE / "results" / f"precision_speed_{arch}.json"
        if not path.is_file():
            continue
        sizes = [{k: v for k, v in size.items() if isinstance(v, dict) and "speedup_b1" in v}
                 for size in json.loads(path.read_text())["figures"]["sizes"].values()]
        rows[arch] = {**sizes[0], "at_112": sizes[-1]} if len(sizes) > 1 else sizes[0]
    return rows


def gather(dataset: str, pairs: list[tuple[int, int]]) -> dict[str, Any]:
    """The frontier's figures: accuracies, gains kept, GMACs, latency rows (the latency
    rows were measured on the synthetic set's students; the UCF101 result leaves them
    out) and, off the synthetic set, the pooled sign test of MARS against RGB."""
    mt = study()
    rows = accuracy(mt, dataset, pairs)
    figures = {"study": dataset, "seeds": [seed for _, seed in pairs],
               "archs": [REFERENCE, *LIGHT],
               "teacher": "the study's Flow resnet10_tiny of each seed", "accuracy": rows,
               "gain_kept": gains(rows, dataset, pairs),
               "gmacs": costs(mt.settings_for(dataset, *pairs[0]).crop_size),
               "latency": latency() if dataset == "synthetic" else {},
               "stream": None, "load_average": os.getloadavg()}
    if dataset != "synthetic":
        figures["splits"] = [split for split, _ in pairs]
        figures["paired_mars_vs_rgb"] = paired(mt, dataset, pairs)
    return figures


def summary(figures: dict[str, Any]) -> str:
    """One line: mean top-1 per family and stream, and each light family's gain kept."""
    rows, parts = figures["accuracy"], []
    for arch in figures["archs"]:
        for stream in ("rgb", "mars", "rgb_control"):
            values = [r["top1"] for r in rows.values()
                      if (r["arch"], r["stream"]) == (arch, stream)]
            if values:
                parts.append(f"{arch} {stream} {statistics.fmean(values):.1f} ({len(values)})")
    for arch, kept in figures["gain_kept"].items():
        mean, pooled = kept["vs_rgb"]["mean_kept"], kept["vs_rgb"].get("pooled_kept")
        if mean is not None:
            pooled = "n/a" if pooled is None else f"{pooled:.2f}"
            parts.append(f"{arch} keeps {mean:.2f} of the gain (pooled {pooled}; "
                         f"{len(kept['vs_rgb']['per_seed'])})")
    return f"{figures['study']} frontier: " + "; ".join(parts)


def run_stage(args) -> None:
    """``bench_frontier.py train|refresh --study synthetic|ucf101 [--splits] [--seeds]
    [--archs] [--streams]``: train what is missing (every family of a (split, seed) pair
    before the next pair; ``--splits`` pairs with ``--seeds`` in order, split 1 when
    omitted), then write the result from every finished run."""
    from harness import write_result

    dataset = args.study
    pairs = list(zip(args.splits or [1] * len(args.seeds), args.seeds, strict=True))
    if args.stage in ("train", "all"):
        for split, seed in pairs:
            for arch in args.archs or LIGHT:
                run_job(arch, dataset, split, seed, args.streams or list(RUNS))
    figures = gather(dataset, pairs)
    name = "frontier" if dataset == "synthetic" else f"frontier_{dataset}"
    write_result(name, figures, summary=summary(figures))
