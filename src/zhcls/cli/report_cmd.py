"""zhcls report RUN [--baseline RUN_OR_METRICS] [--max-drop 0.01] [--metric M ...] [--split test] -o report.md

Exit code 3 when a gated metric dropped by more than --max-drop against the baseline (a CI quality gate);
the report is written either way, so CI can post it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common

GATE_EXIT = 3


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    run: Path = typer.Argument(..., help="Run directory (what `zhcls train -o` wrote)."),
    output: Path = typer.Option(Path("report.md"), "-o", "--output", help="Report file; figures go to <stem>_figures/ beside a Markdown report."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Baseline run directory, or a metrics JSON (a run's metrics.json or `zhcls evaluate --json` output)."),
    max_drop: float = typer.Option(0.01, "--max-drop", min=0.0, help="Largest allowed drop of a gated metric against the baseline."),
    metrics: list[str] = typer.Option([], "--metric", help="Gated metric (repeatable; default: macro_f1 and accuracy)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to report and gate on: test (default when the run has it) or dev."),
    fmt: Optional[str] = typer.Option(None, "--format", help="md, html (one self-contained file) or json; default from the file suffix."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="Exported bundle whose latency and size to show (default: RUN/bundle if present)."),
) -> None:
    """Write a Markdown/HTML report of a run.

    Compared with a baseline when given; exit code 3 when the quality gate fails."""
    from ..report import DEFAULT_GATE, ReportError, build_report, write_report

    _common.setup_logging()
    if fmt is not None and fmt not in ("md", "html", "json"):
        raise ReportError(f"unknown --format {fmt!r}", hint="choose md, html or json")
    data = build_report(run, baseline=baseline, split=split, bundle=bundle, gate=metrics or DEFAULT_GATE, max_drop=max_drop)
    written = write_report(data, output, fmt)  # type: ignore[arg-type]
    print(written[0])
    for note in data["notes"] + data.get("figure_warnings", []):
        _common.err(f"warning: {note}")
    gate = data["gate"]
    for r in gate["results"]:
        if r["drop"] is not None:
            status = "ok" if r["passed"] else "FAILED"
            _common.err(f"gate {r['metric']}: {r['baseline']:.4f} -> {r['value']:.4f} (drop {r['drop']:+.4f}, max {max_drop:g}) {status}")
    if not gate["passed"]:
        _common.err(f"error: quality gate failed on {data['split']}: {', '.join(gate['failed'])} dropped by more than {max_drop:g}")
        raise typer.Exit(GATE_EXIT)
