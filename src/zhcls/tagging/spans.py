"""Entities as character spans, and their BIO / BIOES tag sequences.

An entity is (start, end, type) over the characters of the original text, end exclusive, so
`text[start:end]` is its surface. Tags are one per character: "O", "B-T", "I-T", and for BIOES
also "E-T" (last character of a multi-character entity) and "S-T" (a one-character entity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

Scheme = Literal["bio", "bioes"]
SCHEMES = ("bio", "bioes")
OUTSIDE = "O"


@dataclass(frozen=True, order=True)
class Entity:
    start: int
    end: int  # exclusive
    type: str

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "type": self.type}


class SpanError(ValueError):
    """A tag sequence or a set of spans that cannot be read as entities; `index` is the offending
    position (a character for tags, an entity for spans), so a reader can name the line."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.message, self.index = message, index


def check_entities(entities: Sequence[Entity], n_chars: int) -> None:
    """SpanError for an empty, out-of-range or overlapping entity (nested entities overlap too: one
    tag per character cannot express them)."""
    order = sorted(range(len(entities)), key=lambda i: (entities[i].start, entities[i].end))
    previous: Entity | None = None
    for i in order:
        e = entities[i]
        if not e.type or any(c.isspace() for c in e.type) or "-" in e.type:
            raise SpanError(f"entity {i} has type {e.type!r}; a type is a non-empty word without spaces or '-'", i)
        if not 0 <= e.start < e.end <= n_chars:
            raise SpanError(f"entity {i} [{e.start}, {e.end}) is out of range for a text of {n_chars} characters (0 <= start < end <= {n_chars})", i)
        if previous is not None and e.start < previous.end:
            raise SpanError(
                f"entity {i} [{e.start}, {e.end}) {e.type} overlaps [{previous.start}, {previous.end}) {previous.type}; "
                "nested or overlapping entities cannot be tagged one tag per character", i)
        previous = e


def spans_to_tags(entities: Iterable[Entity], n_chars: int, scheme: Scheme = "bio") -> list[str]:
    """One tag per character; the entities must have passed check_entities."""
    tags = [OUTSIDE] * n_chars
    for e in entities:
        if scheme == "bioes" and e.end - e.start == 1:
            tags[e.start] = f"S-{e.type}"
            continue
        tags[e.start] = f"B-{e.type}"
        for i in range(e.start + 1, e.end):
            tags[i] = f"I-{e.type}"
        if scheme == "bioes":
            tags[e.end - 1] = f"E-{e.type}"
    return tags


def split_tag(tag: str) -> tuple[str, str]:
    """("B", "LOC") for "B-LOC", ("O", "") for "O"; SpanError(index 0) for anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S") or not kind:
        raise SpanError(f"tag {tag!r} is not O, B-TYPE, I-TYPE, E-TYPE or S-TYPE", 0)
    return prefix, kind


def detect_scheme(tags: Iterable[str]) -> Scheme:
    return "bioes" if any(t[:2] in ("E-", "S-") for t in tags) else "bio"


def tags_to_spans(tags: Sequence[str], *, strict: bool = True) -> list[Entity]:
    """The entities of a BIO or BIOES sequence.

    strict (reading annotated data): an I- or E- tag that does not continue an entity of its type begun by
    B- is a SpanError at that position, and so, in a sequence that uses E-/S- (BIOES), is a B- entity that
    no E- closes. Not strict (a model's predictions): such a tag begins a new entity, as seqeval's default
    mode reads it, and an unclosed entity ends where the next one begins.
    """
    out: list[Entity] = []
    start, kind = -1, ""  # the open entity: its first character (-1: none) and type
    bioes = detect_scheme(tags) == "bioes"

    def close(end: int) -> None:
        nonlocal start
        if start >= 0:
            if strict and bioes and tags[start].startswith("B-") and not tags[end - 1].startswith("E-"):
                raise SpanError(f"the {kind} entity begun at character {start} has no E- tag (it ends at character {end - 1})", start)
            out.append(Entity(start, end, kind))
        start = -1

    for i, tag in enumerate(tags):
        try:
            prefix, t = split_tag(tag)
        except SpanError as exc:
            raise SpanError(exc.message, i) from None
        continues = prefix in ("I", "E") and start >= 0 and t == kind
        if prefix in ("I", "E") and not continues:
            if strict:
                before = f"the tag before it is {tags[i - 1]!r}; " if i else ""
                raise SpanError(f"{tag!r} at character {i} does not continue a {t} entity ({before}an entity starts with B-{t})", i)
            close(i)
            start, kind = i, t
        elif prefix in ("O", "B", "S"):
            close(i)
            if prefix != "O":
                start, kind = i, t
        if prefix in ("E", "S"):
            close(i + 1)
    close(len(tags))
    return out
