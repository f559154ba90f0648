"""zhcls augment INPUT OUTPUT [-n 4] [--delete 0.1 --pos 0.2 ...] [--seed 1] [--guard RUN --min-confidence X]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import _common


def register(app: typer.Typer) -> None:
    app.command("augment")(augment)


def _rate(flag: str, what: str) -> typer.models.OptionInfo:
    return typer.Option(None, flag, min=0.0, max=1.0, help=what)


def augment(
    input: Path = typer.Argument(..., help="Labeled data file: JSON lines, TSV or CSV."),
    output: Path = typer.Argument(..., help="File to write, in the input's format (originals + augmented rows)."),
    n: int = typer.Option(4, "-n", min=1, help="Augmented copies per example (fewer when a text is too short to vary)."),
    seed: int = typer.Option(1, "--seed", help="Same seed, same output."),
    unk: Optional[float] = _rate("--unk", "UNK masking rate (unk.v1)."),
    delete: Optional[float] = _rate("--delete", "Random deletion rate (delete.v1)."),
    truncate: Optional[float] = _rate("--truncate", "Share cut off by truncation to a random span (truncate.v1)."),
    swap: Optional[float] = _rate("--swap", "Adjacent character swap rate (swap.v1)."),
    insert: Optional[float] = _rate("--insert", "Random insertion rate (insert.v1)."),
    homophone: Optional[float] = _rate("--homophone", "Homophone replacement rate (homophone.v1, pypinyin)."),
    near: bool = typer.Option(False, "--near-homophones", help="homophone.v1 also uses other tones and z/zh, n/l, -n/-ng confusions."),
    equivalent: Optional[float] = _rate("--equivalent", "Equivalent characters rate: 1/一/壹/①, full/half width (equivalent.v1)."),
    pos: Optional[float] = _rate("--pos", "Same-part-of-speech word replacement rate (pos.v1, jieba)."),
    synonym: Optional[float] = _rate("--synonym", "Synonym replacement rate (synonym.v1); needs --synonyms."),
    synonyms: Optional[Path] = typer.Option(None, "--synonyms", help="Cilin-style synonym file (`Aa01A01= 人 士 人物`)."),
    vector: Optional[float] = _rate("--vector", "Nearest-neighbour replacement rate (vectors.v1); needs --vectors."),
    vectors: Optional[Path] = typer.Option(None, "--vectors", help="word2vec text file (e.g. from `zhcls embeddings train`)."),
    level: str = typer.Option("char", "--level", help="Unit of unk/delete/insert and vectors: char or word (jieba)."),
    unk_token: str = typer.Option("\ufffd", "--unk-token", help="What UNK masking writes (default U+FFFD; [UNK] for BERT vocabularies)."),
    protect: list[str] = typer.Option([], "--protect", help="A term no op may change (repeatable); numbers, dates, URLs and e-mails always are."),
    guard: Optional[Path] = typer.Option(None, "--guard", help="Label-safe mode: a trained run; rows it predicts another label for are dropped."),
    min_confidence: float = typer.Option(0.0, "--min-confidence", min=0.0, max=1.0, help="With --guard: also drop rows whose label probability is below X."),
    no_original: bool = typer.Option(False, "--no-original", help="Write only the augmented rows."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    fmt: str = _common.FormatOption,
    text_field: Optional[str] = _common.TextFieldOption,
    label_field: Optional[str] = _common.LabelFieldOption,
) -> None:
    """Write N augmented copies of every example of INPUT.

    OUTPUT has the same format and labels, with provenance per row. Without rate options the default
    recipe is used (docs/augmentation.md)."""
    from ..augment.files import augment_file
    from ..augment.pipeline import DEFAULT_RECIPE, Augmenter
    from ..data.readers import ReadOptions
    from ..errors import ConfigError

    _common.setup_logging()
    if level not in ("char", "word"):
        raise ConfigError(f"--level {level!r} is not char or word")
    if synonym is not None and synonyms is None:
        raise ConfigError("--synonym needs a dictionary", hint="pass --synonyms cilin.txt (lines like `Aa01A01= 人 士 人物`)")
    if vector is not None and vectors is None:
        raise ConfigError("--vector needs word vectors", hint="pass --vectors vectors.txt (train some with `zhcls embeddings train`)")
    recipe: dict[str, dict] = {}
    for name, rate, extra in (
        ("unk.v1", unk, {"level": level, "unk": unk_token}), ("delete.v1", delete, {"level": level}), ("truncate.v1", truncate, {}),
        ("swap.v1", swap, {}), ("insert.v1", insert, {"level": level}), ("homophone.v1", homophone, {"near": near}),
        ("equivalent.v1", equivalent, {}), ("pos.v1", pos, {}), ("synonym.v1", synonym, {"path": str(synonyms)}),
        ("vectors.v1", vector, {"path": str(vectors), "level": level}),
    ):
        if rate is not None and rate > 0:
            recipe[name] = {"rate": rate, **extra}
    if not recipe:
        recipe = {name: {"rate": rate} for name, rate in DEFAULT_RECIPE.items()}
    augmenter = Augmenter.from_recipe(recipe, n=n, seed=seed, protect=tuple(protect))
    model = None
    if guard is not None:
        from ..models.base import load_model

        model = load_model(guard)
    result = augment_file(
        input, output, augmenter, ReadOptions(fmt, text_field, label_field), keep_original=not no_original, model=model, min_confidence=min_confidence,
    )
    summary = result.to_dict()
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    per = ", ".join(f"{k} {v}" for k, v in summary["by_strategy"].items())
    print(f"{summary['sources']} examples -> {summary['augmented']} augmented rows ({per}); {summary['not_produced']} of {summary['requested']} requested copies not produced (text too short to vary)")
    if summary["dropped"] is not None:
        dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items())
        print(f"label-safe mode ({guard}, min confidence {min_confidence}): dropped {sum(summary['dropped'].values())}: {dropped}")
    extra = f" and {result.provenance}" if result.provenance else ""
    print(f"wrote {result.output}{extra}")
