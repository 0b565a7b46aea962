"""The ``hueshift`` command line: a thin dispatcher (:mod:`.commands`) over the library.

Each subcommand is a module here exposing ``add_arguments(parser)`` and ``run(args) -> int``:
``colorize`` is :mod:`.video`, ``colorize-image`` :mod:`.image`, ``colorize-many`` :mod:`.many`, ``eval``
:mod:`.eval`; ``train`` hands its arguments to :mod:`hueshift_core.training`. The options they share are
:mod:`.options`; nothing outside this package imports from it (the library takes data and option objects). Importing this package loads no
torch, PyAV or OpenCV; ``python -m hueshift_core.cli`` is the ``hueshift`` command.
"""

from __future__ import annotations

from .commands import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
