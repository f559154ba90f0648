"""Console helpers and options shared by the commands. Results go to stdout; progress and logs to stderr."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@dataclass
class _State:
    debug: bool = False
    quiet: bool = False


STATE = _State()
console = Console(stderr=True, highlight=False)

SetOption = typer.Option([], "--set", help="Override a config value, e.g. --set training.lr=3e-4 (repeatable).")
FormatOption = typer.Option("auto", "--format", help="Data format: auto, jsonl, tsv, csv, paddle, lines.")
TextFieldOption = typer.Option(None, "--text-field", help="Field/column holding the text (detected if not given).")
LabelFieldOption = typer.Option(None, "--label-field", help="Field/column holding the label (detected if not given).")


def err(message: str) -> None:
    print(message, file=sys.stderr)


def setup_logging() -> None:
    level = logging.DEBUG if STATE.debug else logging.WARNING if STATE.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False, show_time=False)], force=True)


@contextmanager
def training_progress(description: str) -> Iterator[Any]:
    """A rich progress bar fed by the library's ("step" | "eval", info) hook. It appears with the first
    step, so reading and checking the data, which may fail, prints nothing before an error."""
    if STATE.quiet:
        yield lambda kind, info: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    bar = Progress(*columns, console=console, transient=False)
    task = None

    def hook(kind: str, info: dict[str, Any]) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=None, status="")
        if kind == "step":
            bar.update(task, completed=info["step"], total=info["total"], status=f"loss {info['loss']:.4f}")
        elif kind == "eval":
            scores = " ".join(f"{k[4:]} {v:.4f}" for k, v in info.items() if k.startswith("dev_"))
            mark = " *" if info.get("best") else ""
            bar.console.print(f"  step {info['step']:>6}  epoch {info['epoch']:>3}  train_loss {info['train_loss']:.4f}  {scores}{mark}")

    try:
        yield hook
    finally:
        if task is not None:
            bar.stop()
