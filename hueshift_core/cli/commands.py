"""The ``hueshift`` command: its subcommand table, parser and :func:`main`.

Each subcommand lives with the code it drives: a module exposing
``add_arguments(parser)`` and ``run(args) -> int``. Errors caused by input are printed
on one line (``hueshift <command>: error: ...``) with exit status 2, never as a traceback.
Warnings (a truncated file, ...) are printed once each, on one line. Ctrl-C, SIGTERM and SIGHUP
stop the run at any point, start-up included: every writer deletes its temporary file, so no
partial output is left, and the exit status is 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings

from .. import threads
from ..errors import HueShiftError

# OpenMP reads its wait policy once, when torch loads: set it before any command module imports torch
# (a value in the environment wins). See hueshift_core.threads.
threads.set_wait_policy()

# name -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "colorize": ("hueshift_core.cli.video", "colorize a grey (or colour) video file"),
    "colorize-image": ("hueshift_core.cli.image", "colorize one or more images"),
    "colorize-many": ("hueshift_core.cli.many", "colorize many videos (and long ones in pieces), in this process or on Ray"),
    "eval": ("hueshift_core.cli.eval", "colorize colour clips turned grey and measure quality and steadiness"),
}


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM / SIGHUP, so the same clean-up as Ctrl-C runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame) -> None:  # noqa: ARG001
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM (job schedulers, ``docker stop``) and SIGHUP (a closed terminal) behave like Ctrl-C."""
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                signal.signal(sig, _on_signal)
            except (ValueError, OSError):  # not the main thread, or not allowed here
                pass


def one_line_warnings(prefix: str) -> None:
    """Print each distinct warning once, as ``<prefix>: warning: <message>`` (no source line)."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
        text = " ".join(str(message).split())
        if text in seen:
            return
        seen.add(text)
        print(f"{prefix}: warning: {text}", file=sys.stderr, flush=True)

    warnings.showwarning = show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hueshift", description="HueShift: colorize grey video with a small diffusion model.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # `hueshift train ...` hands its arguments to hueshift_core.training unchanged (see main()).
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
    install_signal_handlers()
    command = argv[0] if argv and not argv[0].startswith("-") else "hueshift"
    name = f"hueshift {command}" if command != "hueshift" else "hueshift"
    shown = warnings.showwarning
    try:
        one_line_warnings(name)
        if argv[:1] == ["train"]:
            from .. import training

            return training.main(argv[1:])
        args = build_parser().parse_args(argv)
        name = f"hueshift {args.command}"
        if args._module is None:
            print(f"{name}: not available in this build", file=sys.stderr)
            return 2
        n = getattr(args, "threads", None)  # torch's and OpenCV's pools sized to the free CPUs (or --threads)
        threads.configure(n if isinstance(n, int) and 1 <= n <= 1024 else None)
        return int(args._module.run(args) or 0)
    except HueShiftError as err:
        print(f"{name}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        what = {signal.SIGINT: "Ctrl-C"}.get(signum, signal.Signals(signum).name)
        print(f"{name}: interrupted ({what}); no partial output was left", file=sys.stderr)
        return 128 + int(signum)
    except MemoryError:
        print(f"{name}: error: out of memory; try smaller inputs or --max-frames", file=sys.stderr)
        return 2
    except OSError as err:  # a file system failure the checks could not foresee (disk full, I/O error)
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"{name}: error: {err.strerror or err}{where}; no partial output was left", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 — a bug: still one line, the traceback on request
        if os.environ.get("HUESHIFT_DEBUG"):
            raise
        first = (str(err).splitlines() or [""])[0][:300]
        print(f"{name}: internal error: {type(err).__name__}: {first} (a bug: please report it; "
              "HUESHIFT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    raise SystemExit(main())
