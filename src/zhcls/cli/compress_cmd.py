"""zhcls compress RUN -o RUN2 --width 2/3 [--max-vocab N] [--recover-epochs E];  ... --budget-ms X [--budget-mb Y]"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common


def register(app: typer.Typer) -> None:
    app.command("compress")(compress)


def compress(
    run: Path = typer.Argument(..., help="A finished run (textcnn.v1, bigru.v1, fasttext.v1, transformer.v1)."),
    output: Path = typer.Option(..., "-o", "--output", help="The compressed run to write (rerun the same command to resume)."),
    width: Optional[str] = typer.Option(None, "--width", help="Share of filters / hidden units / heads and FFN neurons / n-gram buckets to keep, e.g. 2/3; 0 (a textcnn.v1 or bigru.v1 with an n-gram bag): the bag alone, a fasttext.v1."),
    max_vocab: Optional[int] = typer.Option(None, "--max-vocab", help="Keep at most N tokens (PAD and UNK included); the rest become UNK."),
    vocab_by: str = typer.Option("frequency", "--vocab-by", help="Which tokens stay: frequency (on the train split) or norm (of the embedding)."),
    recover_epochs: int = typer.Option(10, "--recover-epochs", help="Epochs of distillation from the unpruned run, early-stopped on dev (0: none)."),
    unlabeled: list[Path] = typer.Option([], "--unlabeled", help="A file of unlabeled in-domain texts for recovery's transfer set (repeatable)."),
    max_unlabeled: Optional[int] = typer.Option(None, "--max-unlabeled", help="At most this many unlabeled texts (a seeded sample)."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Rank and recover on at most N train examples (a seeded sample); for large train splits."),
    quantize: str = typer.Option("none", "--quantize", help="Export both bundles as none (fp32) or int8 (with --width)."),
    budget_ms: Optional[float] = typer.Option(None, "--budget-ms", help="Search for the most accurate variant with p50 <= this (1 thread, tokenization included)."),
    budget_mb: Optional[float] = typer.Option(None, "--budget-mb", help="... and a bundle of at most this many MB."),
    widths: Optional[str] = typer.Option(None, "--widths", help="Budget search: widths to try (default 1,2/3,1/2,1/4,0; 0 is tried for a textcnn.v1 or bigru.v1 with an n-gram bag only)."),
    vocabs: str = typer.Option("1,1/2", "--vocabs", help="Budget search: vocabulary sizes to try, as shares of the run's vocabulary."),
    no_int8: bool = typer.Option(False, "--no-int8", help="Budget search: fp32 bundles only."),
    metric: str = typer.Option("accuracy", "--metric", help="Budget search: the dev score that chooses (accuracy or macro_f1)."),
    force: bool = typer.Option(False, "--force", help="Delete whatever OUTPUT holds and start over."),
) -> None:
    """Prune a run smaller and recover it by distillation.

    Keeps --width of the filters, units or heads and --max-vocab tokens, then distills from the unpruned run.

    With --budget-ms/--budget-mb, search widths x vocabularies x int8 for the most accurate variant within budget."""
    from ..compress import compress as run_compress
    from ..compress import parse_width, search
    from ..compress.search import DEFAULT_WIDTHS
    from ..errors import ConfigError

    _common.setup_logging()
    if vocab_by not in ("frequency", "norm"):
        raise ConfigError(f"--vocab-by {vocab_by!r} is not supported", hint="use frequency or norm")
    if recover_epochs < 0:
        raise ConfigError(f"--recover-epochs {recover_epochs} is negative", hint="0 skips recovery")
    if budget_ms is not None or budget_mb is not None:
        if width is not None or max_vocab is not None:
            raise ConfigError("--width/--max-vocab and --budget-ms/--budget-mb do not go together", hint="the budget search chooses the width; use --widths and --vocabs to set its grid")
        if metric not in ("accuracy", "macro_f1"):
            raise ConfigError(f"--metric {metric!r} is not supported", hint="use accuracy or macro_f1")
        result = search(run, output, budget_ms=budget_ms, budget_mb=budget_mb, widths=_split(widths) if widths is not None else DEFAULT_WIDTHS, vocabs=_split(vocabs), int8=not no_int8,
                        recover_epochs=recover_epochs, vocab_by=vocab_by, unlabeled=[str(u) for u in unlabeled], max_unlabeled=max_unlabeled, max_train=max_train, metric=metric, force=force,
                        stage=_common.training_progress)
        for r in sorted(result.candidates, key=lambda r: -r["dev"]):
            mark = "*" if r.get("chosen") else " "
            note = "" if r["within_budget"] else "  over budget"
            print(f"{mark} {r['name']:<12} {r['precision']:<4} dev {r['dev']:.4f}  p50 {r['p50_ms']:>8.4f} ms  {r['size_mb']:>8.3f} MB{note}")
        print(f"chosen: {result.chosen['name']} {result.chosen['precision']}: {result.reason}")
        print(f"run: {result.out}")
        print(f"bundle: {result.out / 'bundle'}")
        print(f"report: {result.out / 'compress' / 'search.md'}")
        return
    if width is None:
        raise ConfigError("say how far to compress: --width (e.g. 2/3), or a budget (--budget-ms / --budget-mb)", hint="zhcls compress RUN -o RUN2 --width 1/2 --max-vocab 3000")
    if quantize not in ("none", "int8"):
        raise ConfigError(f"--quantize {quantize!r} is not supported", hint="use --quantize int8, or leave it out")
    with _common.training_progress("recover") as hook:
        result = run_compress(run, output, width=parse_width(width), max_vocab=max_vocab, vocab_by=vocab_by,  # type: ignore[arg-type]
                              recover_epochs=recover_epochs, unlabeled=[str(u) for u in unlabeled], max_unlabeled=max_unlabeled, max_train=max_train,
                              quantize=quantize,  # type: ignore[arg-type]
                              force=force, progress=hook)
    c = result.metrics["compress"]
    for split in ("dev", "test"):
        for key in ("accuracy", "entity_f1"):  # a tagger's headline is its entity F1, a joint model's both
            if key in c.get("change", {}).get(split, {}):
                b, a = c["before"][split][key], c["after"][split][key]
                print(f"{split} {key}: {b:.4f} -> {a:.4f} ({100 * (a - b):+.2f} points)")
    if "ratios" in c:
        bb, ab = c["before"]["bundle"], c["after"]["bundle"]
        print(f"bundle size: {bb['total_bytes'] / 1e6:.2f} MB -> {ab['total_bytes'] / 1e6:.2f} MB ({100 * c['ratios']['size']:.0f}%)")
        print(f"p50 latency: {bb['p50_ms']:.4f} ms -> {ab['p50_ms']:.4f} ms ({100 * c['ratios']['p50']:.0f}%, 1 thread)")
    print(f"run: {result.run_dir}")
    if result.bundle is not None:
        print(f"bundle: {result.bundle}")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
