"""zhcls labels find DATA --config CONFIG [--folds 5] [--soft SOFT.jsonl] -o issues.jsonl [--csv issues.csv]
zhcls labels clean DATA (--issues issues.jsonl | --reviewed reviewed.csv) [--drop | --relabel] [--threshold Q] -o CLEAN"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from . import _common

app = typer.Typer(help="Find and fix mislabeled examples.", no_args_is_help=True)


@app.command("find")
def find(
    data: Path = typer.Argument(..., help="Labeled data file (JSON lines, TSV or CSV), read with the config's [data] field mapping."),
    config: Path = typer.Option(..., "--config", "-c", help="Run config: [data] for the field mapping, [model]/[training] for the cross-fitted model (no [model]: tfidf.v1, logistic regression by newton-cg)."),
    output: Path = typer.Option(..., "-o", "--output", help="issues.jsonl to write (and ISSUES.summary.json beside it)."),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds of out-of-fold cross-fitting."),
    soft: Optional[Path] = typer.Option(None, "--soft", help="Teacher probabilities (JSON lines, see docs/labels.md) instead of cross-fitting."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Also write the issues as CSV for review (fill in `accept`)."),
    no_duplicates: bool = typer.Option(False, "--no-duplicates", help="Do not list near-duplicate texts with conflicting labels."),
    filter_by: str = typer.Option(
        "low_self_confidence", "--filter-by",
        help="cleanlab's filter: low_self_confidence (default: the head of the ranking, as many rows as confident learning counts errors), "
        "both (fewer where the count is high), prune_by_noise_rate (cleanlab's default, more recall), low_normalized_margin, prune_by_class, "
        "confident_learning, predicted_neq_given.",
    ),
    set_: list[str] = _common.SetOption,
) -> None:
    """Rank likely label errors in DATA.

    Confident learning on out-of-fold probabilities, and near-duplicate texts that carry different
    labels."""
    from ..artifact import write_json
    from ..config import load_config
    from ..errors import ConfigError
    from ..quality.label_issues import FILTERS, find_in_file
    from ..quality.review import summary_path, write_issues, write_issues_csv

    _common.setup_logging()
    if filter_by not in FILTERS:  # checked before any model trains
        raise ConfigError(f"--filter-by {filter_by!r} is not a cleanlab filter", hint=f"one of {', '.join(FILTERS)}")
    cfg = load_config(config, set_)
    from ..quality.label_issues import oof_model

    with fold_progress(f"{folds}-fold {oof_model(cfg)[0]}" if soft is None else "soft labels") as hook:
        result = find_in_file(str(data), cfg, folds=folds, soft=None if soft is None else str(soft), duplicates=not no_duplicates, filter_by=filter_by, progress=hook)
    write_issues(output, result.issues)
    write_json(summary_path(output), result.summary)
    if csv_out is not None:
        write_issues_csv(csv_out, result.issues)
    print_summary(result.summary, output, summary_path(output), csv_out)


@app.command("clean")
def clean(
    data: Path = typer.Argument(..., help="The data file `labels find` read."),
    output: Path = typer.Option(..., "-o", "--output", help="Cleaned data file to write (same format as DATA); a change log OUTPUT_STEM.changes.jsonl goes beside it."),
    issues: Optional[Path] = typer.Option(None, "--issues", help="issues.jsonl from `zhcls labels find`."),
    reviewed: Optional[Path] = typer.Option(None, "--reviewed", help="The `--csv` file with `accept` filled in (yes/no, 1/0); applied instead of a threshold."),
    drop: bool = typer.Option(False, "--drop", help="Remove the accepted rows."),
    relabel: bool = typer.Option(False, "--relabel", help="Give the accepted rows their suggested label (the default)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0, help="Only rows with quality <= Q (default: every row of the issues file)."),
    log: Optional[Path] = typer.Option(None, "--log", help="Change log path (default OUTPUT_STEM.changes.jsonl)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run config whose [data] field mapping reads DATA (default: the one `find` recorded)."),
    fmt: str = _common.FormatOption,
    text_field: Optional[str] = _common.TextFieldOption,
    label_field: Optional[str] = _common.LabelFieldOption,
) -> None:
    """Relabel or drop the rows an issues file names.

    The issues file is `labels find` output or a reviewed CSV; every other byte of DATA is kept."""
    from ..data.readers import read_examples
    from ..errors import ConfigError
    from ..quality.clean import apply_changes, plan_changes
    from ..quality.review import read_issues, read_reviewed

    _common.setup_logging()
    if drop and relabel:
        raise ConfigError("--drop and --relabel exclude each other", hint="pick one: --relabel (default) or --drop")
    if issues is None and reviewed is None:
        raise ConfigError("nothing to apply", hint="pass --issues issues.jsonl (with --threshold Q) or --reviewed reviewed.csv")
    if reviewed is not None and threshold is not None:
        raise ConfigError("--threshold and --reviewed exclude each other", hint="a reviewed CSV says row by row what to apply")
    if output.resolve() == data.resolve():
        raise ConfigError(f"{output}: the output would overwrite the input", hint="write the cleaned data to a new file; the change log refers to the original")
    options = _read_options(config, issues or reviewed, fmt, text_field, label_field)
    examples = read_examples(data, options)
    rows = read_reviewed(reviewed) if reviewed is not None else read_issues(issues)
    changes, skipped = plan_changes(examples, rows, mode="drop" if drop else "relabel", threshold=threshold, reviewed=reviewed is not None)
    result = apply_changes(data, examples, changes, output, options, log_path=log, skipped=skipped)
    print(f"{result.n_records} records: {result.relabeled} relabeled, {result.dropped} dropped, {result.skipped} issue rows not applied")
    print(f"wrote {result.output} and {result.log}")


def _read_options(config: Optional[Path], issues: Optional[Path], fmt: str, text_field, label_field):
    """How to read DATA: the command line, else --config's [data], else what `find` recorded in
    ISSUES_STEM.summary.json (issues.jsonl and issues.csv share it), else detection."""
    import json

    from ..config import load_config
    from ..data.readers import ReadOptions
    from ..quality.review import summary_path

    base = ReadOptions()
    if config is not None:
        base = ReadOptions.from_config(load_config(config).data)
    elif issues is not None and summary_path(issues).is_file():
        try:
            recorded = json.loads(summary_path(issues).read_text(encoding="utf-8")).get("read_options") or {}
            base = ReadOptions(**{k: v for k, v in recorded.items() if k in ("format", "text_field", "label_field", "tsv_order")})
        except (ValueError, TypeError):
            pass  # an unreadable sidecar is only a convenience; detection and the explicit options remain
    return ReadOptions(
        fmt if fmt != "auto" else base.format,
        text_field if text_field is not None else base.text_field,
        label_field if label_field is not None else base.label_field,
        base.tsv_order,
    )


@contextmanager
def fold_progress(description: str) -> Iterator[Any]:
    """A rich progress bar across all folds, fed by the library's ("step" | "fold", info) hook."""
    if _common.STATE.quiet:
        yield lambda kind, info: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    bar = Progress(*columns, console=_common.console, transient=False)
    task = None

    def hook(kind: str, info: dict[str, Any]) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=float(info["folds"]), status="")
        if kind == "step":
            done = info["fold"] + info["step"] / max(info["total"], 1)
            bar.update(task, completed=done, status=f"fold {info['fold'] + 1}/{info['folds']}")
        elif kind == "fold":
            bar.update(task, completed=float(info["fold"]), status=f"fold {info['fold']}/{info['folds']} done in {info['seconds']:.0f}s")

    try:
        yield hook
    finally:
        if task is not None:
            bar.stop()


def print_summary(summary: dict[str, Any], output: Path, sidecar: Path, csv_out: Optional[Path]) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = _common.make_console()
    n, k = summary["n_examples"], summary["n_issues"]
    kinds = ", ".join(f"{v} {name}" for name, v in summary["kinds"].items()) or "none"
    source = f"soft labels {summary['soft_labels']}" if "soft_labels" in summary else f"{summary['folds']}-fold {summary['model']}"
    out.print(f"{k} suspect rows of {n} ({k / max(n, 1):.1%}): {kinds}; out-of-fold accuracy {summary['oof_accuracy']:.4f} ({escape(source)})")
    table = Table(title="issues per class", show_edge=False, title_justify="left")
    for col in ("label", "rows", "issues", "share"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for row in summary["per_class"][:30]:
        table.add_row(escape(row["label"]), str(row["n"]), str(row["issues"]), f"{row['share']:.1%}")
    out.print(table)
    if summary["confused_pairs"]:
        pairs = Table(title="most confused (given -> suggested)", show_edge=False, title_justify="left")
        for col in ("given", "suggested", "count"):
            pairs.add_column(col, justify="right" if col == "count" else "left")
        for p in summary["confused_pairs"]:
            pairs.add_row(escape(p["given"]), escape(p["suggested"]), str(p["count"]))
        out.print(pairs)
    written = [str(output), str(sidecar)] + ([str(csv_out)] if csv_out else [])
    out.print(f"wrote {escape(', '.join(written))}", soft_wrap=True)
