"""Apply label-issue decisions to a data file: relabel or drop records, leave every other byte alone.

The file is cut into the same records the reader sees (a line for JSON lines and TSV, a CSV record that
may span lines; data/records.py, which `zhcls augment` shares), and only the records that change are
re-serialized; the rest, the header, blank lines, line endings and a byte-order mark are copied as they are.

    changes = plan_changes(examples, read_issues("issues.jsonl"), mode="relabel", threshold=0.2)
    result = apply_changes("train.csv", changes, "train.clean.csv", ReadOptions("csv", "review", "cat"))
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from ..artifact import write_bytes
from ..data.example import Example
from ..data.readers import ReadOptions
from ..data.records import RecordFile, dump_json_like, format_csv_row, parse_csv_record, rewrite_target, split_ending
from ..errors import DataError
from ..text.normalize import normalize

Mode = Literal["relabel", "drop"]


@dataclass
class Change:
    line: int  # first line of the record in the input file
    action: str  # "relabel" or "drop"
    text: str
    old_label: str
    new_label: str | None  # None when dropped
    kind: str = ""
    quality: float | None = None
    decided_by: str = ""  # "threshold quality <= 0.2", "reviewed FILE:ROW", "every issue"

    def to_dict(self, data: str) -> dict[str, Any]:
        return {"source": f"{data}:{self.line}", **asdict(self)}


@dataclass
class CleanResult:
    output: Path
    log: Path
    n_records: int
    relabeled: int
    dropped: int
    skipped: int  # issues not applied (above the threshold, or rejected / left empty in the review)


def plan_changes(
    examples: Sequence[Example],
    issues: Sequence[dict[str, Any]],
    *,
    mode: Mode = "relabel",
    threshold: float | None = None,
    reviewed: bool = False,
) -> tuple[list[Change], int]:
    """What to do with each issue row: all of them, those with quality <= `threshold`, or (`reviewed`,
    rows of a review CSV) those whose `accept` is yes, with the reviewer's `suggested_label`.

    Every row must still match the data (same text and given label on that line), so a stale issues
    file is refused rather than applied to the wrong records. Returns the changes and the rows skipped.
    """
    by_line = {e.line: e for e in examples}
    labels = sorted({e.label for e in examples if e.label is not None})
    changes: dict[int, Change] = {}
    skipped = 0
    for row in issues:
        where = row.get("_where", "issues")
        line = row["line"]
        ex = by_line.get(line) if isinstance(line, int) else None
        if ex is None:
            raise DataError(f"{where}: line {line!r} is not the first line of a record in the data", hint="run `zhcls labels find` on this data file again")
        given = str(row.get("given_label", ""))
        if given != ex.label or ("text" in row and normalize(str(row["text"])) != normalize(ex.text)):
            raise DataError(
                f"{where}: does not match {ex.source} (label {ex.label!r}, text {ex.text[:30]!r})",
                hint="the data changed since `zhcls labels find`, or the label field differs; run find again or pass --label-field",
            )
        if reviewed:
            if row.get("accept") is not True:
                skipped += 1
                continue
            decided = f"reviewed {where}"
        elif threshold is not None:
            q = row.get("quality")
            if q is None or q > threshold:
                skipped += 1
                continue
            decided = f"threshold quality <= {threshold}"
        else:
            decided = "every issue"
        new = str(row.get("suggested_label", "")).strip()
        if mode == "relabel":
            if new not in labels:
                raise DataError(f"{where}: suggested label {new!r} is not a label of the data", hint=f"labels: {', '.join(labels[:20])}")
            if new == ex.label:
                skipped += 1
                continue
        changes[line] = Change(
            line, mode, ex.text, ex.label, new if mode == "relabel" else None, str(row.get("kind", "")),
            row.get("quality"), decided,
        )
    return [changes[k] for k in sorted(changes)], skipped


# -- rewriting one record ---------------------------------------------------------------------------
def _relabel_jsonl(raw: str, field: str, new: str, where: str) -> str:
    body, end = split_ending(raw)
    record = json.loads(body)
    if field not in record:
        raise DataError(f"{where}: field {field!r} not found", hint="pass --label-field")
    old = record[field]
    value: Any = new
    if isinstance(old, int) and not isinstance(old, bool) and new.lstrip("-").isdigit():
        value = int(new)
    record[field] = value
    return dump_json_like(record, body) + end


def _relabel_tsv(raw: str, order: str, new: str) -> str:
    body, end = split_ending(raw)
    if order == "label_text":
        label, sep, rest = body.partition("\t")
        return _swap_core(label, new) + sep + rest + end
    rest, sep, label = body.rpartition("\t")
    return rest + sep + _swap_core(label, new) + end


def _swap_core(cell: str, new: str) -> str:
    """Replace the label inside `cell`, keeping white space around it."""
    core = cell.strip()
    if not core:
        return new
    lead = cell[: len(cell) - len(cell.lstrip())]
    trail = cell[len(cell.rstrip()):]
    return lead + new + trail


def _relabel_csv(raw: str, column: int, new: str) -> str:
    _, end = split_ending(raw)
    row = parse_csv_record(raw)
    row[column] = new
    return format_csv_row(row, end)


def _tsv_order(examples: Sequence[Example], lines: list[str], options: ReadOptions) -> str:
    if options.tsv_order != "auto":
        return options.tsv_order
    for ex in examples[:200]:
        body, _ = split_ending(lines[ex.line - 1])
        first, _, rest = body.partition("\t")
        if first.strip() != body.rpartition("\t")[2].strip():
            return "label_text" if first.strip() == ex.label and rest == ex.text else "text_label"
    return "text_label"


def _csv_label_column(text: str, examples: Sequence[Example], lines: list[str], spans, options: ReadOptions) -> int:
    header = [h.strip() for h in next(csv.reader(io.StringIO(text, newline="")))]
    if options.label_field is not None and options.label_field in header:
        return header.index(options.label_field)
    # the reader picked the column; find it as the one whose values are the examples' labels
    for col in range(len(header)):
        ok = True
        for ex in examples[:200]:
            start, end = spans[ex.line]
            row = parse_csv_record("".join(lines[start:end]))
            if col >= len(row) or row[col].strip() != ex.label:
                ok = False
                break
        if ok:
            return col
    raise DataError("cannot tell which CSV column holds the label", hint="pass --label-field")


def _label_field_jsonl(examples: Sequence[Example], lines: list[str], options: ReadOptions) -> str:
    from ..data.readers import LABEL_FIELDS

    if options.label_field is not None:
        return options.label_field
    first = json.loads(lines[examples[0].line - 1])  # the reader picks on the first record
    name = next((c for c in LABEL_FIELDS if c in first), None)
    if name is None:
        raise DataError("cannot tell which JSON field holds the label", hint="pass --label-field")
    return name


# -- the whole file ---------------------------------------------------------------------------------
def apply_changes(
    path: str | Path,
    examples: Sequence[Example],
    changes: Sequence[Change],
    output: str | Path,
    options: ReadOptions = ReadOptions(),
    log_path: str | Path | None = None,
    skipped: int = 0,
) -> CleanResult:
    """Write `output` (the input with `changes` applied, same format) and a change log (JSON lines,
    `OUTPUT_STEM.changes.jsonl` unless `log_path`); both atomically."""
    path, output, text, fmt = rewrite_target(path, output, options.format, "labels clean", "write the cleaned data to a new file; the change log refers to the original")
    data = RecordFile.read(path, fmt, text)
    lines, spans, bom = data.lines, data.spans, data.bom
    by_line = {c.line: c for c in changes}
    edit: dict[int, str] = {}
    if changes:
        if fmt == "jsonl":
            field = _label_field_jsonl(examples, lines, options)
        elif fmt == "tsv":
            order = _tsv_order(examples, lines, options)
        else:
            column = _csv_label_column(text, examples, lines, spans, options)
    for line, change in by_line.items():
        if line not in spans:
            raise DataError(f"{path}:{line}: no record starts on this line")
        start, end = spans[line]
        record = "".join(lines[start:end])
        if change.action == "drop":
            edit[start] = ""
        elif fmt == "jsonl":
            edit[start] = _relabel_jsonl(record, field, change.new_label, f"{path}:{line}")
        elif fmt == "tsv":
            edit[start] = _relabel_tsv(record, order, change.new_label)
        else:
            edit[start] = _relabel_csv(record, column, change.new_label)
    out_parts: list[str] = [bom]
    i = 0
    while i < len(lines):
        if i in edit:
            start = i
            line = start + 1
            end = spans[line][1]
            out_parts.append(edit[i])
            i = end
        else:
            out_parts.append(lines[i])
            i += 1
    log_path = Path(log_path) if log_path is not None else output.with_name(f"{output.stem}.changes.jsonl")
    write_bytes(output, "".join(out_parts).encode("utf-8"))
    write_bytes(log_path, "".join(json.dumps(c.to_dict(str(path)), ensure_ascii=False) + "\n" for c in changes).encode("utf-8"))
    relabeled = sum(c.action == "relabel" for c in changes)
    return CleanResult(output, log_path, len(examples), relabeled, len(changes) - relabeled, skipped)


