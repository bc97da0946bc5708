"""Training batches built ahead of the optimiser in worker processes.

Building a step's samples (rendering synthetic scenes, decoding and cropping real pairs) costs
as much as the step itself on a CPU, and is the bottleneck next to a GPU. A step's samples
depend only on the step number, so workers can build the coming steps in any order and the
run stays the same run: `Prefetcher(make, 0)` and `Prefetcher(make, 8)` yield the same batches.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")

_make: Callable[[int], object] | None = None  # a worker's batch builder, set by _install


def _install(make: Callable[[int], object]) -> None:
    global _make
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    cv2.setNumThreads(1)  # the workers are the parallelism
    _make = make


def _build(step: int) -> object:
    assert _make is not None
    return _make(step)


class Prefetcher(Generic[T]):
    """`get(step)` returns `make(step)`; with `workers` > 0 the next `2 * workers` steps are
    already being built in fresh processes (forkserver: forking a process whose OpenCV and
    torch thread pools are running can deadlock), so `make` must be picklable. Steps are
    asked for in increasing order from `start`."""

    def __init__(self, make: Callable[[int], T], workers: int, start: int, end: int) -> None:
        self.make, self.end, self.next, self.ahead = make, end, start, 2 * workers
        self.pending: dict[int, Future] = {}
        self.pool = None
        if workers > 0:
            self.pool = ProcessPoolExecutor(
                workers, multiprocessing.get_context("forkserver"), _install, (make,)
            )

    def get(self, step: int) -> T:
        if self.pool is None:
            return self.make(step)
        while self.next < min(step + self.ahead, self.end):
            self.pending[self.next] = self.pool.submit(_build, self.next)
            self.next += 1
        return self.pending.pop(step).result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
