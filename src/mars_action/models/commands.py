"""``mars model-info`` and ``mars convert``."""

from __future__ import annotations

import argparse
import dataclasses

from mars_action.errors import MarsError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mars model-info`` and ``mars convert`` to ``mars`` (``cli.py`` calls this); the
    handlers import torch and the stage's modules themselves, so building the parser stays
    light."""
    info = subparsers.add_parser(
        "model-info", help="parameters and GMACs of a model for a clip shape"
    )
    info.add_argument(
        "name", help="model name, e.g. resnext101, resnet18, resnet10_tiny (a wrong name "
        "lists them all)"
    )
    info.add_argument("--in-channels", type=int, default=3, help="3 for RGB, 2 for flow")
    info.add_argument("--num-classes", type=int, default=400, help="outputs of the classifier")
    info.add_argument("--clip", default="16x112x112", help="T x H x W (default 16x112x112)")
    info.set_defaults(handler=_model_info)

    convert = subparsers.add_parser(
        "convert",
        help="turn a released MARS .pth, or torchvision / PyTorchVideo / Hara 3D-ResNets "
        "weights, into a self-describing checkpoint",
    )
    convert.add_argument("source", help="e.g. MARS_Kinetics_16f.pth, r2plus1d_18-91a641e6.pth")
    convert.add_argument("output", help="where to write our checkpoint (.pt)")
    convert.add_argument("--labels", help="class names, one per line (or 'index name')")
    convert.add_argument("--arch", help="architecture when the file names none")
    convert.add_argument("--clip-len", type=int, help="frames per clip (default: from the name)")
    convert.set_defaults(handler=_convert)


def _parse_clip(text: str) -> tuple[int, int, int]:
    try:
        t, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise MarsError(f"--clip {text!r}: expected T x H x W such as 16x112x112") from None
    return t, h, w


def _model_info(args: argparse.Namespace) -> int:
    import torch

    from mars_action.models.complexity import count_macs, count_parameters
    from mars_action.models.registry import build_model

    t, h, w = _parse_clip(args.clip)
    with torch.device("meta"):  # shapes only: counts of any model at any clip size, at once
        model = build_model(args.name, in_channels=args.in_channels, num_classes=args.num_classes)
    params = count_parameters(model)
    macs = count_macs(model, (args.in_channels, t, h, w))
    channels = f"{args.in_channels} input channels"
    print(f"model       {args.name} ({channels}, {args.num_classes} classes)")
    print(f"clip        {args.in_channels}x{t}x{h}x{w}")
    print(f"parameters  {params / 1e6:.2f} M ({params:,})")
    print(f"GMACs       {macs / 1e9:.2f}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from mars_action.models.checkpoint import load_checkpoint, read_labels, save_checkpoint

    names = read_labels(args.labels) if args.labels else None
    model, meta = load_checkpoint(args.source, arch=args.arch, class_names=names)
    if args.clip_len:
        meta = dataclasses.replace(meta, clip_len=args.clip_len)
    save_checkpoint(args.output, model, meta)
    labels = f"{len(meta.class_names)} class names" if meta.class_names else "no class names"
    print(
        f"wrote {args.output}: {meta.arch}, {meta.stream} stream, {meta.modality} input, "
        f"{meta.num_classes} classes, {labels}, {meta.clip_len}-frame clips"
    )
    return 0
