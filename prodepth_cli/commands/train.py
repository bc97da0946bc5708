"""`prodepth train`: train the coarse network, the PRO refiner or the bokeh net (CPU/CUDA)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from prodepth_cli.commands.common import (
    JsonOption,
    QuietOption,
    TorchDeviceOption,
    emit_json,
    guarded,
    note,
    progress_bar,
)
from prodepth_cli.errors import OptionError
from prodepth_cli.torch_device import choose_torch_device


@guarded
def train(
    network: Annotated[str, typer.Argument(help="Which network: coarse, refiner or bokeh.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder for checkpoints.")],
    steps: Annotated[
        int | None, typer.Option("--steps", help="Optimiser steps in all (default 2000).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="JSON file of training options.")
    ] = None,
    device: TorchDeviceOption = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.pt.")] = False,
    no_consistency: Annotated[
        bool, typer.Option("--no-consistency", help="Refiner: train without the GPCT loss.")
    ] = False,
    coarse_checkpoint: Annotated[
        str | None,
        typer.Option(
            "--coarse-model",
            "--coarse-checkpoint",
            help="Refiner: the coarse model that makes its inputs, as the pipeline's coarse "
            "pass runs it: a .pt checkpoint, an ONNX file, or a catalog name such as "
            "depth-anything-v2-small (pulled on first use); the exported refiner names it.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Bokeh: folder of training windows (rendered there first if empty)."
        ),
    ] = None,
    quiet: QuietOption = False,
    json_out: JsonOption = False,
) -> None:
    """Train a network; checkpoints OUT/last.pt and OUT/best.pt (best validation score).

    The bokeh network learns the classical engine's renders of real photographs (made once
    into `--data`, default OUT/data) and keeps OUT/last.pt.
    """
    from prodepth_cli.training.config import make_config, read_config_file
    from prodepth_cli.training.loop import run_training

    device = choose_torch_device(device)
    if network.lower() == "bokeh":
        if config or no_consistency or coarse_checkpoint:
            raise OptionError("--config, --no-consistency, --coarse-model: depth nets only")
        _train_bokeh(out, data or out / "data", steps or 3000, device, resume, quiet, json_out)
        return
    if data:
        raise OptionError("--data is for the bokeh network")
    overrides = read_config_file(config) if config else {}
    overrides.update(steps=steps)
    if no_consistency:
        overrides["consistency"] = False
    if coarse_checkpoint:
        overrides["coarse_checkpoint"] = coarse_checkpoint
    cfg = make_config(network.lower(), overrides)
    with progress_bar(quiet) as bar, _kill_ends_the_step() as killed:
        task = bar.add_task(f"train {cfg.kind}", total=cfg.steps)

        def on_step(step: int, loss: float) -> None:
            bar.update(task, completed=step, description=f"train {cfg.kind} loss {loss:.4f}")
            if killed:
                raise KeyboardInterrupt  # the loop saves last.pt and closes its workers

        def on_val(step: int, metrics: dict[str, float]) -> None:
            if json_out:
                emit_json({"event": "validation", **metrics})
            shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step")
            note(f"step {step}: {shown}", quiet)

        result = run_training(
            cfg, out, resume=resume, device=device, on_step=on_step, on_val=on_val
        )
    note(
        f"done: {result.step} steps in {result.seconds:.0f} s, best score "
        f"{result.best_score:.4g}; checkpoints in {result.out_dir}",
        quiet,
    )
    if json_out:
        emit_json(
            {
                "event": "done",
                "steps": result.step,
                "best_score": result.best_score,
                "seconds": result.seconds,
                "out": str(result.out_dir),
            }
        )


@contextlib.contextmanager
def _kill_ends_the_step() -> Iterator[list[int]]:
    """`kill` (SIGTERM) stops a run as Ctrl-C does, after the step in progress: last.pt is
    saved and the batch-building workers are shut down. A run started in the background by
    a script ignores Ctrl-C, and a plain kill used to leave its workers behind, holding
    gigabytes. Yields the list the signal appends to (empty: keep going)."""
    killed: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: killed.append(signum))
    try:
        yield killed
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train_bokeh(
    out: Path, data: Path, steps: int, device: str, resume: bool, quiet: bool, json_out: bool
) -> None:
    from prodepth_cli.training.bokeh_data import build_dataset
    from prodepth_cli.training.bokeh_train import train_bokeh

    if not any((data / "train").glob("*.npz")):
        note(f"rendering training windows into {data} (classical engine, default depth)", quiet)
        build_dataset(data)
    with progress_bar(quiet) as bar:
        task = bar.add_task("train bokeh", total=steps)

        def on_step(step: int, loss: float) -> None:
            bar.update(task, completed=step, description=f"train bokeh L1 {loss:.4f}")

        result = train_bokeh(data, out, steps, resume=resume, device=device, on_step=on_step)
    note(f"done: {result.step} steps in {result.seconds:.0f} s; {out / 'last.pt'}", quiet)
    if json_out:
        emit_json({"event": "done", "steps": result.step, "l1": result.best_score, "out": str(out)})
