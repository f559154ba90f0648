"""zhcls train CONFIG -o RUN [--set k=v ...] [--force]"""

from __future__ import annotations

from pathlib import Path

import typer

from . import _common


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    config: Path = typer.Argument(..., help="TOML run config."),
    output: Path = typer.Option(..., "-o", "--output", help="Run directory to write (or to resume, if a run there was interrupted)."),
    set_: list[str] = _common.SetOption,
    force: bool = typer.Option(False, "--force", help="Delete whatever OUTPUT holds and train from scratch."),
) -> None:
    """Train the model CONFIG describes.

    Rerunning the same command resumes an interrupted run."""
    from ..config import load_config
    from ..training.run import train as run_train

    _common.setup_logging()
    cfg = load_config(config, set_)
    with _common.training_progress(f"train {cfg.model.name}") as hook:
        result = run_train(cfg, output, force=force, progress=hook)
    print_run_summary(result)


def print_run_summary(result) -> None:
    metrics = result.metrics
    if result.resumed_from:
        _common.console.print(f"resumed from step {result.resumed_from}")
    for split in ("dev", "test"):
        if split in metrics:
            m = metrics[split]
            print(f"{split}: accuracy {m['accuracy']:.4f}  macro_f1 {m['macro_f1']:.4f}  (n={m['n']})")
    print(f"train seconds: {metrics['train_seconds']:.1f}")
    print(f"run: {result.run_dir}")
    print(f"model: {result.best_dir}")
