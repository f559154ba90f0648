"""`zhcls compress`: smaller, faster models from trained runs (docs/compression.md).

    compress(run, out, width=2/3, max_vocab=N)   prune one way, recover by distillation, write a run
    search(run, out, budget_ms=X, budget_mb=Y)   try widths x vocabularies x int8, keep the most accurate within budget

Pruning itself belongs to each model (its `prune` hook: textcnn.py, bigru.py, fasttext.py, transformer.py;
shared row selection in models/pruning.py); this package runs it, recovers, measures and chooses.
"""

from .run import CompressError, CompressResult, compress, parse_width, width_label
from .search import SearchResult, search

__all__ = ["CompressError", "CompressResult", "SearchResult", "compress", "parse_width", "search", "width_label"]
