"""zhcls predict RUN [FILE|-] [--top-k K]: JSON lines {"text", "label", "score", "scores"} on stdout."""

from __future__ import annotations

import json
import sys
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Optional

import numpy as np
import typer

from ..errors import DataError, RunError
from . import _common

BATCH = 512


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    run: Path = typer.Argument(..., help="Run, model or bundle directory, or registry://NAME@ALIAS."),
    source: str = typer.Argument("-", help="A data file or a file with one text per line; '-' reads stdin."),
    top_k: int = typer.Option(0, "--top-k", min=0, help="Keep only the K most probable classes in `scores` (0: all)."),
    fmt: str = _common.FormatOption,
    text_field: Optional[str] = _common.TextFieldOption,
) -> None:
    """Predict with a run or a bundle; print one JSON line per text."""
    from ..data.readers import ReadOptions, read_examples
    from ..models.dirs import load_predictor

    model = load_predictor(run)  # a bundle (or registry://NAME@ALIAS) needs no torch
    if source == "-":
        # stdin is read in batches as it arrives, so `tail -f log | zhcls predict RUN` streams
        texts: Iterable[str] = stdin_texts(getattr(sys.stdin, "buffer", sys.stdin))  # bytes, so a bad one has a line number
    else:
        texts = [e.text for e in read_examples(Path(source), ReadOptions(fmt, text_field, None))]
    labels = model.labels_.labels
    out = sys.stdout
    iterator = iter(texts)
    if getattr(model, "tags_spans", False):  # tagger.v1, joint.v1: entities, and the label where there is a class head
        while chunk := list(islice(iterator, BATCH)):
            for record in span_records(model, chunk, top_k):
                out.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
            out.flush()
        return
    while chunk := list(islice(iterator, BATCH)):
        proba = model.predict_proba(chunk)
        if not np.isfinite(proba).all():  # NaN is not JSON, and no label is "the most probable" of NaNs
            raise RunError(f"{run}: the model's probabilities are not finite (NaN or inf); its weights are damaged", hint="train the model again (with a lower training.lr if its loss diverged)")
        for text, row in zip(chunk, proba):
            order = row.argsort()[::-1][: top_k or len(labels)]
            scores = {labels[i]: round(float(row[i]), 6) for i in order}
            best = int(order[0])
            out.write(json.dumps({"text": text, "label": labels[best], "score": round(float(row[best]), 6), "scores": scores}, ensure_ascii=False, allow_nan=False) + "\n")
        out.flush()


def span_records(model, texts: list[str], top_k: int) -> list[dict]:
    """{"text", ["label", "score", "scores"], "entities": [{"text", "start", "end", "type", "score"}]} per text."""
    labels = model.labels_.labels
    proba = model.predict_proba(texts) if len(labels) else None
    out = []
    for i, (text, found) in enumerate(zip(texts, model.predict_spans(texts))):
        record: dict = {"text": text}
        if proba is not None:
            order = proba[i].argsort()[::-1][: top_k or len(labels)]
            record.update(label=labels[int(order[0])], score=round(float(proba[i, order[0]]), 6), scores={labels[j]: round(float(proba[i, j]), 6) for j in order})
        record["entities"] = [{"text": text[e.start : e.end], "start": e.start, "end": e.end, "type": e.type, "score": round(float(s), 6)} for e, s in found]
        out.append(record)
    return out


def stdin_texts(stream: BinaryIO | Iterable[str]) -> Iterator[str]:
    """Non-blank lines of `stream` as UTF-8 text; bytes that are not UTF-8 are an error naming the line."""
    for lineno, raw in enumerate(stream, 1):
        try:
            line = (raw if isinstance(raw, str) else raw.decode("utf-8-sig" if lineno == 1 else "utf-8")).strip()
        except UnicodeDecodeError as exc:
            raise DataError(
                f"<stdin>:{lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                hint="convert the input first, e.g. `iconv -f GB18030 -t UTF-8 FILE | zhcls predict RUN`",
            ) from None
        if line:
            yield line
