"""The ``siuo`` command (``app``: the parser and the data/score/tasks-path commands; ``verify``,
``report``, ``doctor``: the other subcommands)."""

from siuo_task.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
