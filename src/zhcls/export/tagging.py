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
    diff = max(float(np.abs(np.exp(log_softmax(a)) - np.exp(log_softmax(b))).max()) for a, b in zip(ref_em, got_em))
    same_tags = np.concatenate([a.argmax(1) == b.argmax(1) for a, b in zip(ref_em, got_em)])
    ref_spans = [[e for e, _ in p] for p in model.predict_spans(texts)]
    got_spans = [[e for e, _ in p] for p in predictor._tagger.spans(texts, got_em)]
    agreement = float(np.mean([a == b for a, b in zip(ref_spans, got_spans)]))
    out["tags"] = {"max_abs_diff": diff, "tag_agreement": float(same_tags.mean()), "entity_agreement": agreement}
    if diff > prob_tolerance or agreement < MIN_ENTITY_AGREEMENT:
        raise _refuse("tag", diff, agreement, prob_tolerance, MIN_ENTITY_AGREEMENT)
    # the top-level pair every bundle reader knows: the worst head's difference; the class head's label
    # agreement, or for a tagger the share of texts whose entities agree
    first = out.get("classes", out["tags"])
    return {"max_abs_diff": max(h["max_abs_diff"] for h in (out.get("classes", first), out["tags"])),
            "label_agreement": first.get("label_agreement", agreement), **out}


def _refuse(head: str, diff: float, agreement: float, tolerance: float, minimum: float) -> ExportError:
    return ExportError(
        f"the exported {head} head disagrees with the trained one: max |p_onnx - p_torch| = {diff:.2e} (limit {tolerance:g}), "
        f"agreement {agreement:.4%} (limit {minimum:.1%})",
        hint="nothing was written; report this with the model's config",
    )
