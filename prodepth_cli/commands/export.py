"""`prodepth export`: a training checkpoint to ONNX plus its JSON spec, parity-checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prodepth_cli.commands.common import JsonOption, QuietOption, emit_json, guarded, note
from prodepth_cli.errors import InputError


@guarded
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A .pt checkpoint from prodepth train.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Float16 weights inside; float32 inputs/outputs.")
    ] = False,
    quiet: QuietOption = False,
    json_out: JsonOption = False,
) -> None:
    """Export CHECKPOINT to ONNX (opset 17, dynamic batch/height/width) with its spec."""
    from prodepth_cli.training.export import export_checkpoint

    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: no such checkpoint")
    result = export_checkpoint(checkpoint, output, fp16=fp16)
    note(
        f"wrote {result.onnx_path} and {result.spec_path} ({result.kind}); max |onnxruntime "
        f"- torch| = {result.max_abs_diff:.2e}",
        quiet,
    )
    if json_out:
        emit_json(
            {
                "onnx": str(result.onnx_path),
                "spec": str(result.spec_path),
                "kind": result.kind,
                "max_abs_diff": result.max_abs_diff,
            }
        )
