"""Tagging data: the `entities` field of JSON lines, and CoNLL-style `char<TAB>tag` files.

JSON lines: {"text": "...", "label": "...", "entities": [{"start": 0, "end": 2, "type": "LOC"}]}, character
offsets into `text`, end exclusive. CoNLL: one character and its tag per line (BIO or BIOES), a blank line
between sentences. Every problem is a DataError naming file and line, like the other readers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError
from ..tagging.spans import Entity, SpanError, check_entities, tags_to_spans
from .example import Example

ENTITIES_FIELD = "entities"
_JSON_HINT = 'write entities as [{"start": 0, "end": 2, "type": "LOC"}]: character offsets into the text, end exclusive'


def entities_from_json(value: Any, where: str, text: str) -> tuple[Entity, ...] | None:
    """The record's `entities` (None when the field is null: not annotated; [] is "no entities")."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise DataError(f"{where}: field {ENTITIES_FIELD!r} holds {type(value).__name__}, expected a list of entities", hint=_JSON_HINT)
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"start", "end", "type", "text"} or not {"start", "end", "type"} <= set(item):
            raise DataError(f"{where}: entities[{i}] = {str(item)[:80]} is not {{start, end, type}}", hint=_JSON_HINT)
        start, end, kind = item["start"], item["end"], item["type"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)) or not isinstance(kind, str):
            raise DataError(f"{where}: entities[{i}]: start and end must be integers and type a string (got {start!r}, {end!r}, {kind!r})", hint=_JSON_HINT)
        out.append(Entity(start, end, kind))
    try:
        check_entities(out, len(text))
    except SpanError as exc:
        raise DataError(f"{where}: {exc.message}", hint=_JSON_HINT) from None
    for i, (item, e) in enumerate(zip(value, out)):
        if "text" in item and item["text"] != text[e.start : e.end]:  # an optional surface form must match the offsets
            raise DataError(f"{where}: entities[{i}] says text {item['text']!r}, but text[{e.start}:{e.end}] is {text[e.start:e.end]!r}", hint=_JSON_HINT)
    return tuple(sorted(out))


def read_conll(path: Path, text: str, lines: list[str]) -> list[Example]:
    """Sentences of `char<TAB>tag` lines; each Example starts at its sentence's first line. A line may
    hold a space as its character (`" \\tO"`); a line without a TAB, a malformed tag, or an I-/E- tag that
    continues no entity is an error at that line."""
    out: list[Example] = []
    chars: list[str] = []
    tags: list[str] = []
    first = 0

    def flush() -> None:
        if not chars:
            return
        try:
            entities = tags_to_spans(tags, strict=True)
        except SpanError as exc:
            raise DataError(f"{path}:{first + exc.index}: {exc.message}", hint=_CONLL_HINT) from None
        out.append(Example("".join(chars), None, str(path), first, entities=tuple(entities)))
        chars.clear()
        tags.clear()

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            flush()
            continue
        char, sep, tag = line.partition("\t")
        if not sep or "\t" in tag:
            raise DataError(f"{path}:{lineno}: expected one character, a TAB and a tag (got {line[:40]!r})", hint=_CONLL_HINT)
        if len(char) != 1:
            raise DataError(f"{path}:{lineno}: {char!r} is {len(char)} characters; a CoNLL line holds one character", hint=_CONLL_HINT)
        if not chars:
            first = lineno
        chars.append(char)
        tags.append(tag.strip())
    flush()
    return out


_CONLL_HINT = "one `character<TAB>tag` per line (tags O, B-TYPE, I-TYPE, and E-TYPE, S-TYPE for BIOES), a blank line between sentences"
