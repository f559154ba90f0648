"""Read data as users have it: CLUE/FewCLUE JSON lines, text<TAB>label (either order), CSV with a header,
fastText's `__label__x text` lines, PaddleNLP-style directories, and plain one-text-per-line files.
Every problem names file and line, and nothing is read in a way that changes the data: a label that
is a list, a boolean or NaN, a TSV line with an extra column, or a CSV quote that swallows the
records after it is an error, not a new class or a merged text."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..artifact import sha256_file
from ..config import DataConfig
from ..errors import DataError
from ..text.normalize import normalize
from .conll import ENTITIES_FIELD, entities_from_json, read_conll
from .example import Example

TEXT_FIELDS = ("text", "sentence", "content", "review", "query", "title", "abst")
LABEL_FIELDS = ("label_desc", "label_des", "label", "labels", "cat", "category", "class")
PADDLE_FILES = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}
FASTTEXT_LABEL = "__label__"
_CONLL_LINE = re.compile(r"^.\t(O|[BIES]-\S+)$")
FORMATS = ("jsonl", "csv", "tsv", "fasttext", "lines", "conll")


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
    readers = {"jsonl": _read_jsonl, "csv": _read_csv, "tsv": _read_tsv, "fasttext": _read_fasttext, "lines": _read_lines,
               "conll": lambda path, text, options: read_conll(path, text, lines(text))}
    if fmt not in readers:
        raise DataError(f"unknown data format {fmt!r}", hint=f"use one of: auto, {', '.join(FORMATS)}, paddle")
    return readers[fmt](path, text, options)


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
    """A data file's sha256, recorded with runs and caches to notice a changed file."""
    return sha256_file(path)


def detect_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    first = next((line for line in lines(text) if line.strip()), "")
    if suffix in (".json", ".jsonl") or first.lstrip().startswith("{"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if first.startswith(FASTTEXT_LABEL):
        return "fasttext"
    if _CONLL_LINE.match(first):  # `char<TAB>tag`: one character, then O or a B-/I-/E-/S- tag
        return "conll"
    if "\t" in first:
        return "tsv"
    return "lines"


def _pick(fields: Iterable[str], wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    fields = list(fields)
    if wanted is not None:
        return wanted if wanted in fields else None
    return next((c for c in candidates if c in fields), None)


def _label_str(value: Any, where: str = "", field: str = "label") -> str | None:
    """A label as the string zhcls keeps: text, or a number (1.0 is "1"). A list, an object, a boolean or
    NaN has no faithful string form (str() would make "['a']", "True" or "nan" a class of its own)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise DataError(
            f"{where}: field {field!r} holds {_kind(value)} {_short(value)}; a label must be a string or a number",
            hint="give one label per record, e.g. \"label\": \"positive\" (zhcls is single-label)",
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _text_str(value: Any, where: str, field: str) -> str:
    if value is None:
        return ""  # an empty text: require_labeled and `data check` name it
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {field!r} holds {_kind(value)} {_short(value)}; a text must be a string",
            hint="write the text as a JSON string, or point [data] text_field at the field that holds it",
        )
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite number"
    return {list: "a list", dict: "an object", int: "a number", float: "a number"}.get(type(value), f"a {type(value).__name__}")


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        except RecursionError:
            raise DataError(f"{path}:{lineno}: JSON nested too deeply to read", hint="each line must be one flat JSON object of text and label") from None
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
            label = _label_str(record[label_field], f"{path}:{lineno}", label_field)
        text_ = _text_str(record[text_field], f"{path}:{lineno}", text_field)
        entities = entities_from_json(record.get(ENTITIES_FIELD), f"{path}:{lineno}", text_)
        out.append(Example(text_, label, str(path), lineno, entities=entities))
    return out


def _field_error(path: Path, lineno: int, what: str, wanted: str | None, fields: list[str], key: str, example: str) -> DataError:
    if wanted is not None:
        message = f"{path}:{lineno}: {what} field {wanted!r} not found; the record has {fields}"
    else:
        message = f"{path}:{lineno}: no {what} field found among {fields}"
    return DataError(message, hint=f"set [data] {key} (or --{key.replace('_', '-')}), e.g. {key} = \"{example}\"")


def _read_csv(path: Path, text: str, options: ReadOptions) -> list[Example]:
    # strict: a quote that opens a field but does not close it before the next delimiter is an error,
    # where the lenient default reads on and swallows the records after it into one text
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise DataError(f"{path}:1: unreadable CSV header ({exc})", hint=_CSV_QUOTE_HINT) from None
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
    spans: list[tuple[int, int, list[str]]] = []  # records over several physical lines: (first, last, row)
    lineno = reader.line_num + 1
    while True:
        # line_num is the last physical line read; a quoted line break makes a record span several,
        # and the record is reported at its first.
        start = lineno
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"{path}:{start}: unreadable CSV record ({exc}); a quote opened here is not closed where the field ends", hint=_CSV_QUOTE_HINT) from None
        lineno = reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise DataError(
                f"{path}:{start}: {len(row)} columns, the header has {len(header)}",
                hint="quote fields that contain commas or line breaks with double quotes",
            )
        if lineno - start > 1:
            spans.append((start, lineno - 1, row))
        out.append(Example(row[ti], _label_str(row[li]) if li is not None else None, str(path), start))
    _check_merged_records(path, text, spans, len(header), li, {e.label for e in out})
    return out


_CSV_QUOTE_HINT = 'quote a whole field ("like, this"), write a quote inside one as "", or remove the stray quote'


def _check_merged_records(path: Path, text: str, spans: list[tuple[int, int, list[str]]], n_columns: int, li: int | None, labels: set[str | None]) -> None:
    """A field may hold line breaks when it is quoted, but a stray quote makes one as well: the records
    up to the next quote become one field. Such a field has whole lines inside it (not its first line,
    which opens the quote, nor its last, which closes it) that read as records of their own: the
    header's number of columns and a label-like last cell (one the file uses, or no longer than its
    labels are). A real multi-line text does not."""
    if not spans or (li is None and n_columns < 2):  # one column: every line reads as a record
        return
    physical = lines(text)
    longest = max((len(label) for label in labels if label), default=0)
    for first, last, _row in spans:
        for inner in physical[first : last - 1]:  # lines first+1 .. last-1 (1-based)
            try:
                cells = next(csv.reader([inner]), [])
            except csv.Error:
                continue
            cell = cells[li].strip() if li is not None and len(cells) == n_columns else None
            if len(cells) == n_columns and (li is None or cell in labels or 0 < len(cell or "") <= longest):
                raise DataError(
                    f"{path}:{first}: a quoted field runs over lines {first}-{last} and holds what reads as a record of its own "
                    f"({inner[:40]!r}); an unbalanced quote probably merged the records after it",
                    hint=_CSV_QUOTE_HINT,
                )


def _read_tsv(path: Path, text: str, options: ReadOptions) -> list[Example]:
    rows: list[tuple[int, str, str]] = []
    columns = first_line = None
    for lineno, line in enumerate(lines(text), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(
                f"{path}:{lineno}: no TAB on this line; expected text<TAB>label or label<TAB>text",
                hint="use one TAB between text and label, or a CSV/JSON-lines file for texts with TABs",
            )
        n = line.count("\t") + 1
        if columns is None:
            columns, first_line = n, lineno
        elif n != columns:  # an extra TAB would otherwise move part of the text into the label
            raise DataError(
                f"{path}:{lineno}: {n} columns, line {first_line} has {columns}",
                hint="every line needs the same columns; replace TABs inside texts with spaces, or use a CSV/JSON-lines file",
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
        out.append(Example(text_, label.strip(), str(path), lineno))
    return out


def _guess_tsv_order(rows: list[tuple[int, str, str]]) -> str:
    """The label column is the one with fewer distinct, shorter values."""
    sample = rows[:2000]
    firsts = [r[1] for r in sample]
    lasts = [(r[1] + "\t" + r[2]).rpartition("\t")[2] for r in sample]
    score_first = (len(set(firsts)), sum(map(len, firsts)))
    score_last = (len(set(lasts)), sum(map(len, lasts)))
    return "label_text" if score_first < score_last else "text_label"


def _read_fasttext(path: Path, text: str, options: ReadOptions) -> list[Example]:
    """fastText's supervised format: `__label__x` then the text on one line. A line with several labels
    is refused: zhcls is single-label."""
    out: list[Example] = []
    labeled: bool | None = None
    for lineno, line in enumerate(lines(text), 1):
        if not line.strip():
            continue
        tokens = line.split(maxsplit=1) if line.startswith(FASTTEXT_LABEL) else []
        label = tokens[0][len(FASTTEXT_LABEL):] if tokens else None
        body = tokens[1] if len(tokens) > 1 else "" if tokens else line
        if labeled is None:
            labeled = label is not None
        if labeled and label is None:
            raise DataError(f"{path}:{lineno}: no {FASTTEXT_LABEL} label, though earlier lines have one", hint=f"start every line with {FASTTEXT_LABEL}LABEL and a space")
        if label == "":
            raise DataError(f"{path}:{lineno}: empty label after {FASTTEXT_LABEL}", hint=f"write {FASTTEXT_LABEL}LABEL, e.g. {FASTTEXT_LABEL}positive")
        if body.startswith(FASTTEXT_LABEL):
            raise DataError(f"{path}:{lineno}: more than one {FASTTEXT_LABEL} label; zhcls is single-label", hint="keep one label per line")
        out.append(Example(body.strip(), label, str(path), lineno))
    return out


def _read_lines(path: Path, text: str, options: ReadOptions) -> list[Example]:
    return [Example(line.strip(), None, str(path), i) for i, line in enumerate(lines(text), 1) if line.strip()]


def require_labeled(examples: list[Example], what: str) -> None:
    """Training and evaluation need a non-empty text and a label on every row."""
    if not examples:
        raise DataError(f"{what}: no examples", hint="the file is empty or has only blank lines")
    for ex in examples:
        if ex.label is None or ex.label == "":
            raise DataError(f"{ex.source}: no label", hint=f"{what} must be labeled; set [data] label_field if the label has another name")
        if not normalize(ex.text):  # zero-width spaces alone are empty too, once normalized
            raise DataError(f"{ex.source}: empty text", hint="remove the line, or run `zhcls data check` to list every problem")
