"""The ``hueshift`` command line: a thin dispatcher over the library.

Each subcommand lives with the code it drives: a module exposing
``add_arguments(parser)`` and ``run(args) -> int``. Errors caused by input are printed
on one line (``hueshift <command>: error: ...``) with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import HueShiftError

# name -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "colorize": ("hueshift_core.cli_video", "colorize a grey (or colour) video file"),
    "colorize-image": ("hueshift_core.cli_image", "colorize one or more images"),
    "eval": ("hueshift_core.evaluate", "colorize colour clips turned grey and measure quality and steadiness"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hueshift", description="HueShift: colorize grey video with a small diffusion model.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # `hueshift train ...` hands its arguments to hueshift_core.train unchanged (see main()).
    sub.add_parser("train", help="train a model on zip shards, image folders or videos", add_help=False)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            p.set_defaults(_module=None)
            continue
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        from . import train

        return train.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args._module is None:
        print(f"hueshift {args.command}: not available in this build", file=sys.stderr)
        return 2
    try:
        return int(args._module.run(args) or 0)
    except HueShiftError as err:
        print(f"hueshift {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hueshift {args.command}: interrupted; no partial output was left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
