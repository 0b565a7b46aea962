"""Stages overlapped on threads, in order, with bounded memory.

On a CPU the pipeline's stages are mostly OpenCV, FFmpeg and PyTorch calls that release the GIL, so
running neighbouring stages on their own threads keeps every core busy: decode and analysis (L, cuts,
flow) run ahead of the keyframe stage, and finishing (upscale, LAB -> RGB) runs behind it, while the
diffusion model uses the cores they leave. Every stage still sees its items one at a time and in
order, so the frames are exactly those of a single-threaded run.

* :class:`Prefetch` iterates a source on its own thread, at most ``depth`` items ahead.
* :func:`map_ahead` applies a function to a stream's items on one worker thread, at most ``depth``
  results pending, and yields the results in order.

Errors come out where the consumer reads, in order; closing the consumer stops the threads.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["Prefetch", "map_ahead"]

T = TypeVar("T")
R = TypeVar("R")


class Prefetch(Iterator[T]):
    """Iterate ``source`` on a thread named ``name``, at most ``depth`` items ahead; its exceptions come out
    of ``next()`` in order. ``close()`` (or leaving a ``with`` block) stops the thread early and waits for it."""

    def __init__(self, source: Iterable[T], depth: int = 2, name: str = "hueshift-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(source),), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._offer(("item", item)):
                    return
        except BaseException as err:  # noqa: BLE001 — handed to the consumer
            self._offer(("error", err))
            return
        finally:
            close = getattr(source, "close", None)
            if self._stop.is_set() and close is not None:
                close()  # a generator stopped early: run its cleanup on the thread that ran it
        self._offer(("done", None))

    def _offer(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetch[T]:
        return self

    def __next__(self) -> T:
        kind, value = self._q.get()
        if kind == "item":
            return value
        self._q.put((kind, value))  # stay exhausted
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        try:  # wake a consumer that may still wait on another thread: it sees the end, not a hang
            self._q.put_nowait(("done", None))
        except queue.Full:
            pass

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def map_ahead(fn: Callable[[T], R], items: Iterable[T], depth: int = 2, name: str = "hueshift-worker"
              ) -> Iterator[R]:
    """``fn(item)`` for every item, in order, computed on one worker thread while the caller's thread
    produces the next items. At most ``depth`` items wait or run beyond the one being yielded; a result is
    yielded as soon as it is ready. An error from ``fn`` comes out at that item's place; closing the
    generator cancels what has not started and waits for the item running."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                while pending and (len(pending) > depth or pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
