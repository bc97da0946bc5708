"""`prodepth export`: a training checkpoint to ONNX (depth networks) or TFLite (bokeh)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prodepth_cli.commands.common import JsonOption, QuietOption, emit_json, guarded, note
from prodepth_cli.errors import InputError, OptionError

KINDS = ("coarse", "refiner", "bokeh")


@guarded
def export(
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="[KIND] CHECKPOINT",
            help="A .pt checkpoint from prodepth train, optionally after its kind "
            "(coarse, refiner or bokeh), which is then checked against the checkpoint.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The .onnx (or bokeh: .tflite) to write.")
    ],
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Float16 weights inside; float32 inputs/outputs.")
    ] = False,
    quiet: QuietOption = False,
    json_out: JsonOption = False,
) -> None:
    """Export CHECKPOINT (`prodepth export bokeh runs/b/last.pt -o b.tflite`; the kind may be
    left out, the checkpoint knows it): depth networks to ONNX (opset 17, dynamic batch,
    height and width) with their spec; the bokeh network to TFLite, fp32 and int8 (needs the
    `bokeh-train` extra). Either way the result is checked against torch and nothing is left
    when it differs."""
    from prodepth_cli.training.checkpoint import load_checkpoint

    kind, checkpoint = _kind_and_checkpoint(targets)
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: no such checkpoint")
    found = load_checkpoint(checkpoint)["config"].get("kind")
    if kind is not None and kind != found:
        raise OptionError(f"{checkpoint}: a {found} checkpoint, not {kind}")
    if found == "bokeh":
        _export_bokeh(checkpoint, output, fp16, quiet, json_out)
        return
    from prodepth_cli.training.export import export_checkpoint

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


def _kind_and_checkpoint(targets: list[str]) -> tuple[str | None, Path]:
    if len(targets) == 1:
        return None, Path(targets[0])
    if len(targets) == 2 and targets[0] in KINDS:
        return targets[0], Path(targets[1])
    raise OptionError(f"export {' '.join(targets)}: give [{'|'.join(KINDS)}] CHECKPOINT")


def _export_bokeh(checkpoint: Path, output: Path, fp16: bool, quiet: bool, json_out: bool):
    from prodepth_cli.training.bokeh_export import export_bokeh

    if output.suffix != ".tflite" or fp16:
        raise OptionError(f"{output}: the bokeh network exports to .tflite (fp32 + int8)")
    result = export_bokeh(checkpoint, output)
    note(
        f"wrote {result.fp32}, {result.int8}, {result.onnx} and {result.weights}; "
        f"|TFLite - torch| max {result.parity_fp32:.2e} (fp32), mean {result.parity_int8:.2e} "
        f"(int8); |ONNX - torch| max {result.parity_onnx:.2e}",
        quiet,
    )
    if json_out:
        emit_json(
            {
                "tflite": str(result.fp32),
                "tflite_int8": str(result.int8),
                "onnx": str(result.onnx) if result.onnx else None,
                "weights": str(result.weights),
                "kind": "bokeh",
                "max_abs_diff": result.parity_fp32,
                "int8_mean_abs_diff": result.parity_int8,
                "onnx_max_abs_diff": result.parity_onnx,
            }
        )
