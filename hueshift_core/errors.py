"""Errors HueShift raises on bad input: each message says what was wrong and what to do."""

from __future__ import annotations


class HueShiftError(ValueError):
    """Base class of every error caused by user input (files, sizes, options).

    Subclasses ``ValueError`` so callers that do not know HueShift still catch it.
    The command line prints ``str(err)`` on one line and exits with status 2.
    """


class CheckpointError(HueShiftError):
    """A model file is missing, not safetensors, truncated, or does not match its config."""


class VideoError(HueShiftError):
    """A video cannot be read or written (missing, corrupt, empty, unsupported size)."""


class InputError(HueShiftError):
    """An image, tensor or option is not what the function expects."""
