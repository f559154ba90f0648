"""The budget search's report: a table of every candidate and dev score against latency, the Pareto front drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..eval.budget import budget_text


def search_report(summary: dict[str, Any], figure: Path) -> str:
    metric = summary["metric"]
    budget = budget_text(summary["budget_ms"], summary["budget_mb"])
    chosen = f"**Chosen: `{summary['chosen']}`** — {summary['reason']}." if summary.get("chosen") else f"**Nothing chosen** — {summary['reason']}."
    lines = [
        f"# zhcls compress: {summary['model']} from `{summary['parent']}`",
        "",
        chosen,
        "",
        f"Budget: {budget}. Latency is one text at a time on one thread, tokenization included, measured at export on this machine. "
        f"Dev scores come from each bundle's own predictions (int8 scored as int8); selection uses dev only, test is shown, never used. "
        f"Recovery: up to {summary['recover_epochs']} epochs of distillation from the parent, early-stopped on dev; a variant over budget "
        "as pruned is not recovered.",
        "",
        f"| candidate | width | vocab | precision | recovered | dev {metric} | test {metric} | dev acc | test acc | p50 ms | p99 ms | size MB | within budget |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    pct = lambda v: "—" if v is None else f"{100 * v:.2f}"  # noqa: E731
    for r in sorted(summary["candidates"], key=lambda r: (-r["dev"], r["size_mb"])):
        mark = "**" if r.get("chosen") else ""
        recovered = {None: "parent", True: "yes", False: "no"}[r["recovered"]]
        vocab = "all" if r.get("max_vocab") is None else str(r["max_vocab"])
        lines.append(
            f"| {mark}{r['name']}{mark} | {_frac(r['width'])} | {vocab} | {r['precision']} | {recovered} | {pct(r['dev'])} | {pct(r.get('test'))} | {pct(r.get('dev_accuracy'))} | "
            f"{pct(r.get('test_accuracy'))} | {r['p50_ms']} | {r['p99_ms']} | {r['size_mb']} | {'yes' if r.get('within_budget') else 'no'} |"
        )
    from ..report.figures import write_pareto_figure

    if write_pareto_figure(figure, summary["candidates"], metric, summary["budget_ms"], _label):
        lines += ["", f"![dev {metric} against p50 latency]({figure.name})"]
    return "\n".join(lines) + "\n"


def _label(row: dict[str, Any]) -> str:
    """A variant's name in the figure: rows are named without their precision."""
    return f"{row['name']}{'+int8' if row['precision'] == 'int8' else ''}"


def _frac(width: float) -> str:
    from .run import width_label

    return width_label(width)
