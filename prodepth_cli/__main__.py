"""`python -m prodepth_cli` runs the CLI."""

from prodepth_cli.cli import main

main()
