"""Subcommands of this stage (filled in by the stage's issue)."""


def register(subparsers) -> None:
    pass
