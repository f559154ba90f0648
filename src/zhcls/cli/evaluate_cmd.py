"""zhcls evaluate RUN DATA [--json]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import _common


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)


def evaluate(
    run: Path = typer.Argument(..., help="Run, model or bundle directory, or registry://NAME@ALIAS."),
    data: Path = typer.Argument(..., help="Labeled data file (JSON lines, TSV, CSV)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full metrics as JSON."),
    fmt: str = _common.FormatOption,
    text_field: Optional[str] = _common.TextFieldOption,
    label_field: Optional[str] = _common.LabelFieldOption,
) -> None:
    """Score a run or a bundle on labeled data.

    Accuracy, macro/micro/weighted P/R/F1, a per-class table and the confusion matrix."""
    from ..data.readers import ReadOptions, read_examples, require_labeled
    from ..models.dirs import load_predictor
    from ..training.run import evaluate_examples, warn_unseen_labels

    _common.setup_logging()
    model = load_predictor(run)
    examples = read_examples(data, ReadOptions(fmt, text_field, label_field))
    spans = getattr(model, "tags_spans", False)  # tagger.v1, joint.v1: labels, entities or both are scored
    if not spans:
        require_labeled(examples, str(data))
    warn_unseen_labels(model, examples, str(data))
    metrics = evaluate_examples(model, examples)
    if as_json:
        print(json.dumps(metrics, ensure_ascii=False, indent=2))
        return
    if "accuracy" in metrics:
        print_metrics(metrics)
    if "entities" in metrics:
        print_entities(metrics["entities"])


def print_entities(e: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = _common.make_console()
    out.print(f"entities: {e['n_gold']} gold, {e['n_pred']} predicted in {e['n']} texts; entity micro F1 = {e['micro_f1']:.4f}, macro F1 = {e['macro_f1']:.4f}")
    table = Table(title="entities per type (exact span and type)", show_edge=False)
    for col in ("type", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for kind, r in e["per_type"].items():
        table.add_row(escape(kind), f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", str(r["support"]))
    for avg in ("micro", "macro"):
        table.add_row(avg, *(f"{e[f'{avg}_{k}']:.4f}" for k in ("precision", "recall", "f1")), "")
    out.print(table)
    if e.get("span_errors"):
        errors = Table(title="most frequent span errors", show_edge=False)
        for col in ("error", "gold", "predicted", "count"):
            errors.add_column(col, justify="right" if col == "count" else "left")
        for r in e["span_errors"][:10]:
            errors.add_row(r["error"], escape(r["gold"] or "-"), escape(r["pred"] or "-"), str(r["count"]))
        out.print(errors)


def print_metrics(m: dict) -> None:
    from rich.table import Table

    out = _common.make_console()
    out.print(f"n = {m['n']}   accuracy = {m['accuracy']:.4f}")
    summary = Table(show_edge=False)
    for col in ("average", "precision", "recall", "f1"):
        summary.add_column(col, justify="right" if col != "average" else "left")
    for avg in ("macro", "micro", "weighted"):
        summary.add_row(avg, *(f"{m[f'{avg}_{x}']:.4f}" for x in ("precision", "recall", "f1")))
    out.print(summary)
    per = Table(title="per class", show_edge=False)
    for col in ("label", "precision", "recall", "f1", "support"):
        per.add_column(col, justify="right" if col != "label" else "left")
    for label, r in m["per_class"].items():
        per.add_row(label, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", str(r["support"]))
    out.print(per)
    cm = Table(title="confusion matrix (rows: true, columns: predicted)", show_edge=False)
    cm.add_column("")
    for i, _ in enumerate(m["labels"]):
        cm.add_column(str(i), justify="right")
    for i, (label, row) in enumerate(zip(m["labels"], m["confusion_matrix"])):
        cm.add_row(f"{i} {label}", *map(str, row))
    out.print(cm)
