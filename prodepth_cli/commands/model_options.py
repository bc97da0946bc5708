"""Options that choose a model and override its spec, shared by every command that runs one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from prodepth_cli.commands.common import err_console, note, progress_bar
from prodepth_cli.errors import OptionError
from prodepth_cli.models import hub
from prodepth_cli.models.runtime import DepthModel, load_model

SUGGESTED_MODEL = "depth-anything-v2-small"  # what a user of the shipped model should try

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="ONNX depth model file, or a catalog name such as depth-anything-v2-small "
        "(`prodepth models list`; pulled on first use), or prodepth (the shipped model). "
        "Default: $PRODEPTH_MODEL, else the best catalog model installed, else the shipped one.",
        show_default=False,
    ),
]
OfflineOption = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="Never download: a catalog model that is not installed is an error (as "
        "HF_HUB_OFFLINE=1).",
    ),
]
KindOption = Annotated[
    str | None,
    typer.Option(
        help="Model output: disparity (larger = nearer) or depth (larger = farther).",
        show_default=False,
    ),
]
LayoutOption = Annotated[
    str | None, typer.Option(help="Input layout: NCHW or NHWC.", show_default=False)
]
SizeOption = Annotated[
    str | None,
    typer.Option(help="Fixed network input size, HxW (e.g. 518x518).", show_default=False),
]
ModelSizeOption = Annotated[  # SizeOption's flag where --size means something else (video)
    str | None,
    typer.Option(
        "--model-size",
        help="Fixed network input size, HxW (e.g. 518x518), as `prodepth depth --size`.",
        show_default=False,
    ),
]
MeanOption = Annotated[
    str | None,
    typer.Option(
        help="Per-channel mean of [0, 1] RGB, e.g. 0.485,0.456,0.406.", show_default=False
    ),
]
StdOption = Annotated[
    str | None,
    typer.Option(help="Per-channel std of [0, 1] RGB, e.g. 0.229,0.224,0.225.", show_default=False),
]


def spec_overrides(
    kind: str | None = None,
    layout: str | None = None,
    size: str | None = None,
    mean: str | None = None,
    std: str | None = None,
) -> dict[str, Any]:
    """The spec fields set on the command line, validated and parsed; unset ones left out."""
    if kind is not None and kind.lower() not in ("disparity", "depth"):
        raise OptionError(f"--kind {kind}: choose disparity or depth")
    if layout is not None and layout.upper() not in ("NCHW", "NHWC"):
        raise OptionError(f"--layout {layout}: choose NCHW or NHWC")
    fields = {
        "kind": kind and kind.lower(),
        "layout": layout and layout.upper(),
        "size": _parse_size(size),
        "mean": _parse_triple("--mean", mean),
        "std": _parse_triple("--std", std),
    }
    return {k: v for k, v in fields.items() if v is not None}


def load_model_from_options(
    model: str | Path | None,
    device: str,
    kind: str | None = None,
    layout: str | None = None,
    size: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    offline: bool = False,
    quiet: bool = False,
) -> DepthModel:
    """Load `model` with the spec overrides given on the command line (see `load_for_run`)."""
    overrides = spec_overrides(kind, layout, size, mean, std)
    return load_for_run(model, device, overrides, offline, quiet)


def load_for_run(
    model: str | Path | None,
    device: str,
    overrides: dict[str, Any] | None = None,
    offline: bool = False,
    quiet: bool = False,
) -> DepthModel:
    """Load the model a command runs: a catalog model not yet installed is pulled first, its
    progress bar on stderr (a terminal's, not with `quiet`), unless `offline`."""
    with download_progress(quiet) as progress:
        loaded = load_model(model, device, pull=not offline, progress=progress, **(overrides or {}))
    if err_console.is_terminal:  # an accelerator passed over: one note, where someone reads it
        for line in loaded.notes:
            note(f"note: {line}", quiet)
    return loaded


@contextlib.contextmanager
def download_progress(quiet: bool) -> Iterator[hub.ProgressHook]:
    """A progress hook for downloads whose bar appears with the first file (a run that
    downloads nothing draws nothing)."""
    bar = progress_bar(quiet, in_bytes=True)

    def start(description: str, total: int | None, done: int):
        if not bar.live.is_started:
            bar.start()
        task = bar.add_task(description, total=total, completed=done)
        return lambda n: bar.advance(task, n)

    try:
        yield start
    finally:
        if bar.live.is_started:
            bar.stop()


TileResOption = Annotated[
    str,
    typer.Option(
        "--tile-res",
        help="native: a dynamic model sees each tile at its native working size (Depth "
        "Anything at 518), as its authors run it; full: tiles at full resolution (slower).",
    ),
]


def check_tile_resolution(text: str) -> str:
    if text not in ("native", "full"):
        raise OptionError(f"--tile-res {text}: choose native or full")
    return text


def suggest_better_model(loaded: DepthModel, model: str | Path | None, quiet: bool) -> None:
    """Once a run, on a terminal, when a plain run falls back to the shipped model (nothing
    better is installed): say which catalog model draws far better depth and how to get it."""
    if model is not None or os.environ.get("PRODEPTH_MODEL") or quiet:
        return
    if not err_console.is_terminal or not loaded.is_shipped:
        return
    from prodepth_cli.models import catalog

    best = catalog.lookup(SUGGESTED_MODEL)
    note(
        f"tip: for far better depth, --model {best.ref} (pulled on first use, "
        f"{catalog.human_bytes(best.bytes)}, {best.licence}; then the default)"
    )


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise OptionError(f"--size {text}: expected HxW in pixels, e.g. 518x518")
    return parts[0], parts[1]


def _parse_triple(flag: str, text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        values = ()
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or (flag == "--std" and min(values) <= 0):
        raise OptionError(f"{flag} {text}: expected three numbers, e.g. 0.5,0.5,0.5")
    return values  # type: ignore[return-value]
