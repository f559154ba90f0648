"""Entity-level scores (seqeval, strict IOB2 matching: an entity counts only with the exact span and type)
and the most frequent span errors."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from .spans import Entity, spans_to_tags


def entity_metrics(gold: Sequence[Sequence[Entity]], pred: Sequence[Sequence[Entity]], lengths: Sequence[int]) -> dict[str, Any]:
    """{"micro_precision", ..., "macro_f1", "per_type": {type: {precision, recall, f1, support}}, "n_gold", "n_pred"}."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    y_true = [spans_to_tags(g, n) for g, n in zip(gold, lengths)]
    y_pred = [spans_to_tags(p, n) for p, n in zip(pred, lengths)]
    n_gold, n_pred = sum(map(len, gold)), sum(map(len, pred))
    out: dict[str, Any] = {"n": len(gold), "n_gold": n_gold, "n_pred": n_pred}
    if not n_gold and not n_pred:  # seqeval divides by zero; no entities anywhere is a perfect empty score
        out.update({f"{avg}_{m}": 1.0 for avg in ("micro", "macro") for m in ("precision", "recall", "f1")}, per_type={})
        return out
    report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    for avg in ("micro", "macro"):
        row = report[f"{avg} avg"]
        out.update({f"{avg}_precision": float(row["precision"]), f"{avg}_recall": float(row["recall"]), f"{avg}_f1": float(row["f1-score"])})
    out["per_type"] = {
        kind: {"precision": float(r["precision"]), "recall": float(r["recall"]), "f1": float(r["f1-score"]), "support": int(r["support"])}
        for kind, r in sorted(report.items()) if not kind.endswith(" avg")
    }
    return out


def span_errors(texts: Sequence[str], gold: Sequence[Sequence[Entity]], pred: Sequence[Sequence[Entity]], top: int = 20) -> list[dict[str, Any]]:
    """The most frequent errors: {"error", "gold", "pred", "count", "example"}, where error is
    "missed" (no predicted entity overlaps the gold one), "spurious" (no gold entity overlaps the prediction),
    "type" (same span, other type) or "boundary" (overlapping spans that differ), and gold/pred are
    "TYPE:surface" (the surface is left out of boundary errors, which rarely repeat exactly)."""
    counts: Counter = Counter()
    examples: dict[tuple, str] = {}
    for text, g, p in zip(texts, gold, pred):
        gs, ps = set(g), set(p)
        for e in sorted(gs - ps):
            hits = [q for q in p if q.start < e.end and e.start < q.end]
            if not hits:
                key = ("missed", f"{e.type}:{text[e.start:e.end]}", "")
            elif any((q.start, q.end) == (e.start, e.end) for q in hits):
                q = next(q for q in hits if (q.start, q.end) == (e.start, e.end))
                key = ("type", f"{e.type}:{text[e.start:e.end]}", f"{q.type}:{text[q.start:q.end]}")
            else:
                key = ("boundary", e.type, hits[0].type)
                examples.setdefault(key, f"{text[e.start:e.end]} -> {text[hits[0].start:hits[0].end]}")
            counts[key] += 1
        for q in sorted(ps - gs):
            if not any(e.start < q.end and q.start < e.end for e in g):
                counts[("spurious", "", f"{q.type}:{text[q.start:q.end]}")] += 1
    return [
        {"error": k[0], "gold": k[1], "pred": k[2], "count": n, **({"example": examples[k]} if k in examples else {})}
        for k, n in counts.most_common(top)
    ]


def entity_stats(entity_lists: Sequence[Sequence[Entity] | None]) -> dict[str, Any] | None:
    """For `zhcls data check`: texts annotated with entities, and per type the number of entities and their
    lengths in characters (min, p50, p90, max, mean). None when no text is annotated."""
    import numpy as np

    annotated = [e for e in entity_lists if e is not None]
    if not annotated:
        return None
    by_type: dict[str, list[int]] = {}
    for entities in annotated:
        for e in entities:
            by_type.setdefault(e.type, []).append(e.end - e.start)

    def lengths(values: list[int]) -> dict[str, Any]:
        a = np.asarray(values)
        return {"count": len(a), "min": int(a.min()), "p50": int(np.percentile(a, 50, method="inverted_cdf")),
                "p90": int(np.percentile(a, 90, method="inverted_cdf")), "max": int(a.max()), "mean": round(float(a.mean()), 2)}

    every = [n for v in by_type.values() for n in v]
    return {"annotated": len(annotated), "with_entities": sum(1 for e in annotated if e), "entities": len(every),
            "types": {t: lengths(v) for t, v in sorted(by_type.items())}, **({"all": lengths(every)} if every else {})}
