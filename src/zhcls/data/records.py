"""Byte-preserving record rewriting, shared by `zhcls labels clean` (quality/clean.py) and `zhcls augment`
(augment/files.py): a data file cut into the records the reader sees, and one record re-serialized in the
file's own style, so every record a command does not change is copied byte for byte.

    text = RecordFile.read(path, fmt)                 # lines (endings kept), spans, byte-order mark
    start, end = text.spans[example.line]             # the record's physical lines
    dump_json_like(record_dict, original_line_body)   # same separators and escaping as the original
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, DataError
from .readers import detect_format, read_text

BOM = "\ufeff"


@dataclass
class RecordFile:
    """A JSON lines, TSV or CSV file as physical lines and records, numbered exactly as the reader numbers
    Example.line. `spans`: first line of a record -> (start, end) indices into `lines`."""

    path: Path
    fmt: str
    text: str  # decoded, without the byte-order mark
    lines: list[str]
    spans: dict[int, tuple[int, int]]
    bom: str  # BOM when the file starts with one, else ""

    @classmethod
    def read(cls, path: Path, fmt: str, text: str | None = None) -> "RecordFile":
        """`text`: the file's decoded text when the caller has read it already (to detect the format)."""
        text = read_text(path) if text is None else text
        bom = BOM if path.read_bytes().startswith(b"\xef\xbb\xbf") else ""
        lines, spans = record_spans(text, fmt)
        return cls(path, fmt, text, lines, spans, bom)

    def record(self, line: int) -> str:
        start, end = self.spans[line]
        return "".join(self.lines[start:end])

    def line_ending(self) -> str:
        """The file's first line ending ("\\n" when it has none): what a new record ends with."""
        return next((end for end in (split_ending(line)[1] for line in self.lines) if end), "\n")


def rewrite_target(path: str | Path, output: str | Path, fmt: str, command: str, hint: str) -> tuple[Path, Path, str, str]:
    """(input, output, the input's text, its format) for `command`, which writes a changed copy of a labeled
    data file: a directory input means its train.txt; an output that is a directory or the input itself, or
    a format without labeled records, is refused with a message naming the file. `hint`: how to pick the
    output."""
    path, output = Path(path), Path(output)
    if path.is_dir():
        path = path / "train.txt"
    if output.is_dir():
        raise ConfigError(f"{output}: is a directory; the output is a file", hint=f"name a file, e.g. {output / path.name}")
    if output.resolve() == path.resolve():
        raise ConfigError(f"{output}: the output would overwrite the input", hint=hint)
    text = read_text(path)
    fmt = detect_format(path, text) if fmt in ("auto", "paddle") else fmt
    if fmt not in ("jsonl", "tsv", "csv"):
        raise DataError(f"{path}: format {fmt!r} has no labeled records for {command}", hint=f"{command} reads JSON lines, TSV and CSV files with labels")
    return path, output, text, fmt


def record_spans(text: str, fmt: str) -> tuple[list[str], dict[int, tuple[int, int]]]:
    """The file's physical lines (endings kept) and, per record, first line -> (start, end) line indices.
    A CSV record may span lines (a quoted line break); its header is no record."""
    if fmt == "csv":
        lines = list(io.StringIO(text, newline=""))
        spans: dict[int, tuple[int, int]] = {}
        counter = _Counting(lines)
        reader = csv.reader(counter)
        try:
            next(reader)  # the header
            while True:
                start = counter.consumed
                try:
                    next(reader)
                except StopIteration:
                    break
                spans[start + 1] = (start, counter.consumed)
        except csv.Error as exc:
            raise DataError(f"unreadable CSV near line {counter.consumed} ({exc})") from None
        return lines, spans
    lines = physical_lines(text)
    return lines, {i + 1: (i, i + 1) for i in range(len(lines))}


class _Counting:
    def __init__(self, lines: list[str]) -> None:
        self.lines, self.consumed = lines, 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.consumed >= len(self.lines):
            raise StopIteration
        self.consumed += 1
        return self.lines[self.consumed - 1]


def physical_lines(text: str) -> list[str]:
    """Lines ended by \\n only, endings kept: the reader's split (readers.lines), byte for byte."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def split_ending(raw: str) -> tuple[str, str]:
    """(body, line ending): "\\r\\n", "\\n" or ""."""
    for end in ("\r\n", "\n"):
        if raw.endswith(end):
            return raw[: -len(end)], end
    return raw, ""


def dump_json_like(obj: Any, original: str) -> str:
    """`obj` as one JSON line in the style of the `original` line's body: its separators (with or without
    spaces) and its escaping (\\u escapes if the original was pure ASCII with escapes), no line ending."""
    spaced = '": ' in original or '", ' in original
    ascii_escaped = original.isascii() and "\\u" in original
    return json.dumps(obj, ensure_ascii=ascii_escaped, separators=(", ", ": ") if spaced else (",", ":"))


def parse_csv_record(record: str) -> list[str]:
    return next(csv.reader(io.StringIO(record, newline="")))


def format_csv_row(row: list[str], end: str) -> str:
    """One CSV row ending in `end` (nothing when `end` is "": the file's last record without a newline)."""
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator=end or "\n").writerow(row)
    out = buf.getvalue()
    return out if end else out[:-1]
