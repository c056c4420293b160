"""``mars eval``, ``mars fuse``, ``mars report`` (and ``mars analyze``, see analyze_commands)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mars_action.errors import MarsError
from mars_action.evaluation import analyze_commands
from mars_action.evaluation.arguments import add_data_arguments, add_model_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mars eval``, ``mars fuse`` and ``mars report`` to ``mars`` (``cli.py`` calls this);
    the handlers import torch and the stage's modules themselves, so building the parser stays
    light."""
    evaluate_parser = subparsers.add_parser(
        "eval", help="video-level accuracy of a checkpoint; writes per-video scores"
    )
    evaluate_parser.add_argument("checkpoint", help="our .pt or a released MARS .pth")
    add_model_arguments(evaluate_parser)
    add_data_arguments(evaluate_parser)
    evaluate_parser.add_argument(
        "--out", help="score file (.npz; a .json summary goes beside it). Default: "
        "RUN/scores/<split>.npz for RUN/checkpoints/*.pt, else <checkpoint>-<split>.npz "
        "(other --clips/--crops/--aggregate/--limit add to the name)")
    evaluate_parser.set_defaults(handler=_eval)

    fuse_parser = subparsers.add_parser(
        "fuse", help="average the scores of streams (late fusion); --table: the paper's Table 1"
    )
    fuse_parser.add_argument("scores", nargs="+", metavar="[STREAM=]SCORES.npz",
                             help="score files of mars eval; STREAM= names a file's stream")
    fuse_parser.add_argument("--weights", nargs="+", type=float, help="one weight per file")
    fuse_parser.add_argument("--table", action="store_true",
                             help="every RGB/Flow/MERS/MARS combination (equal weights)")
    fuse_parser.add_argument("--out", help="write the fused scores (.npz), or the table (.json)")
    fuse_parser.set_defaults(handler=_fuse)

    report_parser = subparsers.add_parser(
        "report", help="one self-contained HTML page of runs, scores and analysis figures"
    )
    report_parser.add_argument("paths", nargs="+", metavar="RUN_OR_SCORE_DIR",
                               help="run folders, score files, analysis output folders")
    report_parser.add_argument("--out", default="report.html", help="the HTML file to write")
    report_parser.add_argument("--title", default="", help="the page's title")
    report_parser.set_defaults(handler=_report)

    analyze_commands.register(subparsers)


# --- handlers -------------------------------------------------------------------------

def _default_out(args: argparse.Namespace) -> Path:
    """RUN/scores/test.npz for the paper's protocol; other settings get their own name."""
    variant = "".join((
        f"-clips{args.clips}" if args.clips != "all" else "",
        f"-crops{args.crops}" if args.crops != 1 else "",
        f"-{args.aggregate}" if args.aggregate != "logits" else "",
        f"-first{args.limit}" if args.limit else "",
        "-released" if getattr(args, "protocol", "mars") == "released" else "",
    ))
    path = Path(args.checkpoint)
    if path.parent.name == "checkpoints":
        return path.parent.parent / "scores" / f"{args.split}{variant}.npz"
    return Path(f"{path.stem}-{args.split}{variant}.npz")


def _eval(args: argparse.Namespace) -> int:
    from mars_action.evaluation.cli_common import (
        evaluate_checkpoint,
        load_model,
        print_summary,
        report_failures,
    )
    from mars_action.evaluation.metrics import summarize
    from mars_action.evaluation.scores import save_scores

    model, meta = load_model(args, args.checkpoint)
    result = evaluate_checkpoint(args, model, meta, args.checkpoint)
    out = save_scores(args.out or _default_out(args), result)
    summary = summarize(result)
    print_summary(summary, f"{meta.stream} ({args.split})")
    seconds = summary["seconds_per_video_data"], summary["seconds_per_video_network"]
    print(f"per video: {seconds[0]:.3f} s reading, {seconds[1]:.3f} s network")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return report_failures(result)


def _fuse(args: argparse.Namespace) -> int:
    from mars_action.evaluation.cli_common import load_named_scores, named_paths, print_summary
    from mars_action.evaluation.files import write_json
    from mars_action.evaluation.fusion import format_table, fuse, stream_table
    from mars_action.evaluation.metrics import summarize
    from mars_action.evaluation.scores import load_scores, save_scores

    if args.table:
        if args.weights:
            raise MarsError("--table fuses with equal weights, as the paper; drop --weights")
        rows = stream_table(load_named_scores(args.scores))
        print(format_table(rows))
        if args.out:
            print(f"wrote {write_json(args.out, [r for r in rows if r is not None])}")
        return 0
    named = named_paths(args.scores)
    results = [load_scores(path) for _, path in named]
    for result, (name, _) in zip(results, named, strict=True):
        result.stream = name or result.stream
    fused = fuse(results, args.weights, names=[path for _, path in named])
    print_summary(summarize(fused), fused.stream)
    if args.out:
        print(f"wrote {save_scores(args.out, fused)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from mars_action.evaluation.report import write_report

    out = write_report(args.paths, args.out, args.title)
    print(f"wrote {out}")
    return 0
