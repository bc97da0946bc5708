"""Past one machine: a batch's per-image jobs on Ray actors, each holding one loaded model.

The jobs, outputs, atomic writes and outcomes are those of a local run: each actor builds the
same job runner the local run uses (loading its model once) and runs one image per task. A
local Ray is started for the run unless an address is given (`auto`, `ray://host:port`). An
actor that dies (its process killed, its node lost) is restarted and its task retried by Ray;
a task that still fails is reported as that image's error and the rest go on.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from prodepth_cli.batch import STDIO, Job, Outcome
from prodepth_cli.errors import OptionError, first_line

JobRunner = Callable[[Job], Outcome]
RunnerFactory = Callable[[], JobRunner]  # picklable: it travels to every worker
LOCAL = "local"
RETRIES = 3  # a killed worker's task is tried again this many times
WORKER_THREADS = 1  # each worker holds one CPU of Ray's; its model runs on that many threads


class JobWorker:
    """A Ray actor: builds its job runner (and so loads its model) once, then runs jobs."""

    def __init__(self, make_runner: RunnerFactory):
        self.run_job = make_runner()

    def run(self, job: Job) -> Outcome:
        return self.run_job(job)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptionError(
            "--ray needs Ray: pip install 'prodepth[ray]' (the same on every node)"
        ) from None
    return ray


def ray_map(
    jobs: list[Job],
    make_runner: RunnerFactory,
    address: str = LOCAL,
    workers: int = 2,
    gpus_per_worker: float = 0.0,
) -> Callable[[list[Job]], Iterator[Outcome]]:
    """A mapper for `run_batch` over (some of) `jobs`: jobs in, outcomes out as they finish
    (in any order). Standard input and output cannot travel: refused here, before any work."""
    if any(STDIO in (job.input, job.output) for job in jobs):
        raise OptionError("--ray: standard input and output stay local (give files)")
    ray = import_ray()

    def run(todo: list[Job]) -> Iterator[Outcome]:
        if not todo:  # everything was skipped: no cluster to start
            return
        started = _connect(ray, address, workers)
        try:
            worker = ray.remote(
                num_cpus=WORKER_THREADS,
                num_gpus=gpus_per_worker,
                max_restarts=-1,
                max_task_retries=RETRIES,
            )(JobWorker)
            actors = [worker.remote(make_runner) for _ in range(min(workers, len(todo)))]
            yield from _schedule(ray, actors, todo)
        finally:
            if started:
                ray.shutdown()

    return run


def _schedule(ray: Any, actors: list, jobs: list[Job]) -> Iterator[Outcome]:
    """One job at a time per actor, the next to whichever finishes first."""
    free, queue, running = list(actors), deque(jobs), {}
    while queue or running:
        while free and queue:
            actor, job = free.pop(), queue.popleft()
            running[actor.run.remote(job)] = (actor, job)
        (done,), _ = ray.wait(list(running), num_returns=1)
        actor, job = running.pop(done)
        free.append(actor)
        try:
            yield ray.get(done)
        except ray.exceptions.RayError as exc:
            yield Outcome(job, "error", f"{job.input}: the worker failed ({first_line(exc)})")


def _connect(ray: Any, address: str, workers: int) -> bool:
    """Join the cluster at `address`, or start a local one with a CPU per worker (True)."""
    logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up notes are not ours to print
    _cluster_events_to_stderr()
    options = dict(log_to_driver=False, logging_level="ERROR", configure_logging=False)
    if address != LOCAL:
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise OptionError(f"--ray-address {address}: {first_line(exc)}") from None
        return False
    ray.init(num_cpus=workers, include_dashboard=False, **options)
    return True


def _cluster_events_to_stderr() -> None:
    """Ray prints cluster events on the driver's stdout (say, a task retried because its
    worker died), and stdout carries our data (`--json`): send them to stderr instead."""
    try:
        from ray._private import worker
    except ImportError:  # another layout: nothing to reroute
        return
    print_logs = getattr(worker, "print_worker_logs", None)
    if print_logs is not None and hasattr(worker, "print_to_stdstream"):
        worker.print_to_stdstream = lambda data, ignore_prefix: print_logs(
            data, sys.stderr, ignore_prefix
        )
