"""zhcls build CONFIG -o OUT [--budget-ms X] [--budget-mb Y]: the whole recipe, one command."""

from __future__ import annotations

from pathlib import Path

import typer

from . import _common


def register(app: typer.Typer) -> None:
    app.command("build")(build)


def build(
    config: Path = typer.Argument(..., help="TOML data config ([data], optional [build], [model], [training])."),
    output: Path = typer.Option(..., "-o", "--output", help="Build directory (rerun the same command to continue an interrupted build)."),
    budget_ms: float = typer.Option(None, "--budget-ms", help="Most p50 ms per text (1 thread, tokenization included)."),
    budget_mb: float = typer.Option(None, "--budget-mb", help="Largest bundle in MB."),
    set_: list[str] = _common.SetOption,
    force: bool = typer.Option(False, "--force", help="Build even if `data check` finds errors."),
) -> None:
    """Build the best bundle within a budget from one config.

    Trains every candidate, ensembles and distills them, exports, and picks the best bundle within budget."""
    from ..build import build as run_build
    from ..config import load_config

    _common.setup_logging()
    cfg = load_config(config, set_)
    result = run_build(cfg, output, budget_ms=budget_ms, budget_mb=budget_mb, force=force, stage=_common.training_progress)
    print_build_summary(result)


def print_build_summary(result) -> None:
    for row in sorted(result.candidates, key=lambda r: -r["dev"]):
        mark = "*" if row["chosen"] else " "
        test = f"{row['test']:.4f}" if row["test"] is not None else "  -   "
        print(f"{mark} {row['name']:<24} dev {row['dev']:.4f}  test {test}  p50 {row['p50_ms']:>8.4f} ms  {row['size_mb']:>8.2f} MB{'' if row['within_budget'] else '  over budget'}")
    print(f"chosen: {result.chosen['name']}: {result.reason}")
    print(f"bundle: {result.out / 'bundle'}")
    print(f"report: {result.out / 'build.md'}")
