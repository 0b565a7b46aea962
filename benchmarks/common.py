"""Shared by the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import os
import platform

import torch


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> str:
    """One line naming the machine, for every reported number."""
    gpu = f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") and torch.cuda.is_available() else ""
    return f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, device {device}{gpu}"
