"""`prodepth models`: list the shipped models, or show any model's spec and providers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from prodepth_cli.commands.common import JsonOption, emit_json, guarded
from prodepth_cli.commands.model_options import (
    KindOption,
    LayoutOption,
    MeanOption,
    SizeOption,
    StdOption,
    load_model_from_options,
)
from prodepth_cli.models.runtime import MODELS_DIR, default_model_path


@guarded
def models(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Models to inspect (default: those shipped in models/).", show_default=False
        ),
    ] = None,
    kind: KindOption = None,
    layout: LayoutOption = None,
    size: SizeOption = None,
    mean: MeanOption = None,
    std: StdOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show models: their spec and the providers that load them.

    The spec is inferred from the graph, then presets, the JSON beside the model and options.
    """
    shipped = sorted(MODELS_DIR.glob("*.onnx")) if MODELS_DIR.is_dir() else []
    default = default_model_path()
    table = Table("model", "spec", "providers", "default", show_lines=True)
    for path in paths or shipped:
        model = load_model_from_options(path, "auto", kind, layout, size, mean, std)
        cpu = load_model_from_options(path, "cpu", kind, layout, size, mean, std)
        providers = sorted({model.provider, cpu.provider})
        spec = model.tile_net.spec.to_json()
        is_default = path.resolve() == default.resolve()
        if json_out:
            emit_json(
                {"model": str(path), "spec": spec, "providers": providers, "default": is_default}
            )
            continue
        shown = {k: v for k, v in spec.items() if v not in (None, "")}
        table.add_row(
            str(path),
            "\n".join(f"{k}: {v}" for k, v in shown.items()),
            "\n".join(providers),
            "yes" if is_default else "",
        )
    if not json_out:
        Console().print(table)
