"""`zhcls augment` on a file: the same format out as in, labels kept, provenance on every new row.

- JSON lines: an augmented row is its source record with the text replaced and two fields added,
  `aug_source` (the source's `id` field, else its line number) and `aug_strategy`.
- CSV: two columns are added to the header, `aug_source` and `aug_strategy` (empty on original rows).
- TSV (text<TAB>label has no room for more columns): a sidecar `OUTPUT.provenance.jsonl`, one JSON line
  per augmented row: {"line": its line in OUTPUT, "aug_source": source line in INPUT, "aug_strategy": ...}.

Original records are copied byte for byte (CSV rows get the two empty cells), each followed by its
augmented rows. Output and sidecar are written atomically.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifact import write_bytes
from ..data.example import Example
from ..data.readers import TEXT_FIELDS, ReadOptions, _pick, read_examples
from ..data.records import RecordFile, dump_json_like, format_csv_row, parse_csv_record, rewrite_target, split_ending
from ..errors import DataError
from .guard import guard as run_guard
from .pipeline import Augmenter

PROVENANCE = ("aug_source", "aug_strategy")


@dataclass
class AugmentFileResult:
    output: Path
    provenance: Path | None  # the TSV sidecar
    format: str
    n_sources: int
    n_written: int  # augmented rows written
    n_requested: int  # n x sources
    by_strategy: dict[str, int]
    dropped: dict[str, int] | None  # label-safe mode: rows dropped by reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output), "provenance": None if self.provenance is None else str(self.provenance), "format": self.format,
            "sources": self.n_sources, "augmented": self.n_written, "requested": self.n_requested,
            "not_produced": self.n_requested - self.n_written - sum((self.dropped or {}).values()),
            "by_strategy": self.by_strategy, "dropped": self.dropped,
        }


def augment_file(
    path: str | Path,
    output: str | Path,
    augmenter: Augmenter,
    options: ReadOptions = ReadOptions(),
    *,
    keep_original: bool = True,
    model=None,
    min_confidence: float = 0.0,
) -> AugmentFileResult:
    path, output, text, fmt = rewrite_target(path, output, options.format, "augment", "write the augmented data to a new file")
    examples = read_examples(path, ReadOptions(fmt, options.text_field, options.label_field, options.tsv_order))
    if not examples:
        raise DataError(f"{path}: no records to augment")
    if not augmenter.fitted:
        augmenter.fit([e.text for e in examples])
    augmented = augmenter.augment(examples)
    dropped = None
    if model is not None:
        result = run_guard(model, examples, augmented, min_confidence=min_confidence)
        augmented, dropped = result.kept, result.counts
    by_source: dict[int, list[Example]] = {}
    for ex in augmented:
        by_source.setdefault(ex.meta["aug_index"], []).append(ex)

    data = RecordFile.read(path, fmt, text)
    lines, spans, ending = data.lines, data.spans, data.line_ending()
    first_line = {e.line: i for i, e in enumerate(examples)}
    writer = _Writer(fmt, lines, ending, options, examples)
    out: list[str] = [data.bom]
    sidecar: list[dict[str, Any]] = []
    out_line = 1
    i = 0
    if fmt == "csv":
        out.append(writer.header())
        out_line += 1
        i = 1  # the header is the first physical line
    while i < len(lines):
        lineno = i + 1
        if lineno in first_line:
            start, end = spans[lineno]
            idx = first_line[lineno]
            if keep_original:
                record = writer.original("".join(lines[start:end]))
                out.append(record)
                out_line += record.count("\n")
            for ex in by_source.get(idx, []):
                row = writer.augmented("".join(lines[start:end]), examples[idx], ex, lineno)
                if out and out[-1] and not out[-1].endswith("\n"):
                    out[-1] += ending
                    out_line += 1
                if fmt == "tsv":
                    sidecar.append({"line": out_line, "aug_source": lineno, "aug_strategy": ex.meta["aug_strategy"]})
                out.append(row)
                out_line += row.count("\n")
            i = end
        else:
            if keep_original:
                out.append(lines[i])
                out_line += lines[i].count("\n")
            i += 1
    write_bytes(output, "".join(out).encode("utf-8"))
    provenance = None
    if fmt == "tsv":
        provenance = output.with_name(output.name + ".provenance.jsonl")
        write_bytes(provenance, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sidecar).encode("utf-8"))
    counts = Counter(ex.meta["aug_strategy"] for ex in augmented)
    return AugmentFileResult(output, provenance, fmt, len(examples), len(augmented), augmenter.n * len(examples), dict(sorted(counts.items())), dropped)


class _Writer:
    """Re-serializes one record of the input with a new text, in the input's own style."""

    def __init__(self, fmt: str, lines: list[str], ending: str, options: ReadOptions, examples: list[Example]) -> None:
        self.fmt, self.lines, self.ending, self.options = fmt, lines, ending, options
        if fmt == "csv":
            self.header_row = parse_csv_record("".join(lines))
            names = [h.strip() for h in self.header_row]
            field = _pick(names, options.text_field, TEXT_FIELDS)
            if field is None:
                raise DataError("cannot tell which CSV column holds the text", hint="pass --text-field")
            self.text_col = names.index(field)
            self.id_col = names.index("id") if "id" in names else None
            self.has_provenance = all(p in names for p in PROVENANCE)
            self.prov_cols = [names.index(p) for p in PROVENANCE] if self.has_provenance else []
        elif fmt == "jsonl":
            first = json.loads(split_ending(lines[examples[0].line - 1])[0])
            self.text_field = _pick(first, options.text_field, TEXT_FIELDS)

    def header(self) -> str:
        raw = self.lines[0]
        if self.has_provenance:
            return raw
        body, end = split_ending(raw)
        return body + "," + ",".join(PROVENANCE) + (end or self.ending)

    def original(self, record: str) -> str:
        if self.fmt != "csv" or self.has_provenance:
            return record
        body, end = split_ending(record)
        return body + ",," + end

    def augmented(self, record: str, source: Example, ex: Example, lineno: int) -> str:
        body, end = split_ending(record)
        end = end or self.ending
        strategy = ex.meta["aug_strategy"]
        if self.fmt == "jsonl":
            obj = json.loads(body)
            obj[self.text_field] = ex.text
            if ex.entities is not None:  # tagging data: the same entities, at their offsets in the new text
                obj["entities"] = [e.to_json() for e in ex.entities]
            obj["aug_source"] = obj["id"] if "id" in obj and not isinstance(obj["id"], (dict, list)) else lineno
            obj["aug_strategy"] = strategy
            return dump_json_like(obj, body) + end
        if self.fmt == "tsv":
            head, sep, label = body.rpartition("\t")
            if head == source.text:
                return ex.text + sep + label + end
            label, sep, tail = body.partition("\t")
            return label + sep + ex.text + end
        row = parse_csv_record(record)
        row[self.text_col] = ex.text
        src_id = row[self.id_col] if self.id_col is not None else str(lineno)
        if self.has_provenance:
            row[self.prov_cols[0]], row[self.prov_cols[1]] = src_id, strategy
        else:
            row += [src_id, strategy]
        return format_csv_row(row, end)
