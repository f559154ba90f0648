"""Read data as users have it: CLUE/FewCLUE JSON lines, text<TAB>label (either order), CSV with a header,
PaddleNLP-style directories, and plain one-text-per-line files. Every problem names file and line."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..config import DataConfig
from ..errors import DataError
from ..text.normalize import normalize
from .example import Example

TEXT_FIELDS = ("text", "sentence", "content", "review", "query", "title", "abst")
LABEL_FIELDS = ("label_desc", "label_des", "label", "labels", "cat", "category", "class")
PADDLE_FILES = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}


@dataclass(frozen=True)
class ReadOptions:
    format: str = "auto"
    text_field: str | None = None
    label_field: str | None = None
    tsv_order: str = "auto"

    @classmethod
    def from_config(cls, data: DataConfig) -> "ReadOptions":
        return cls(data.format, data.text_field, data.label_field, data.tsv_order)


def read_examples(path: str | Path, options: ReadOptions = ReadOptions()) -> list[Example]:
    """All records of one file. Labels are strings; a file without labels gives `label=None`."""
    path = Path(path)
    if path.is_dir():
        path = path / PADDLE_FILES["train"]
    text = read_text(path)
    fmt = detect_format(path, text) if options.format in ("auto", "paddle") else options.format
    reader = {"jsonl": _read_jsonl, "csv": _read_csv, "tsv": _read_tsv, "lines": _read_lines}[fmt]
    return reader(path, text, options)


def read_split(data: DataConfig, split: str) -> list[Example] | None:
    """The examples of `split` ("train", "dev", "test") named in [data]; a PaddleNLP directory in
    `train` also supplies dev.txt and test.txt when they are not named."""
    path = data.path(split)
    if path is None and split != "train":
        train = data.path("train")
        if train is not None and train.is_dir() and (train / PADDLE_FILES[split]).is_file():
            path = train / PADDLE_FILES[split]
    if path is None:
        return None
    if path.is_dir():
        path = path / PADDLE_FILES[split]
    return read_examples(path, ReadOptions.from_config(data))


def paddle_label_file(data: DataConfig) -> list[str] | None:
    """Labels in the order of a PaddleNLP directory's label.txt, if there is one."""
    train = data.path("train")
    if train is None or not train.is_dir() or not (train / "label.txt").is_file():
        return None
    return [line.strip() for line in lines(read_text(train / "label.txt")) if line.strip()]


def read_text(path: Path) -> str:
    if not path.exists():
        raise DataError(f"{path}: file not found", hint="check the path; relative paths start from the current directory")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint=f"convert the file first, e.g. `iconv -f GB18030 -t UTF-8 {path} > {path.stem}.utf8{path.suffix}`",
        ) from None


def lines(text: str) -> list[str]:
    """Physical lines, split on \n only. str.splitlines() also splits on U+2028, U+0085 and other
    characters that occur inside real records (FewCLUE iflytek has U+2028 in its texts), which would
    cut a JSON line in two and shift every line number after it."""
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return [line[:-1] if line.endswith("\r") else line for line in out]


def fingerprint(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def detect_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    first = next((line for line in lines(text) if line.strip()), "")
    if suffix in (".json", ".jsonl") or first.lstrip().startswith("{"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if "\t" in first:
        return "tsv"
    return "lines"


def _pick(fields: Iterable[str], wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    fields = list(fields)
    if wanted is not None:
        return wanted if wanted in fields else None
    return next((c for c in candidates if c in fields), None)


def _label_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _read_jsonl(path: Path, text: str, options: ReadOptions) -> list[Example]:
    out: list[Example] = []
    text_field = label_field = None
    labeled: bool | None = None
    for lineno, line in enumerate(lines(text), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})",
                hint="each line must be one JSON object, e.g. {\"sentence\": \"...\", \"label\": \"...\"}",
            ) from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        if text_field is None:
            text_field = _pick(record, options.text_field, TEXT_FIELDS)
            if text_field is None:
                raise _field_error(path, lineno, "text", options.text_field, sorted(record), "text_field", "sentence")
            label_field = _pick(record, options.label_field, LABEL_FIELDS)
            if options.label_field is not None and label_field is None:
                raise _field_error(path, lineno, "label", options.label_field, sorted(record), "label_field", "label")
            labeled = label_field is not None
        if text_field not in record:
            raise _field_error(path, lineno, "text", text_field, sorted(record), "text_field", text_field)
        label = None
        if labeled:
            if label_field not in record:
                raise DataError(
                    f"{path}:{lineno}: field {label_field!r} missing, though earlier lines have it",
                    hint="every line of a labeled file needs a label; put unlabeled text in its own file",
                )
            label = _label_str(record[label_field])
        value = record[text_field]
        out.append(Example("" if value is None else str(value), label, f"{path}:{lineno}"))
    return out


def _field_error(path: Path, lineno: int, what: str, wanted: str | None, fields: list[str], key: str, example: str) -> DataError:
    if wanted is not None:
        message = f"{path}:{lineno}: {what} field {wanted!r} not found; the record has {fields}"
    else:
        message = f"{path}:{lineno}: no {what} field found among {fields}"
    return DataError(message, hint=f"set [data] {key} (or --{key.replace('_', '-')}), e.g. {key} = \"{example}\"")


def _read_csv(path: Path, text: str, options: ReadOptions) -> list[Example]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise DataError(f"{path}:1: unreadable CSV header ({exc})") from None
    header = [h.strip() for h in header]
    text_field = _pick(header, options.text_field, TEXT_FIELDS)
    if text_field is None:
        looked = f"column {options.text_field!r}" if options.text_field else f"text column (looked for {', '.join(TEXT_FIELDS)})"
        raise DataError(
            f"{path}:1: CSV header {header} has no {looked}",
            hint="name the columns with [data] text_field / label_field or --text-field / --label-field",
        )
    label_field = _pick(header, options.label_field, LABEL_FIELDS)
    if options.label_field is not None and label_field is None:
        raise DataError(
            f"{path}:1: CSV header {header} has no column {options.label_field!r}",
            hint="name the label column with [data] label_field or --label-field",
        )
    ti = header.index(text_field)
    li = header.index(label_field) if label_field else None
    out: list[Example] = []
    try:
        lineno = reader.line_num + 1
        for row in reader:
            # line_num is the last physical line read; a quoted line break makes a record span several,
            # and the record is reported at its first.
            start, lineno = lineno, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}:{start}: {len(row)} columns, the header has {len(header)}",
                    hint="quote fields that contain commas or line breaks with double quotes",
                )
            out.append(Example(row[ti], _label_str(row[li]) if li is not None else None, f"{path}:{start}"))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: unreadable CSV ({exc})") from None
    return out


def _read_tsv(path: Path, text: str, options: ReadOptions) -> list[Example]:
    rows: list[tuple[int, str, str]] = []
    for lineno, line in enumerate(lines(text), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(
                f"{path}:{lineno}: no TAB on this line; expected text<TAB>label or label<TAB>text",
                hint="use one TAB between text and label, or a CSV/JSON-lines file for texts with TABs",
            )
        first, rest = line.split("\t", 1)
        rows.append((lineno, first, rest))
    order = options.tsv_order if options.tsv_order != "auto" else _guess_tsv_order(rows)
    out = []
    for lineno, first, rest in rows:
        if order == "label_text":
            label, text_ = first, rest
        else:
            text_, _, label = (first + "\t" + rest).rpartition("\t")
        out.append(Example(text_, label.strip(), f"{path}:{lineno}"))
    return out


def _guess_tsv_order(rows: list[tuple[int, str, str]]) -> str:
    """The label column is the one with fewer distinct, shorter values."""
    sample = rows[:2000]
    firsts = [r[1] for r in sample]
    lasts = [(r[1] + "\t" + r[2]).rpartition("\t")[2] for r in sample]
    score_first = (len(set(firsts)), sum(map(len, firsts)))
    score_last = (len(set(lasts)), sum(map(len, lasts)))
    return "label_text" if score_first < score_last else "text_label"


def _read_lines(path: Path, text: str, options: ReadOptions) -> list[Example]:
    return [Example(line.strip(), None, f"{path}:{i}") for i, line in enumerate(lines(text), 1) if line.strip()]


def require_labeled(examples: list[Example], what: str) -> None:
    """Training and evaluation need a non-empty text and a label on every row."""
    if not examples:
        raise DataError(f"{what}: no examples", hint="the file is empty or has only blank lines")
    for ex in examples:
        if ex.label is None or ex.label == "":
            raise DataError(f"{ex.source}: no label", hint=f"{what} must be labeled; set [data] label_field if the label has another name")
        if not normalize(ex.text):  # zero-width spaces alone are empty too, once normalized
            raise DataError(f"{ex.source}: empty text", hint="remove the line, or run `zhcls data check` to list every problem")
