"""Batches built ahead in worker processes are the batches the training process would build."""

from __future__ import annotations

import os

from prodepth_cli.training.prefetch import Prefetcher


def square_and_pid(step: int) -> tuple[int, int]:
    return step * step, os.getpid()


def test_workers_return_each_steps_batch_in_order():
    with Prefetcher(square_and_pid, 2, start=3, end=12) as ahead:
        got = [ahead.get(step) for step in range(3, 12)]
    assert [value for value, _ in got] == [s * s for s in range(3, 12)]
    assert os.getpid() not in {pid for _, pid in got}, "built in the workers"


def test_no_workers_builds_in_this_process():
    with Prefetcher(square_and_pid, 0, start=0, end=4) as here:
        assert [here.get(s) for s in range(4)] == [(s * s, os.getpid()) for s in range(4)]
