"""The ``mars`` command. Thin on purpose: each stage registers its own subcommands.

Every stage package has a ``commands.py`` with ``register(subparsers)``; each
subcommand's handler calls one function of that stage and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mars_action import __version__
from mars_action.errors import MarsError

# Order is the order of ``mars --help``: the data's journey.
STAGES = (
    "video",
    "flow",
    "data",
    "models",
    "training",
    "evaluation",
    "inference",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mars",
        description="Action recognition without optical flow at test time (MARS, CVPR 2019).",
    )
    parser.add_argument("--version", action="version", version=f"mars-action {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for stage in STAGES:
        module = importlib.import_module(f"mars_action.{stage}.commands")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except MarsError as error:
        print(f"mars {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mars {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
