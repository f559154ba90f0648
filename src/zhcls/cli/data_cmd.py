"""zhcls data ..."""

import typer

app = typer.Typer(help="Inspect data files.", no_args_is_help=True)
