"""zhcls embeddings train FILE... -o vectors.txt"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common

app = typer.Typer(help="Train word/character vectors for `[model] vectors`.", no_args_is_help=True)


@app.command("train")
def train(
    files: list[Path] = typer.Argument(..., help="Text files: one text per line, or JSON lines / TSV / CSV (labels are ignored)."),
    output: Path = typer.Option(..., "-o", "--output", help="word2vec text file to write."),
    tokenizer: str = typer.Option("char.v1", "--tokenizer", help="char.v1 or jieba.v1: the tokenizer the model will use."),
    dim: int = typer.Option(128, "--dim", min=2, help="Vector size; set the model's embed_dim to the same."),
    window: int = typer.Option(5, "--window", min=1),
    min_count: int = typer.Option(2, "--min-count", min=1),
    epochs: int = typer.Option(5, "--epochs", min=1),
    seed: int = typer.Option(42, "--seed"),
    text_field: Optional[str] = _common.TextFieldOption,
) -> None:
    """Train word2vec vectors on your own unlabeled text.

    Skip-gram vectors with gensim, for `[model] vectors`."""
    from ..data.readers import ReadOptions, read_examples
    from ..text.vectors import train_vectors

    texts = [e.text for f in files for e in read_examples(f, ReadOptions(text_field=text_field))]
    info = train_vectors(texts, output, tokenizer=tokenizer, dim=dim, window=window, min_count=min_count, epochs=epochs, seed=seed)
    print(f"{info.words} vectors of size {info.dim} from {info.sentences} texts -> {info.path}")
