"""The files around label issues: issues.jsonl (+ its summary sidecar), the review CSV, teacher soft labels.

issues.jsonl      one JSON object per suspect row (`LabelIssue.to_dict()`), most suspicious first
ISSUES.summary.json   counts per class, confused pairs, the data file, its sha256 and how it was read
issues.csv        the same rows for a spreadsheet, with an empty `accept` column to fill with yes/no
soft.jsonl        teacher probabilities, one object per data row (see `read_soft_labels`)
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..artifact import write_text
from ..data.example import Example, LabelSet
from ..data.readers import lines as physical_lines
from ..data.readers import read_text
from ..errors import DataError
from ..text.normalize import normalize
from .label_issues import LabelIssue, split_source

log = logging.getLogger(__name__)

CSV_COLUMNS = ("rank", "accept", "kind", "line", "given_label", "suggested_label", "given_prob", "suggested_prob", "quality", "text", "source", "duplicates")
ACCEPT_YES = {"yes", "y", "1", "true", "t", "accept", "ok", "x", "是", "对"}
ACCEPT_NO = {"no", "n", "0", "false", "f", "reject", "否", "不"}


def summary_path(issues_path: str | Path) -> Path:
    p = Path(issues_path)
    return p.with_name(f"{p.stem}.summary.json")


def write_issues(path: str | Path, issues: Sequence[LabelIssue]) -> None:
    write_text(path, "".join(json.dumps(i.to_dict(), ensure_ascii=False) + "\n" for i in issues))


def write_issues_csv(path: str | Path, issues: Sequence[LabelIssue]) -> None:
    """UTF-8 with a BOM, so spreadsheet programs show the Chinese text; `accept` is left empty."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for i in issues:
        d = i.to_dict()
        d["accept"] = ""
        d["duplicates"] = " ".join(i.duplicates)
        writer.writerow([d[c] for c in CSV_COLUMNS])
    write_text(path, "\ufeff" + buf.getvalue())


def read_issues(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an issues.jsonl file; each needs `line`, `given_label` and `suggested_label`."""
    path = Path(path)
    rows = []
    for lineno, line in enumerate(physical_lines(read_text(path)), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: malformed JSON ({exc.msg})", hint="pass the file `zhcls labels find -o` wrote") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object")
        missing = [k for k in ("line", "given_label", "suggested_label") if k not in row]
        if missing:
            raise DataError(f"{path}:{lineno}: field(s) {missing} missing", hint="pass the file `zhcls labels find -o` wrote")
        for key in NUMBER_FIELDS:
            row[key] = _number(row.get(key), f"{path}:{lineno}", key)
        row["_where"] = f"{path}:{lineno}"
        rows.append(row)
    return rows


NUMBER_FIELDS = ("quality", "given_prob", "suggested_prob")


def _number(value: Any, where: str, key: str) -> float | None:
    """A score of an issues row: a finite number, or absent. Anything else would be compared with the
    --threshold later and fail there, far from the row that is wrong."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: field {key!r} is not a number", hint="keep the scores as `zhcls labels find` wrote them, or leave the field empty")
    return float(value)


def parse_accept(value: str, where: str) -> bool | None:
    """yes/y/1/true -> True, no/n/0/false -> False, empty -> None (not reviewed)."""
    v = value.strip().lower()
    if not v:
        return None
    if v in ACCEPT_YES:
        return True
    if v in ACCEPT_NO:
        return False
    raise DataError(f"{where}: field 'accept' is {value!r}", hint="write yes or no (also y/n, 1/0, true/false), or leave it empty to skip the row")


def read_reviewed(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a reviewed issues CSV: the `--csv` output with `accept` filled in (and `suggested_label`
    possibly edited). Comma, semicolon or TAB separated, as spreadsheet programs save it."""
    path = Path(path)
    text = read_text(path)
    lines = list(io.StringIO(text, newline=""))
    if not lines:
        raise DataError(f"{path}: empty file", hint="pass the CSV `zhcls labels find --csv` wrote, with the accept column filled in")
    delimiter = max(",;\t", key=lambda d: lines[0].count(d))
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    for column in ("line", "accept"):
        if column not in header:
            raise DataError(f"{path}:1: no column {column!r}; the header has {header}", hint="keep the columns of the `--csv` output; fill in `accept` with yes or no")
    rows = []
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        record = dict(zip(header, row))
        try:
            record["line"] = int(record["line"])
        except ValueError:
            raise DataError(f"{where}: field 'line' is {record['line']!r}, not a line number", hint="keep the line column as `zhcls labels find --csv` wrote it") from None
        record["accept"] = parse_accept(record.get("accept", ""), where)
        record["_where"] = where
        for key in NUMBER_FIELDS:
            record[key] = _number(record.get(key), where, key)
        rows.append(record)
    return rows


def read_soft_labels(path: str | Path, examples: Sequence[Example], classes: LabelSet) -> np.ndarray:
    """Teacher probabilities [n, k] for `examples`, columns in `classes` order, from JSON lines:

        {"line": 12, "probs": {"体育": 0.9, "财经": 0.1}}        # the record's first line in DATA
        {"source": "train.json:12", "probs": {...}}            # or its "path:line", as issues.jsonl writes it
        {"text": "...", "scores": {...}}                       # or no key at all: rows in DATA's order

    `probs` (or `scores`, as `zhcls predict` writes it) maps labels to probabilities; labels the data lacks
    are dropped, missing ones count as 0, and each row is renormalized. Without `line`/`source` there
    must be one row per record, in order (`zhcls predict RUN DATA > soft.jsonl` gives exactly that); a
    `text` is then checked against the record's. The probabilities should be out-of-fold (or from a model
    that never trained on DATA); a teacher's predictions on its own training set hide its errors.
    """
    path = Path(path)
    by_line = {e.line: i for i, e in enumerate(examples)}
    proba = np.full((len(examples), len(classes)), np.nan)
    dropped: set[str] = set()
    keyed: bool | None = None
    order = 0
    for lineno, line in enumerate(physical_lines(read_text(path)), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: malformed JSON ({exc.msg})", hint='each line is {"line": N, "probs": {"label": p, ...}}') from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object")
        scores = row.get("probs", row.get("scores"))
        if not isinstance(scores, dict) or not scores:
            raise DataError(f"{where}: no 'probs' mapping of label to probability", hint='write {"line": N, "probs": {"label": p, ...}}')
        has_key = "line" in row or "source" in row
        if keyed is None:
            keyed = has_key
        elif keyed != has_key:
            raise DataError(f"{where}: some rows name a line or source and some do not", hint="name the record on every row, or on none (rows in data order)")
        if keyed:
            ref = row["line"] if "line" in row else split_source(str(row["source"]))[1]
            if not isinstance(ref, int) or ref not in by_line:
                raise DataError(f"{where}: line {ref!r} is not the first line of a record in the data", hint="use the line numbers issues.jsonl shows (`line` field)")
            i = by_line[ref]
        else:
            i = order
            if i >= len(examples):
                raise DataError(f"{where}: more rows than the data's {len(examples)} records", hint="make one row per record, in the data's order")
            if "text" in row and normalize(str(row["text"])) != normalize(examples[i].text):
                raise DataError(f"{where}: text differs from record {i + 1} ({examples[i].source})", hint="the rows must follow the data file's order")
        order += 1
        values = np.zeros(len(classes))
        for label, p in scores.items():
            label = str(label)
            if not isinstance(p, (int, float)) or isinstance(p, bool) or not math.isfinite(p) or p < 0:
                raise DataError(f"{where}: probability of {label!r} is {p!r}", hint="probabilities are numbers >= 0")
            if label in classes:
                values[classes.index(label)] = p
            else:
                dropped.add(label)
        if values.sum() <= 0:
            raise DataError(f"{where}: no probability left for the data's labels", hint=f"the data's labels: {', '.join(classes.labels[:20])}")
        proba[i] = values / values.sum()
    missing = np.flatnonzero(np.isnan(proba[:, 0]))
    if len(missing):
        raise DataError(f"{path}: no probabilities for {len(missing)} record(s), e.g. {examples[missing[0]].source}", hint="give one row per record of the data file")
    if dropped:
        log.warning("soft labels: dropped labels the data does not have: %s", ", ".join(sorted(dropped)[:20]))
    return proba
