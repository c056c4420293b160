"""``mars train CONFIG [key=value ...] [--run-dir DIR] [--resume] [--gpus N]`` and
``mars pretrain CONFIG [key=value ...] [--run-dir DIR] [--resume]``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mars train`` and ``mars pretrain`` to ``mars`` (``cli.py`` calls this); the
    handlers import torch and the stage's modules themselves, so building the parser stays
    light."""
    parser = subparsers.add_parser(
        "train",
        help="train an RGB, Flow, MERS or MARS stream from a YAML experiment",
        description="Train the stream a YAML experiment describes (configs/...). Dotted "
        "overrides go after the file, e.g. `mars train configs/paper/hmdb51_mars_16f.yaml "
        "distill.teacher=runs/flow/checkpoints/best.pt recipe=released`. Several hosts: run "
        "`mars train CONFIG --gpus G --nnodes N --node-rank R --master ADDR:PORT` on each "
        "(same CONFIG and --run-dir on a shared disk; docs/cluster.md), or start torchrun "
        "yourself: the run reads its environment.",
    )
    parser.add_argument("config", help="the experiment YAML (or a run folder's config.yaml)")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="KEY=VALUE, e.g. optim.lr=0.01 (also accepted after the options)",
    )
    parser.add_argument("--run-dir", help="run folder (default: runs/<config name>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from RUN_DIR/checkpoints/last.pt (starts afresh when there is none)",
    )
    parser.add_argument(
        "--gpus",
        type=int,
        help="start N processes with torchrun, one per GPU (without CUDA: N CPU processes)",
    )
    parser.add_argument(
        "--nnodes",
        type=int,
        default=1,
        help="hosts of one run: start the same command on each, with its --node-rank",
    )
    parser.add_argument("--node-rank", type=int, default=0, help="this host's rank (0: master)")
    parser.add_argument(
        "--master", metavar="ADDR:PORT", help="node 0's address and a free port (--nnodes > 1)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="annotated videos not found or classes without training videos are errors "
        "(default: warnings)",
    )
    parser.set_defaults(handler=_train)
    _register_pretrain(subparsers)


def _register_pretrain(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="motion pretraining: an RGB network learns a Flow teacher's features, or the "
        "clip's flow itself; no labels",
        description="Train an RGB network on any videos (labels unused) to reproduce the "
        "features of the frozen Flow teacher distill.teacher, with the distill.* terms "
        "(e.g. distill.normalize=standardize distill.hints.layer3=1), or, with no teacher, "
        "to regress the clip's own flow averaged to the grid of its distill.flow_layer maps "
        "(distill.alpha=0 distill.flow_regression=1; end-point error). A frame store with "
        "flow as the data (data.format=folder data.annotations=STORE data.frame_root=STORE) "
        "or distill.unlabeled adds unlabelled clips. The run's checkpoints/best.pt (the last "
        "epoch's weights) is what model.pretrained of a later `mars train` accepts. Progress, "
        "metrics and --resume as `mars train`.",
    )
    parser.add_argument("config", help="an experiment YAML (its stream is set to pretrain)")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE, e.g. schedule.epochs=30")
    parser.add_argument("--run-dir", help="run folder (default: runs/<config name>_pretrain)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN_DIR/checkpoints/last.pt")
    parser.set_defaults(handler=_pretrain)


def _pretrain(args: argparse.Namespace) -> int:
    from mars_action.training.config import load_experiment
    from mars_action.training.trainer import train

    config = load_experiment(args.config, [*args.overrides, "stream=pretrain"])
    run_dir = Path(args.run_dir) if args.run_dir else pretrain_run_dir(config.name)
    summary = train(config, run_dir, resume=args.resume)
    last = summary.history[-1] if summary.history else {}
    loss = f"val loss {last['val_loss']:.4f}" if last.get("val_loss") is not None else (
        f"train loss {last.get('train_loss', float('nan')):.4f}")
    print(f"mars pretrain: {summary.epochs} epochs, {loss}; start a stream from it with "
          f"model.pretrained={summary.best_checkpoint}")
    return 0


def pretrain_run_dir(name: str) -> Path:
    """``mars pretrain``'s default run folder for config ``name``: its own folder beside
    ``mars train``'s ``runs/<name>``, so a config's ``model.pretrained`` can name the
    checkpoint before it exists (configs/small/mars.yaml names small/pretrain.yaml's)."""
    return Path("runs") / f"{name}_pretrain"


def _train(args: argparse.Namespace) -> int:
    from mars_action.training.config import load_experiment
    from mars_action.training.distributed import launch, parse_nodes
    from mars_action.training.trainer import train

    if args.strict:  # kept in the run's config.yaml like any other setting
        args.overrides = [*args.overrides, "data.strict=true"]
    config = load_experiment(args.config, args.overrides)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / config.name
    nodes = parse_nodes(args.nnodes, args.node_rank, args.master)
    several = (args.gpus and args.gpus > 1) or nodes.count > 1
    if several and "LOCAL_RANK" not in os.environ:
        argv = ["train", args.config, *args.overrides, "--run-dir", str(run_dir)]
        return launch(argv + (["--resume"] if args.resume else []), args.gpus or 1, nodes)
    summary = train(config, run_dir, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        best = (
            f"best val CLIP accuracy {summary.best_val_acc:.4f} (one centre clip a video) at "
            f"epoch {summary.best_epoch}; VIDEO accuracy: mars eval"
            if summary.best_epoch
            else "no best epoch"
        )
        print(f"mars train: {summary.epochs} epochs, {best}; run folder {summary.run_dir}")
    return 0
