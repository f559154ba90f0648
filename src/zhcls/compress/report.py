"""The budget search's report: a table of every candidate and dev score against latency, the Pareto front drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def search_report(summary: dict[str, Any], figure: Path) -> str:
    metric = summary["metric"]
    budget = ", ".join(p for p in (f"p50 <= {summary['budget_ms']} ms" if summary["budget_ms"] is not None else "",
                                   f"size <= {summary['budget_mb']} MB" if summary["budget_mb"] is not None else "") if p)
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
    if pareto_figure(summary, figure):
        lines += ["", f"![dev {metric} against p50 latency]({figure.name})"]
    return "\n".join(lines) + "\n"


def _frac(width: float) -> str:
    from .run import width_label

    return width_label(width)


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidates no other beats on both latency and dev score, fastest first."""
    front, best = [], float("-inf")
    for r in sorted(rows, key=lambda r: (r["p50_ms"], -r["dev"])):
        if r["dev"] > best:
            front.append(r)
            best = r["dev"]
    return front


def pareto_figure(summary: dict[str, Any], path: Path) -> bool:
    """Dev score against p50 latency, chosen in red, the Pareto front dashed; skipped without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = summary["candidates"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for r in rows:
        color = "tab:red" if r.get("chosen") else "tab:blue" if r.get("within_budget") else "tab:gray"
        ax.scatter(r["p50_ms"], 100 * r["dev"], color=color, marker="s" if r["precision"] == "int8" else "o", zorder=3)
        ax.annotate(f"{r['name']}{'+int8' if r['precision'] == 'int8' else ''}", (r["p50_ms"], 100 * r["dev"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    front = pareto_front(rows)
    ax.plot([r["p50_ms"] for r in front], [100 * r["dev"] for r in front], color="tab:gray", linestyle="--", label="Pareto front")
    if summary.get("budget_ms") is not None:
        ax.axvline(summary["budget_ms"], color="tab:red", linestyle=":", label=f"budget {summary['budget_ms']} ms")
    ax.set_xlabel("p50 latency per text, ms (1 thread, tokenization included)")
    ax.set_ylabel(f"dev {summary['metric']} (%)")
    ax.set_title("circles fp32, squares int8; gray: over budget", fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return True
