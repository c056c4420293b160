"""The ``mars`` command. Thin on purpose: each stage registers its own subcommands.

Every stage package has a ``commands.py`` with ``register(subparsers)``; each
subcommand's handler calls one function of that stage and returns an exit code.
``commands.py`` files import torch, OpenCV and the stage's modules inside their
handlers, so ``mars --help`` loads none of them; the thread policy
(:mod:`mars_action.threads`) is set before a handler imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mars_action import __version__, threads
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
    """The ``mars`` parser: each stage registers its own subcommands, so this file stays thin."""
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


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; a command with ``overrides`` also takes KEY=VALUE after its options
    (``mars train cfg --resume schedule.epochs=4``), which argparse alone refuses."""
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all(_is_override(item) for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _is_override(item: str) -> bool:
    return "=" in item and not item.startswith("-")


def main(argv: list[str] | None = None) -> int:
    """Run one ``mars`` command; a :class:`MarsError` becomes one line on stderr and exit 2,
    never a traceback (the CLI's contract with scripts that call it)."""
    parser = build_parser()
    args = parse(parser, argv)
    threads.apply()
    try:
        code = args.handler(args)
    except MarsError as error:
        print(f"mars {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mars {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mars ... | head`: the reader has all it wanted; stay quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command cut off this way
    except OSError as error:  # disk full, permission denied: the user's to fix, one line
        if error.strerror is None:
            raise
        from mars_action.files import describe_os_error

        print(f"mars {args.command}: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
