"""zhcls predict RUN [FILE|-] [--top-k K]: JSON lines {"text", "label", "score", "scores"} on stdout."""

from __future__ import annotations

import json
import sys
from itertools import islice
from pathlib import Path
from typing import Iterable, Optional

import typer

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
    from ..registry_store import resolve_bundle
    from ..serve.bundle import is_bundle

    run = resolve_bundle(run)  # registry://NAME@production -> its bundle; plain paths unchanged
    if is_bundle(run):
        from ..serve.predictor import Predictor

        model = Predictor(run)  # torch is not needed for a bundle
    else:
        from ..models.base import load_model

        model = load_model(run)
    if source == "-":
        # stdin is read in batches as it arrives, so `tail -f log | zhcls predict RUN` streams
        stripped = (line.strip() for line in sys.stdin)
        texts: Iterable[str] = (line for line in stripped if line)
    else:
        texts = [e.text for e in read_examples(Path(source), ReadOptions(fmt, text_field, None))]
    labels = model.classes_.labels
    out = sys.stdout
    iterator = iter(texts)
    while chunk := list(islice(iterator, BATCH)):
        for text, row in zip(chunk, model.predict_proba(chunk)):
            order = row.argsort()[::-1][: top_k or len(labels)]
            scores = {labels[i]: round(float(row[i]), 6) for i in order}
            best = int(order[0])
            out.write(json.dumps({"text": text, "label": labels[best], "score": round(float(row[best]), 6), "scores": scores}, ensure_ascii=False) + "\n")
        out.flush()
