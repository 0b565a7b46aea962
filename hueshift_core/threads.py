"""Thread discipline: good throughput alone, graceful degradation on a shared machine.

Two levers, because PyTorch's OpenMP pool, OpenCV's pool and FFmpeg's (PyAV's) decoder and
encoder threads all start one thread per core by default, and on a shared machine they fight
each other and everything else:

* :func:`set_wait_policy` — ``OMP_WAIT_POLICY=PASSIVE`` (``os.environ.setdefault``: a value the
  user set wins). OpenMP threads that wait at a barrier then sleep instead of spinning; a spinning
  pool burns the cores other processes (and a pool thread that got descheduled) need. OpenMP reads
  it once, when torch loads, so it must run *before* ``import torch``: the ``hueshift`` command
  does it first thing (:mod:`hueshift_core.cli`). Inside ComfyUI torch is already loaded, so there
  only the second lever works.
* :func:`configure` — size the pools (:func:`choose`): the CPUs this process may use
  (``os.sched_getaffinity``) minus the ones other processes keep busy now (runnable tasks, sampled a few
  times over ~10 ms, minus this one; the load average lags by a minute), at least one, whatever the wait
  policy. Called at the start of every command and by the ComfyUI nodes before each run, so the pools
  shrink while another job runs and grow back. (Until round 5 a passive pool always took every CPU: that
  was better beside busy processes while the pipeline ran on one thread; with its stages overlapped on
  threads, the other stages use the CPUs a smaller pool leaves, and the sized pool keeps more speed.)

``threads`` given (``--threads N``) or ``OMP_NUM_THREADS`` set: that number is used as is.
``benchmarks/bench_load.py`` measures the effect (the pipeline alone and beside busy processes).
"""

from __future__ import annotations

import os
import sys
import time

WAIT_POLICY = "PASSIVE"


def set_wait_policy() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set; effective only if torch is not loaded yet."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: taskset, cgroups' cpusets, Slurm...)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_elsewhere(own_running: int = 1, samples: int = 5) -> float:
    """About how many CPUs other processes keep busy now: the median of a few instantaneous counts of
    runnable tasks (/proc/loadavg's 4th field, ~2 ms apart) minus ``own_running``. The 1-minute load
    average lags by a minute either way, so it is only the fallback where /proc is not there."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            break
        if i + 1 < samples:
            time.sleep(0.002)
    if counts:
        return max(0.0, float(sorted(counts)[len(counts) // 2] - own_running))
    try:
        return max(0.0, os.getloadavg()[0] - own_running)
    except (AttributeError, OSError):
        return 0.0


def auto_threads(cpus: int | None = None, busy: float | None = None) -> int:
    """Threads for one CPU-bound pool: the free CPUs, rounded, at least 1."""
    cpus = available_cpus() if cpus is None else cpus
    busy = busy_elsewhere() if busy is None else busy
    return max(1, min(cpus, int(cpus - busy + 0.5)))


def _env_threads() -> int | None:
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n >= 1 else None


_current: int | None = None


def current() -> int:
    """The thread count last set by :func:`configure` (or what it would choose now)."""
    return _current if _current is not None else choose()


def choose(threads: int | None = None) -> int:
    """The thread count :func:`configure` uses: ``threads``, else ``OMP_NUM_THREADS``, else the CPUs other
    processes leave free (:func:`auto_threads`; every CPU of the affinity on a quiet machine).

    Measured (``benchmarks/bench_load.py``, docs/benchmarks.md "Thread policy"): a spinning pool with one thread per CPU
    collapses beside busy processes; with the pipeline's stages overlapped on threads, a pool sized to the
    free CPUs kept more speed beside them than one thread per CPU, passive or not."""
    if threads:
        return int(threads)
    env = _env_threads()
    if env:
        return env
    return auto_threads()


def configure(threads: int | None = None) -> int:
    """Size torch's intra-op pool and OpenCV's pool (and, via :func:`current`, PyAV's codec threads)
    by :func:`choose`. Returns the number used. Imports torch and OpenCV only if they are not loaded yet."""
    global _current
    torch = sys.modules.get("torch")
    if torch is None:
        set_wait_policy()
        import torch
    n = choose(threads)
    _current = n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    cv2 = sys.modules.get("cv2")
    if cv2 is None:
        import cv2
    cv2.setNumThreads(n)
    return n
