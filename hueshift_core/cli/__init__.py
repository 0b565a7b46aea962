"""The ``hueshift`` command line: a thin dispatcher (:mod:`.commands`) over the library.

Each subcommand lives with the code it drives, a module exposing ``add_arguments(parser)`` and
``run(args) -> int``: ``colorize`` is :mod:`.video`, ``colorize-image`` is :mod:`.image`,
``colorize-many`` is :mod:`hueshift_core.cluster.command`, ``eval`` is :mod:`hueshift_core.evaluation.clips`
and ``train`` hands its arguments to :mod:`hueshift_core.training`. Importing this package loads no
torch, PyAV or OpenCV; ``python -m hueshift_core.cli`` is the ``hueshift`` command.
"""

from __future__ import annotations

from .commands import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
