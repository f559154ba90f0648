"""Train word or character vectors with gensim on the user's own (unlabeled) text."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..artifact import write_text
from ..errors import ConfigError
from .normalize import normalize
from .tokenizers import get_tokenizer


@dataclass(frozen=True)
class VectorsInfo:
    path: Path
    words: int
    dim: int
    sentences: int


def train_vectors(
    texts: Sequence[str], out: str | Path, *, tokenizer: str = "char.v1", dim: int = 128, window: int = 5,
    min_count: int = 2, epochs: int = 5, sg: bool = True, seed: int = 42, workers: int = 1,
) -> VectorsInfo:
    """Word2vec (skip-gram by default) over tokenized, normalized texts, written as a word2vec text file
    that `[model] vectors = "..."` loads. The tokenizer must match the model's."""
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise ConfigError("`zhcls embeddings train` needs gensim", hint="pip install 'zhcls[train]'") from None
    tokenize = get_tokenizer(tokenizer)
    sentences = [tokens for tokens in (tokenize(normalize(t)) for t in texts) if tokens]
    if not sentences:
        raise ConfigError("no text to train vectors on", hint="give files with one text per line, or JSON lines / CSV with a text field")
    gensim_log = logging.getLogger("gensim")
    level = gensim_log.level
    gensim_log.setLevel(logging.WARNING)  # its INFO lines (a dozen per epoch) would drown build's and train's own log
    try:
        model = Word2Vec(sentences, vector_size=dim, window=window, min_count=min_count, sg=int(sg), epochs=epochs, seed=seed, workers=workers)
    finally:
        gensim_log.setLevel(level)
    kv = model.wv
    lines = [f"{len(kv.index_to_key)} {dim}\n"]
    lines += [w + " " + " ".join(f"{x:.6f}" for x in kv[w]) + "\n" for w in kv.index_to_key]
    out = Path(out)
    write_text(out, "".join(lines))
    return VectorsInfo(out, len(kv.index_to_key), dim, len(sentences))
