"""zhcls runs list [RUNS_DIR] | zhcls runs compare RUN... [--metric macro_f1] [--plot trend.png]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from . import _common

app = typer.Typer(help="Finished runs side by side.", no_args_is_help=True, add_completion=False, rich_markup_mode=None)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="runs")


@app.command("list")
def list_(
    runs_dir: Path = typer.Argument(Path("runs"), help="Directory holding run directories."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """One row per finished run.

    Name, model, data fingerprint, git commit, dev/test metrics and date."""
    from ..report.runs import list_runs

    rows = list_runs(runs_dir)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        _common.err(f"no finished runs under {runs_dir}")
        return
    _table(rows, [("dev_macro_f1", "dev macro_f1"), ("test_accuracy", "test acc"), ("test_macro_f1", "test macro_f1")], title=None)


@app.command("compare")
def compare(
    runs: list[Path] = typer.Argument(..., help="Run directories; the first is the reference for the deltas."),
    metric: str = typer.Option("macro_f1", "--metric", help="accuracy, macro_f1, macro_precision, macro_recall, micro_f1 or weighted_f1."),
    split: str = typer.Option("test", "--split", help="test or dev."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of the metric across the runs, in date order."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare runs' metrics side by side.

    With the change against the first run."""
    from ..report.runs import compare_runs

    result = compare_runs(runs, metric, split)
    if plot is not None:
        from ..artifact import write_bytes
        from ..report.figures import trend_png

        png, warnings = trend_png(result["trend"], metric, split)
        write_bytes(plot, png)
        for w in warnings:
            _common.err(f"warning: {w}")
        _common.err(f"trend plot -> {plot}")
    for name in result["missing"]:
        _common.err(f"warning: {name} has no {split} {metric}")
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    key = result["key"]
    _table(result["rows"], [("dev_macro_f1", "dev macro_f1"), ("test_accuracy", "test acc"), (key, f"{split} {metric}"), ("delta", "Δ vs first")],
           title=f"{split} {metric}, change against {result['rows'][0]['name']}")


def _table(rows: list[dict[str, Any]], metrics: list[tuple[str, str]], title: str | None) -> None:
    from rich.table import Table

    seen: list[tuple[str, str]] = []
    for key, label in metrics:  # a metric asked for twice (e.g. --metric macro_f1 --split dev) is shown once
        if key not in [k for k, _ in seen]:
            seen.append((key, label))
    table = Table(title=title, show_edge=False)
    for col in ["name", "model", "data", "commit", *(label for _, label in seen), "date"]:
        table.add_column(col, justify="right" if col not in ("name", "model", "data", "commit", "date") else "left")
    for r in rows:
        cells = [_fmt(r[k], signed=k == "delta") for k, _ in seen]
        table.add_row(r["name"], r["model"] or "?", r["data"] or "–", (r["git_commit"] or "–")[:10], *cells, r["date"])
    _common.make_console().print(table)


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
