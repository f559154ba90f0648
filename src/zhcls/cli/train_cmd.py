"""zhcls train CONFIG -o RUN [--set k=v ...] [--force] [--nproc N]"""

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
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Train on N processes of this machine (DistributedDataParallel, started with torchrun; docs/scale.md)."
    ),
) -> None:
    """Train the model CONFIG describes.

    Rerunning the same command resumes an interrupted run."""
    from ..config import load_config
    from ..scale.world import from_env

    world = from_env()
    if world.distributed and not world.main:
        _common.STATE.quiet = True  # one progress bar and one set of log lines: rank 0's
    _common.setup_logging()
    if world.distributed and not world.main:
        import logging

        logging.getLogger().setLevel(logging.ERROR)
    cfg = load_config(config, set_)
    if nproc > 1:
        raise typer.Exit(launch(cfg, config, output, set_, force, nproc))
    from ..training.run import train as run_train

    with _common.training_progress(f"train {cfg.model.name}") as hook:
        result = run_train(cfg, output, force=force, progress=hook)
    if world.main:
        print_run_summary(result)


def launch(cfg, config: Path, output: Path, set_: list[str], force: bool, nproc: int) -> int:
    """Run this very command under torchrun with `nproc` processes; returns the exit status. What can be
    checked before any process starts (the model, the device) is, so those mistakes exit 2 here."""
    import os
    import subprocess
    import tempfile

    from ..errors import ConfigError
    from ..registry import models
    from ..scale.world import check_distributable, from_env, torchrun_command

    if from_env().distributed:
        raise ConfigError("--nproc inside a torchrun job", hint="start the processes once: either `torchrun ... -m zhcls train` or `zhcls train --nproc N`")
    check_distributable(models.get(cfg.model.name).factory, nproc)
    if cfg.training.device.startswith("cuda"):  # "auto" and "cpu" need no torch here: each process resolves its own
        import torch

        from ..scale.device import resolve_device

        resolve_device(cfg.training.device, 0)
        if nproc > torch.cuda.device_count():
            raise ConfigError(
                f"--nproc {nproc} on a machine with {torch.cuda.device_count()} CUDA device(s): one process per GPU",
                hint=f"use --nproc {torch.cuda.device_count()}, or training.device = \"cpu\" for CPU processes",
            )
    args = [*(["--quiet"] if _common.STATE.quiet else []), *(["--debug"] if _common.STATE.debug else []),
            "train", str(config), "-o", str(output), *[a for s in set_ for a in ("--set", s)], *(["--force"] if force else [])]
    with tempfile.TemporaryDirectory(prefix="zhcls-ranks-") as exits:
        # torchrun would set OMP_NUM_THREADS=1 (with a banner); the run's own threads setting says it already
        env = {**os.environ, _common.EXIT_DIR_ENV: exits, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(cfg.training.threads))}
        proc = subprocess.run(torchrun_command(nproc, args), env=env)
        return _common.recorded_exit(exits) or proc.returncode


def print_run_summary(result) -> None:
    metrics = result.metrics
    if result.resumed_from:
        _common.console.print(f"resumed from step {result.resumed_from}")
    for split in ("dev", "test"):
        if split in metrics:
            m = metrics[split]
            scores = [f"{k} {m[k]:.4f}" for k in ("accuracy", "macro_f1", "entity_f1") if k in m]  # entity_f1: tagger.v1, joint.v1
            print(f"{split}: {'  '.join(scores)}  (n={m['n']})")
    print(f"train seconds: {metrics['train_seconds']:.1f}")
    print(f"run: {result.run_dir}")
    print(f"model: {result.best_dir}")
