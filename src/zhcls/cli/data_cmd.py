"""zhcls data check CONFIG_OR_TRAIN [--dev FILE] [--test FILE] [--max-len N] [--json]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import _common

app = typer.Typer(help="Inspect data files.", no_args_is_help=True)

DEFAULT_TOKENIZER = "char.v1"
DEFAULT_MAX_LEN = 256  # the neural models' default; models without one (tfidf) are checked against it
MAX_LABEL_ROWS = 40


@app.command("check")
def check(
    source: Path = typer.Argument(..., metavar="CONFIG_OR_TRAIN", help="Run config (.toml) whose [data] is checked, or the train file."),
    dev: Optional[Path] = typer.Option(None, "--dev", help="Dev data file (overrides [data] dev)."),
    test: Optional[Path] = typer.Option(None, "--test", help="Test data file (overrides [data] test)."),
    max_len: Optional[int] = typer.Option(None, "--max-len", min=1, help="Tokens kept per text (default: the config's, else 256)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer for lengths (default: the config's, else char.v1)."),
    fmt: str = _common.FormatOption,
    text_field: Optional[str] = _common.TextFieldOption,
    label_field: Optional[str] = _common.LabelFieldOption,
    set_: list[str] = _common.SetOption,
    show: int = typer.Option(5, "--show", min=0, help="Locations listed per problem (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Counts, labels, lengths and problems of the data.

    Checks the train/dev/test splits of a run config, or the files given.

    Errors: empty texts, missing labels, one text under different labels, train texts repeated
    in dev/test (leakage), dev/test labels absent from train. Warnings: duplicates, full-width
    letters/digits, invisible characters, texts longer than max_len, label imbalance.

    Exit status: 0 no errors (warnings allowed); 1 data errors found; 2 unusable input
    (missing file, malformed data, bad config).
    """
    from ..data.checks import check_data
    from ..data.readers import read_split

    data, settings, notes = _resolve(source, dev, test, fmt, text_field, label_field, set_)
    if max_len is not None:
        settings["max_len"] = max_len
    if tokenizer is not None:
        settings["tokenizer"] = tokenizer
    splits = {}
    for split in ("train", "dev", "test"):
        examples = read_split(data, split)
        if examples is not None:
            splits[split] = examples
    report = check_data(splits, max_locations=show, **settings)
    code = 1 if report.errors else 0
    entities = _entity_stats(splits)
    if as_json:
        print(json.dumps({**report.to_dict(), **({"entities": entities} if entities else {}), "notes": notes, "exit_code": code}, ensure_ascii=False, indent=2))
    else:
        print_report(report, notes, code, entities)
    if code:
        raise typer.Exit(code)


def _resolve(source: Path, dev, test, fmt: str, text_field, label_field, set_: list[str]):
    """[data] plus the tokenizer settings, from a run config or from the command line alone."""
    from pydantic import ValidationError

    from ..config import DataConfig, format_validation_error, load_config, model_params
    from ..errors import ConfigError

    given = {"dev": dev, "test": test, "text_field": text_field, "label_field": label_field}
    updates = {k: str(v) for k, v in given.items() if v is not None}
    if fmt != "auto":
        updates["format"] = fmt
    settings = {"tokenizer": DEFAULT_TOKENIZER, "max_len": DEFAULT_MAX_LEN, "lowercase": True}
    notes: list[str] = []
    if source.suffix.lower() == ".toml":
        cfg = load_config(source, set_)
        if cfg.data.train is None:
            raise ConfigError(f"{source}: [data] has no train file", hint='add train = "path/to/train.json" to [data]')
        params = model_params(cfg)
        for key in settings:
            if getattr(params, key, None) is not None:
                settings[key] = getattr(params, key)
        if getattr(params, "max_len", None) is None:
            notes.append(f"{cfg.model.name} has no max_len or tokenizer; the lengths above use the defaults, for reference")
        raw = {**cfg.data.model_dump(), **updates}
    else:
        if set_:
            raise ConfigError("--set needs a run config (.toml) as the first argument")
        raw = {"train": str(source), **updates}
    try:
        data = DataConfig.model_validate(raw)
    except ValidationError as exc:
        hint = "--format is one of auto, jsonl, tsv, csv, paddle, lines"
        raise ConfigError(f"data options: {format_validation_error(exc)}", hint=hint) from None
    data.check_data_dir()
    return data, settings, notes


def _entity_stats(splits: dict) -> dict:
    """Entity counts per type and span lengths, for the splits with entities (tagging data)."""
    from ..tagging.metrics import entity_stats

    stats = {name: entity_stats([e.entities for e in examples]) for name, examples in splits.items()}
    return {name: s for name, s in stats.items() if s is not None}


def _print_entities(out, entities: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="entities (lengths in characters)", show_edge=False, title_justify="left")
    keys = ("count", "min", "p50", "p90", "max", "mean")
    for col in ("split", "type", *keys):
        table.add_column(col, justify="left" if col in ("split", "type") else "right")
    for split, s in entities.items():
        for kind, row in [*s["types"].items(), *([("all", s["all"])] if "all" in s else [])]:
            table.add_row(split, escape(kind), *(str(row[k]) for k in keys))
    out.print(table)
    for split, s in entities.items():
        out.print(f"{split}: {s['annotated']} texts annotated for entities, {s['with_entities']} with at least one")


def print_report(report, notes: list[str], code: int, entities: dict | None = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = _common.make_console()
    out.print(f"tokenizer {report.tokenizer}, max_len {report.max_len}; texts compared after normalization")
    for note in notes:
        out.print(f"note: {escape(note)}")

    for s in report.stats.values():
        out.print(f"{s.split}: {escape(s.file or '-')}", soft_wrap=True)
    splits = Table(title="splits", show_edge=False, title_justify="left")
    for col in ("split", "texts", "labeled", "labels", f"> {report.max_len} tokens"):
        splits.add_column(col, justify="left" if col == "split" else "right")
    for s in report.stats.values():
        splits.add_row(s.split, str(s.n), str(s.labeled), str(len(s.labels)), f"{s.truncated} ({s.truncated_share:.1%})")
    out.print(splits)

    lengths = Table(title="lengths (characters / tokens)", show_edge=False, title_justify="left")
    keys = ("min", "p50", "p90", "p95", "p99", "max", "mean")
    for col in ("split", "unit", *keys):
        lengths.add_column(col, justify="left" if col in ("split", "unit") else "right")
    for s in report.stats.values():
        for unit, d in (("chars", s.chars), ("tokens", s.tokens)):
            lengths.add_row(s.split, unit, *(str(d[k]) if d else "-" for k in keys))
    out.print(lengths)

    _print_labels(out, report)
    if entities:
        _print_entities(out, entities)
    for severity, title in (("error", "errors"), ("warning", "warnings"), ("info", "info")):
        problems = report.by_severity(severity)
        if not problems:
            continue
        out.print(f"\n[bold]{title} ({len(problems)})[/bold]")
        for p in problems:
            out.print(f"  {severity} {escape(f'[{p.code}]')} {escape(p.message)}", soft_wrap=True)
            for loc in p.locations:
                out.print(f"      {escape(loc)}", soft_wrap=True)
            if p.locations and p.count > len(p.locations):
                out.print(f"      ... and {p.count - len(p.locations)} more")
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = f"{n_err} error{'s' * (n_err != 1)}" if n_err else "no errors"
    reason = "data errors found" if code else "ok"
    out.print(f"\n{verdict}, {n_warn} warning{'s' * (n_warn != 1)}: exit {code} ({reason})")


def _print_labels(out, report) -> None:
    from rich.markup import escape
    from rich.table import Table

    stats = [s for s in report.stats.values() if s.labels]
    if not stats:
        return
    order: list[str] = []
    for s in stats:  # train's order (most frequent first), then labels only other splits have
        order += [label for label in s.labels if label not in order]
    table = Table(title="labels", show_edge=False, title_justify="left")
    table.add_column("label")
    for s in stats:
        table.add_column(s.split, justify="right")
    for label in order[:MAX_LABEL_ROWS]:
        cells = []
        for s in stats:
            n = s.labels.get(label, 0)
            cells.append(f"{n} ({n / s.labeled:.1%})" if n else "-")
        table.add_row(escape(label), *cells)
    out.print(table)
    if len(order) > MAX_LABEL_ROWS:
        out.print(f"... and {len(order) - MAX_LABEL_ROWS} more labels (--json lists all)")
