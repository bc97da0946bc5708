"""`prodepth doctor`: what this machine gives prodepth, to read or paste into a bug report."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from prodepth_cli.commands.common import JsonOption, emit_json, guarded


@guarded
def doctor(
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="Also check every installed catalog model's files against sha256."
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Report the system, onnxruntime and the device a plain run uses, GPUs, torch, codec
    libraries, caches and installed models; one line for each problem, saying what to do.

    Exits 0 when a plain `prodepth depth` works here, 1 when it does not.
    """
    from prodepth_cli.doctor import diagnose

    report = diagnose(verify)
    if json_out:
        emit_json(report.to_json())
    else:
        for section, values in report.sections.items():
            typer.echo(section)
            for name, value in values.items():
                typer.echo(f"  {name.replace('_', ' ') + ':':<16} {_text(value)}")
        for problem in report.problems:
            typer.echo(f"problem: {problem}")
        if not report.problems:
            typer.echo("no problems found")
    if not report.plain_run_works:
        raise typer.Exit(1)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)
