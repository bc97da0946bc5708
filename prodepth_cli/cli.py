"""The `prodepth` command line: registers the subcommands, nothing else."""

from __future__ import annotations

import typer

from prodepth_cli.commands.bokeh import bokeh
from prodepth_cli.commands.depth import depth
from prodepth_cli.commands.doctor import doctor
from prodepth_cli.commands.eval import eval_command
from prodepth_cli.commands.export import export
from prodepth_cli.commands.models import app as models_app
from prodepth_cli.commands.parallax import parallax
from prodepth_cli.commands.stereo import stereo
from prodepth_cli.commands.train import train
from prodepth_cli.commands.video import video
from prodepth_cli.heap import pin_mmap_threshold

app = typer.Typer(
    name="prodepth",
    help="High-resolution depth maps for photographs of any size, and what to do with them.",
    rich_markup_mode="markdown",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _process_setup() -> None:
    pin_mmap_threshold()


app.command("depth")(depth)
app.add_typer(models_app, name="models")
app.command("bokeh")(bokeh)
app.command("stereo")(stereo)
app.command("parallax")(parallax)
app.command("eval")(eval_command)
app.command("train")(train)
app.command("export")(export)
app.command("video")(video)
app.command("doctor")(doctor)


def main() -> None:
    app()
