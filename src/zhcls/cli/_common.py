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
# Off a terminal (a pipe, a file, a CI log) rich would wrap at 80 columns, cutting paths and tables
# in two; there nothing needs wrapping, so lines are allowed this wide.
WIDE = 200


def make_console(stderr: bool = False) -> Console:
    """A rich console on stdout (results) or stderr (progress, logs): the terminal's width on a
    terminal, WIDE otherwise."""
    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(stderr=stderr, highlight=False, width=None if tty else WIDE)


console = make_console(stderr=True)  # main() makes it again, for the streams of that call

SetOption = typer.Option([], "--set", help="Override a config value, e.g. --set training.lr=3e-4 (repeatable).")
FormatOption = typer.Option("auto", "--format", help="Data format: auto, jsonl, tsv, csv, paddle, lines.")
TextFieldOption = typer.Option(None, "--text-field", help="Field/column holding the text (detected if not given).")
LabelFieldOption = typer.Option(None, "--label-field", help="Field/column holding the label (detected if not given).")


def err(message: str) -> None:
    print(message, file=sys.stderr)


class _PlainFormatter(logging.Formatter):
    """`warning: message`, as the CLI's own warnings read; info lines as they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


class _StderrHandler(logging.StreamHandler):
    """Writes to the sys.stderr of the moment, not the one at setup: a later redirect (or a test's
    capture, closed when the test ends) would otherwise get a closed or stale stream."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging() -> None:
    level = logging.DEBUG if STATE.debug else logging.WARNING if STATE.quiet else logging.INFO
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False, show_time=False)
    else:  # rich's log layout pads and wraps every line to the console's width: plain lines off a terminal
        handler = _StderrHandler()
        handler.setFormatter(_PlainFormatter("%(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


@contextmanager
def training_progress(description: str) -> Iterator[Any]:
    """A rich progress bar fed by the library's ("step" | "eval", info) hook. It appears with the first
    step, so reading and checking the data, which may fail, prints nothing before an error. When training
    stops before the planned steps (early stopping), the bar is finished at the steps done and one line
    says where training stopped and which evaluation was best."""
    if STATE.quiet:
        yield lambda kind, info: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    bar = Progress(*columns, console=console, transient=False)
    task = None
    seen = EarlyStop()

    def hook(kind: str, info: dict[str, Any]) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=None, status="")
        seen.record(kind, info)
        if kind == "step":
            # models without a training loss (tfidf.v1's grid) say what they fit instead
            status = f"loss {info['loss']:.4f}" if "loss" in info else info.get("status", "")
            bar.update(task, completed=info["step"], total=info["total"], status=status)
        elif kind == "eval":
            scores = " ".join(f"{k[4:]} {v:.4f}" for k, v in info.items() if k.startswith("dev_"))
            mark = " *" if info.get("best") else ""
            bar.console.print(f"  step {info['step']:>6}  epoch {info['epoch']:>3}  train_loss {info['train_loss']:.4f}  {scores}{mark}")

    try:
        yield hook
        line = seen.summary()
        if task is not None and line is not None:
            bar.update(task, completed=seen.step, total=seen.step, status="stopped early")
            bar.console.print(line)
    finally:
        if task is not None:
            bar.stop()


@contextmanager
def step_progress(description: str) -> Iterator[Any]:
    """A rich progress bar fed by a (what, done, total) hook: `what` is the step under way. Like
    training_progress it appears with the first call, and --quiet turns it off."""
    if STATE.quiet:
        yield lambda what, done, total: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[what]}"), TimeElapsedColumn()]
    bar = Progress(*columns, console=console, transient=False)
    task = None

    def hook(what: str, done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total, what="")
        bar.update(task, completed=done, total=total, what=what)

    try:
        yield hook
    finally:
        if task is not None:
            bar.stop()


class EarlyStop:
    """What the progress hook saw, enough to say "stopped early at epoch N, best epoch M" at the end."""

    def __init__(self) -> None:
        self.step = self.total = self.step_epoch = 0
        self.best: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.per_epoch = True  # every evaluation came right at the end of an epoch (eval_every = 0)

    def record(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "step":
            self.step, self.total, self.step_epoch = info["step"], info["total"] or 0, info.get("epoch", 0)
        elif kind == "eval" and "step" in info:
            # A step's "epoch" is the one in progress (from 0); an evaluation's counts finished epochs.
            self.per_epoch = self.per_epoch and info.get("epoch") == self.step_epoch + 1
            self.last = info
            if info.get("best"):
                self.best = info

    def summary(self) -> str | None:
        if self.last is None or not self.total or self.step >= self.total:
            return None
        if self.per_epoch and self.best is not None:
            return f"stopped early at epoch {self.last['epoch']}, best epoch {self.best['epoch']} (step {self.step} of {self.total})"
        best = f", best step {self.best['step']}" if self.best is not None else ""
        return f"stopped early at step {self.step} of {self.total}{best}"


EXIT_DIR_ENV = "ZHCLS_EXIT_DIR"  # `zhcls train --nproc` reads each rank's exit status from here


def record_exit(code: int) -> None:
    """Leave this rank's exit status where `zhcls train --nproc` looks: torchrun itself exits 1 whatever
    its workers' status was, and a config or data error should still exit 2."""
    import os
    from pathlib import Path

    folder = os.environ.get(EXIT_DIR_ENV)
    if folder:
        try:
            Path(folder, f"rank-{int(os.environ.get('RANK', 0))}").write_text(str(code), encoding="utf-8")
        except (OSError, ValueError):
            pass


def recorded_exit(folder) -> int | None:
    """The first non-zero exit status a rank recorded (lowest rank first), if any."""
    from pathlib import Path

    codes = []
    for file in sorted(Path(folder).glob("rank-*"), key=lambda f: f.name.split("-")[-1].zfill(8)):
        try:
            codes.append(int(file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    failed = [c for c in codes if c]
    return failed[0] if failed else None
