"""The parity gate of tagging bundles (tagger.v1, joint.v1), one check per head: the class probabilities
as for every classifier, and the tag head's per-character probabilities and decoded entities."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ExportError
from ..tagging.decode import log_softmax

MIN_ENTITY_AGREEMENT = 0.999  # texts whose decoded entities (spans and types) are identical


def span_parity(model: Any, predictor: Any, texts: Sequence[str], prob_tolerance: float, min_agreement: float) -> dict[str, Any]:
    """{"max_abs_diff", "label_agreement", "classes": {...} (joint.v1), "tags": {"max_abs_diff", "tag_agreement",
    "entity_agreement"}}; an ExportError when a head is outside its limits."""
    from .onnx import check_parity

    ref_logits, ref_em = model.outputs(texts)
    got_logits, got_em, _ = predictor._tagger.run(texts, len(predictor.labels))
    out: dict[str, Any] = {}
    if ref_logits is not None:
        from ..eval.probs import softmax

        out["classes"] = check_parity(softmax(ref_logits), softmax(got_logits))
        if out["classes"]["max_abs_diff"] > prob_tolerance or out["classes"]["label_agreement"] < min_agreement:
            raise _refuse("class", out["classes"]["max_abs_diff"], out["classes"]["label_agreement"], prob_tolerance, min_agreement)
    out["tags"] = _tag_change(ref_em, got_em, model.predict_spans(texts), predictor._tagger.spans(texts, got_em))
    diff, agreement = out["tags"]["max_abs_diff"], out["tags"]["entity_agreement"]
    if diff > prob_tolerance or agreement < MIN_ENTITY_AGREEMENT:
        raise _refuse("tag", diff, agreement, prob_tolerance, MIN_ENTITY_AGREEMENT)
    # the top-level pair every bundle reader knows: the worst head's difference; the class head's label
    # agreement, or for a tagger the share of texts whose entities agree
    first = out.get("classes", out["tags"])
    return {"max_abs_diff": max(h["max_abs_diff"] for h in (out.get("classes", first), out["tags"])),
            "label_agreement": first.get("label_agreement", agreement), **out}


def span_int8_change(fp32: Any, reference: tuple[np.ndarray, list[np.ndarray], list[bool]], int8: Any, examples: Sequence[Any]) -> dict[str, Any]:
    """How far the int8 bundle moves from the fp32 bundle (`reference`: its TaggerRuntime.run of the examples'
    texts): the tag head's change as in span_parity, the class head's label agreement (joint.v1), and on the
    annotated examples each score of both and its change. Recorded, not gated: int8 moves probabilities by
    more than the fp32 gate's tolerance by design; the scores say what that costs."""
    from ..training.run import evaluate_examples

    texts = [e.text for e in examples]
    ref_logits, ref_em, _ = reference
    got_logits, got_em, _ = int8._tagger.run(texts, len(int8.labels))
    out: dict[str, Any] = _tag_change(ref_em, got_em, fp32._tagger.spans(texts, ref_em), int8._tagger.spans(texts, got_em))
    if int8._tagger.classifies:
        out["label_agreement"] = float((ref_logits.argmax(1) == got_logits.argmax(1)).mean())
    annotated = [e for e in examples if e.label is not None or e.entities is not None]
    if annotated:
        before, after = evaluate_examples(fp32, annotated), evaluate_examples(int8, annotated)
        for key in ("entity_f1", "accuracy", "macro_f1"):
            if key in before:
                out.update({f"{key}_fp32": before[key], f"{key}_int8": after[key], f"{key}_change": after[key] - before[key]})
    return out


def _tag_change(ref_em: Sequence[np.ndarray], got_em: Sequence[np.ndarray], ref_spans: Sequence[Any], got_spans: Sequence[Any]) -> dict[str, float]:
    """The largest change of a per-character tag probability, and the share of characters whose best tag and of
    texts whose entities (spans and types) are the same."""
    diff = max(float(np.abs(np.exp(log_softmax(a)) - np.exp(log_softmax(b))).max()) for a, b in zip(ref_em, got_em))
    same_tags = np.concatenate([a.argmax(1) == b.argmax(1) for a, b in zip(ref_em, got_em)])
    agreement = float(np.mean([[e for e, _ in a] == [e for e, _ in b] for a, b in zip(ref_spans, got_spans)]))
    return {"max_abs_diff": diff, "tag_agreement": float(same_tags.mean()), "entity_agreement": agreement}


def _refuse(head: str, diff: float, agreement: float, tolerance: float, minimum: float) -> ExportError:
    return ExportError(
        f"the exported {head} head disagrees with the trained one: max |p_onnx - p_torch| = {diff:.2e} (limit {tolerance:g}), "
        f"agreement {agreement:.4%} (limit {minimum:.1%})",
        hint="nothing was written; report this with the model's config",
    )
