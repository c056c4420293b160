"""``mars analyze <static|cam|classwise|alpha-sweep|curves|time|frontier>``: PNG and JSON."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mars_action.errors import MarsError
from mars_action.evaluation.arguments import add_data_arguments, add_model_arguments

_SAFE_NAME = re.compile(r"[^\w.-]+")  # video ids -> file names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mars analyze`` and its analyses to ``mars`` (``cli.py`` calls this); the handlers
    import torch and the stage's modules themselves, so building the parser stays light."""
    analyze = subparsers.add_parser(
        "analyze", help="the paper's analyses: figures (PNG) and their numbers (JSON)")
    kinds = analyze.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)

    static = kinds.add_parser("static", help="accuracy on static clips (section 5.4)")
    static.add_argument("checkpoints", nargs="+", help="checkpoints of the streams to compare")
    add_model_arguments(static)
    add_data_arguments(static)
    static.add_argument("--out", default="analysis/static", help="output folder")
    static.set_defaults(handler=_static)

    cam = kinds.add_parser("cam", help="class activation maps of the true class (Fig. 6)")
    cam.add_argument("checkpoints", nargs="+", help="one column per stream")
    add_model_arguments(cam)
    add_data_arguments(cam)
    cam.add_argument("--num-videos", type=int, default=4, help="evenly spaced over the split")
    cam.add_argument("--max-clips", type=int, default=2, help="clips per video in the MP4")
    cam.add_argument("--static", action="store_true", help="feed static clips, as Fig. 6")
    cam.add_argument("--out", default="analysis/cam", help="output folder")
    cam.set_defaults(handler=_cam)

    classwise = kinds.add_parser("classwise", help="top/bottom classes of MARS - RGB (Fig. 5)")
    classwise.add_argument("scores", nargs="+", metavar="[STREAM=]SCORES.npz",
                           help="score files of mars eval; STREAM= names a file's stream")
    classwise.add_argument("-k", type=int, default=3, help="classes at each end")
    classwise.add_argument("--reference", default="rgb", help="the stream compared against")
    classwise.add_argument("--target", default="mars", help="the stream whose gains are shown")
    classwise.add_argument("--out", default="analysis/classwise", help="output folder")
    classwise.set_defaults(handler=_classwise)

    sweep = kinds.add_parser("alpha-sweep", help="train MARS per alpha, plot accuracy (Fig. 4b)")
    sweep.add_argument("--config", help="MARS training config to sweep (trains the runs)")
    sweep.add_argument("--alphas", nargs="+", type=float, default=[0, 5, 50, 100, 200],
                       help="the weights of the distillation loss to train")
    sweep.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                       help="config overrides for every run (repeatable)")
    sweep.add_argument("--runs", nargs="+", default=[], help="finished runs to plot instead")
    sweep.add_argument("--flow", help="Flow run folder or score file (the reference on the right)")
    sweep.add_argument("--out", default="analysis/alpha_sweep", help="output folder")
    sweep.set_defaults(handler=_alpha_sweep)

    curves = kinds.add_parser("curves", help="losses and accuracies per epoch (Fig. 4c)")
    curves.add_argument("runs", nargs="+", help="run folders (with metrics.jsonl)")
    curves.add_argument("--out", default="analysis/curves", help="output folder")
    curves.set_defaults(handler=_curves)

    timing = kinds.add_parser("time", help="accuracy vs time per video (Fig. 1, 4a)")
    timing.add_argument("scores", nargs="+", metavar="[STREAM=]SCORES.npz",
                        help="score files of mars eval; STREAM= names a file's stream")
    timing.add_argument("--flow-seconds", action="append", default=[], metavar="STREAM=S",
                        help="flow time per video of a flow stream (repeatable)")
    timing.add_argument("--measure", nargs="+", default=[], metavar="VIDEO",
                        help="videos to time decoding and flow on, here")
    timing.add_argument("--flow-method", default="tvl1", help="flow method to time")
    timing.add_argument("--combos", nargs="+", metavar="A+B",
                        help="streams and fusions to plot (default: Table 1's rows)")
    timing.add_argument("--title", default="Accuracy vs time", help="the figure's title")
    timing.add_argument("--out", default="analysis/time", help="output folder")
    timing.set_defaults(handler=_time)

    frontier = kinds.add_parser(
        "frontier", help="accuracy vs GMACs and vs CPU latency of efficient students")
    frontier.add_argument("result", help="frontier.json of benchmarks/bench_frontier.py")
    frontier.add_argument("--light", default="mobilenet3d_v2_half", help="the light student")
    frontier.add_argument("--reference", default="resnet10_tiny",
                          help="the student of the teacher's architecture")
    frontier.add_argument("--out", default="analysis/frontier", help="output folder")
    frontier.set_defaults(handler=_frontier)


def _static(args: argparse.Namespace) -> int:
    from mars_action.evaluation.cli_common import evaluate_checkpoint, load_model, report_failures
    from mars_action.evaluation.files import write_json
    from mars_action.evaluation.fusion import stream_title
    from mars_action.evaluation.scores import save_scores
    from mars_action.evaluation.static import plot_static, static_summary, static_transform

    out, pairs, status = Path(args.out), {}, 0
    for checkpoint in args.checkpoints:
        model, meta = load_model(args, checkpoint)
        name = _unique(meta.stream, pairs)
        normal = evaluate_checkpoint(args, model, meta, checkpoint)
        static = evaluate_checkpoint(args, model, meta, checkpoint, static_transform(meta))
        save_scores(out / f"{name}.npz", normal)
        save_scores(out / f"{name}_static.npz", static)
        pairs[name] = (normal, static)
        status |= report_failures(normal)
    table = static_summary(pairs)
    write_json(out / "static.json", table)
    plot_static(table, out / "static.png")
    for name, row in table.items():
        print(f"{stream_title([name])}: {row['normal_top1']:.2f}% normal, "
              f"{row['static_top1']:.2f}% static clips")
    print(f"wrote {out}/static.png, static.json and the score files")
    return status


def _unique(name: str, taken) -> str:
    index, unique = 2, name
    while unique in taken:
        unique, index = f"{name}{index}", index + 1
    return unique


def _cam(args: argparse.Namespace) -> int:
    import numpy as np

    from mars_action.evaluation.cam import save_cam_grid, save_cam_video, video_cam
    from mars_action.evaluation.cli_common import device_of, load_model
    from mars_action.evaluation.files import write_json

    streams = [load_model(args, c) for c in args.checkpoints]
    datasets = [_cam_set(args, meta, c) for (_, meta), c in zip(streams, args.checkpoints,
                                                                 strict=True)]
    count = min(len(d) for d in datasets)
    picks = np.unique(np.linspace(0, count - 1, min(args.num_videos, count)).round().astype(int))
    rows = []
    for index in picks.tolist():
        samples = [d[index] for d in datasets]
        ids = {str(s["video_id"]) for s in samples}
        if len(ids) != 1:
            raise MarsError(f"the streams' datasets differ at video #{index}: {sorted(ids)}")
        rows.append([video_cam(model, meta, sample, max_clips=args.max_clips, static=args.static,
                               device=device_of(args.device))
                     for (model, meta), sample in zip(streams, samples, strict=True)])
    out = Path(args.out)
    class_names = streams[0][1].class_names or [str(i) for i in range(streams[0][1].num_classes)]
    save_cam_grid(rows, out / "cam_grid.png", class_names)
    for row in rows:
        safe = _SAFE_NAME.sub("_", row[0].video_id)
        save_cam_video(row, out / f"cam_{safe}.mp4", fps=streams[0][1].fps)
    write_json(out / "cam_grid.json", [
        {"video_id": cam.video_id, "stream": cam.stream, "label": class_names[cam.label],
         "predicted": class_names[cam.predicted], "true_class_softmax": cam.score}
        for row in rows for cam in row
    ])
    print(f"wrote {out}/cam_grid.png, cam_grid.json and {len(rows)} MP4s")
    return 0


def _cam_set(args: argparse.Namespace, meta, checkpoint: str):
    """A flow stream's maps are drawn on the RGB frames when the frame store has them."""
    from mars_action.evaluation.cli_common import open_test_set

    if meta.modality == "flow":
        try:
            return open_test_set(args, meta, checkpoint, modality="rgb+flow")
        except MarsError:
            pass
    return open_test_set(args, meta, checkpoint)


def _classwise(args: argparse.Namespace) -> int:
    from mars_action.evaluation.classwise import classwise_comparison, plot_classwise
    from mars_action.evaluation.cli_common import load_named_scores
    from mars_action.evaluation.files import write_json

    streams = load_named_scores(args.scores)
    missing = [s for s in (args.reference, args.target) if s not in streams]
    if missing:
        raise MarsError(f"no score file for stream(s) {', '.join(missing)}; have "
                        f"{', '.join(streams)} (name files as STREAM=FILE)")
    ordered = {s: streams[s] for s in (args.reference, *streams) if s != args.target}
    ordered[args.target] = streams[args.target]
    comparison = classwise_comparison(ordered, args.k, args.reference, args.target)
    out = Path(args.out)
    write_json(out / "classwise.json", comparison)
    plot_classwise(comparison, out / "classwise.png")
    for row in comparison["top"] + comparison["bottom"]:
        print(f"{row['class']:<30} {row['difference']:+7.1f}")
    print(f"wrote {out}/classwise.png and classwise.json")
    return 0


def _alpha_sweep(args: argparse.Namespace) -> int:
    from mars_action.evaluation.files import write_json
    from mars_action.evaluation.sweep import plot_alpha_sweep, run_accuracy, run_alpha_sweep

    out = Path(args.out)
    runs = list(args.runs)
    if args.config:
        runs += run_alpha_sweep(args.config, args.alphas, out / "runs", args.override)
    if not runs:
        raise MarsError("give --config (and --alphas) to train the sweep, or --runs to plot")
    points = [run_accuracy(run) for run in runs]
    flow = run_accuracy(args.flow) if args.flow else None
    mars = [p for p in points if p["alpha"] is not None]
    write_json(out / "alpha_sweep.json", {"points": mars, "flow": flow})
    plot_alpha_sweep(mars, out / "alpha_sweep.png", flow)
    for point in sorted(mars, key=lambda p: p["alpha"]):
        print(f"alpha {point['alpha']:>6g}: {point['top1']:.2f}% ({point['source']})")
    print(f"wrote {out}/alpha_sweep.png and alpha_sweep.json")
    return 0


def _curves(args: argparse.Namespace) -> int:
    from mars_action.evaluation.curves import curve_series, plot_curves, read_metrics, run_title
    from mars_action.evaluation.files import write_json

    out = Path(args.out)
    for run in map(Path, args.runs):
        series = curve_series(read_metrics(run))
        name = run.resolve().name
        write_json(out / f"curves_{name}.json", series)
        plot_curves(series, out / f"curves_{name}.png", title=run_title(run))
        print(f"wrote {out}/curves_{name}.png ({len(series['epoch'])} epochs)")
    return 0


def _time(args: argparse.Namespace) -> int:
    from mars_action.evaluation.cli_common import load_named_scores
    from mars_action.evaluation.files import write_json
    from mars_action.evaluation.timing import (
        accuracy_vs_time,
        frames_per_video,
        measure_video_costs,
        plot_accuracy_vs_time,
        stream_costs,
    )

    streams = load_named_scores(args.scores)
    given = dict(_stream_seconds(item) for item in args.flow_seconds)
    measured = measure_video_costs(args.measure, args.flow_method) if args.measure else None
    costs = {}
    for name, result in streams.items():
        frames = frames_per_video(result) if measured else 0.0
        flow_s = given.get(name)
        if flow_s is None and measured and result.info.get("modality") == "flow":
            flow_s = measured["flow_s_per_frame"] * frames
        decode_s = measured["decode_s_per_frame"] * frames if measured else None
        costs[name] = stream_costs(result, flow_s, decode_s)
    combos = [tuple(c.lower().split("+")) for c in args.combos] if args.combos else None
    unknown = sorted({s for combo in combos or [] for s in combo} - set(streams))
    if unknown:
        raise MarsError(
            f"--combos: no score file for {', '.join(unknown)}; have {', '.join(streams)}")
    points = accuracy_vs_time(streams, costs, combos)
    out = Path(args.out)
    write_json(out / "accuracy_vs_time.json", {"points": points, "measured": measured})
    plot_accuracy_vs_time(points, out / "accuracy_vs_time.png", args.title)
    for p in points:
        print(f"{p['name']:<16} {p['top1']:6.2f}%  {p['total_s']:8.3f} s/video "
              f"(decode {p['decode_s']:.3f}, flow {p['flow_s']:.3f}, network {p['network_s']:.3f})")
    print(f"wrote {out}/accuracy_vs_time.png and accuracy_vs_time.json")
    return 0


def _stream_seconds(item: str) -> tuple[str, float]:
    name, _, value = item.partition("=")
    try:
        return name.lower(), float(value)
    except ValueError:
        raise MarsError(
            f"--flow-seconds {item!r}: expected STREAM=SECONDS, e.g. flow=31.5") from None


def _frontier(args: argparse.Namespace) -> int:
    import json

    from mars_action.evaluation.files import write_json
    from mars_action.evaluation.frontier import frontier_points, plot_frontier, targets

    try:
        data = json.loads(Path(args.result).read_text())
    except (OSError, ValueError) as error:
        raise MarsError(f"{args.result}: not a readable frontier result ({error})") from None
    figures = data.get("figures", data)  # the benchmark's file, or its figures alone
    if not isinstance(figures, dict) or "accuracy" not in figures:
        raise MarsError(f"{args.result}: no 'accuracy' of bench_frontier.py in the file")
    figures.setdefault("latency", {})
    figures.setdefault("archs", sorted({run["arch"] for run in figures["accuracy"].values()}))
    out = Path(args.out)
    points = frontier_points(figures)
    checks = targets(figures, args.light, args.reference)
    write_json(out / "frontier.json", {"points": points, "targets": checks})
    plot_frontier(points, out / "frontier.png")
    for point in points:
        print(f"{point['arch']:>20s} {point['stream']:4s} top-1 {point['top1']:5.1f} "
              f"+- {point['top1_std']:4.1f} ({point['seeds']} seeds)")
    for check in checks:
        print(f"{'met' if check['met'] else 'NOT met'}: {check['target']}")
    print(f"wrote {out}/frontier.png and {out}/frontier.json")
    return 0
