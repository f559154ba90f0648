"""Likely label errors: out-of-fold probabilities, then confident learning (cleanlab), plus near-duplicate
texts that carry different labels.

    folds = stratified_kfold(labels, 5, seed)                              # data/splits.py
    proba = out_of_fold_proba(texts, labels, "tfidf.v1", params, training, folds)   # [n, k], sorted labels
    ranked = find_label_issues(y, proba)                                   # indices, most suspicious first
    issues = build_issues(examples, proba, classes)                        # rows for issues.jsonl

The algorithms are cleanlab's (`cleanlab.filter.find_label_issues`, `cleanlab.rank.get_label_quality_scores`);
this module only feeds them and turns their answer into rows a person can review.
"""

from __future__ import annotations

import logging
import time
import unicodedata
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel

from ..config import TrainingConfig
from ..data.example import Example, LabelSet
from ..data.splits import stratified_kfold, train_indices
from ..errors import ConfigError, DataError
from ..text.normalize import normalize

log = logging.getLogger(__name__)

# ("fold", {"fold", "folds", "seconds"}) after each fold; the model's ("step", info) events pass through
# with "fold" and "folds" added, so a progress bar can run across all folds.
FoldHook = Callable[[str, dict[str, Any]], None]

LABEL_ERROR = "label_error"
CONFLICTING_DUPLICATE = "conflicting_duplicate"


# -- out-of-fold probabilities --------------------------------------------------------------------------
def out_of_fold_proba(
    texts: Sequence[str],
    labels: Sequence[str],
    model_name: str,
    params: BaseModel | dict | None,
    training: TrainingConfig | None,
    folds: int | list[np.ndarray] = 5,
    seed: int = 42,
    progress: FoldHook | None = None,
) -> np.ndarray:
    """Probabilities [n, k] for every text from a fresh model that never saw it (k-fold cross-fitting).

    Columns follow the sorted label set of `labels` (`LabelSet.from_labels`), also when a fold's training
    part lacks a class (that column is 0 for the fold). `folds` is a number of stratified folds (split
    with `seed`) or the held-out index arrays themselves. Each fold trains without a dev set, for the
    configured number of epochs (unset: TrainingConfig's 10, not a model's longer budget for early stopping on
    dev), with no checkpoints.
    """
    from ..models.base import build_model

    texts, labels = list(texts), list(labels)
    n = len(texts)
    if n != len(labels):
        raise DataError(f"{n} texts but {len(labels)} labels")
    classes = LabelSet.from_labels(labels)
    if len(classes) < 2:
        raise DataError(f"label issues need at least 2 classes; the data has {len(classes)}", hint="check [data] label_field")
    held_out = stratified_kfold(labels, folds, seed) if isinstance(folds, int) else [np.asarray(f) for f in folds]
    training = training or TrainingConfig()
    if "epochs" not in training.model_fields_set:  # a model's own budget (textcnn.v1's 40) assumes early stopping on dev
        training = training.model_copy(update={"epochs": TrainingConfig.model_fields["epochs"].default})
    covered = np.zeros(n, dtype=np.int64)
    for f in held_out:
        covered[f] += 1
    if not (covered == 1).all():
        raise ValueError("folds must hold out every index exactly once")
    proba = np.zeros((n, len(classes)), dtype=np.float64)
    k = len(held_out)
    for i, test in enumerate(held_out):
        started = time.perf_counter()
        train = train_indices(held_out, i, n)
        hook = None
        if progress is not None:
            def hook(kind: str, info: dict[str, Any], _i: int = i) -> None:
                if kind == "step":
                    progress("step", {**info, "fold": _i, "folds": k})

        model = build_model(model_name, params, training)
        model.fit([texts[j] for j in train], [labels[j] for j in train], progress=hook)
        part = np.asarray(model.predict_proba([texts[j] for j in test]), dtype=np.float64)
        columns = [classes.index(label) for label in model.labels_.labels]
        proba[np.ix_(test, columns)] = part
        seconds = time.perf_counter() - started
        log.debug("fold %d/%d: trained on %d, predicted %d in %.1fs", i + 1, k, len(train), len(test), seconds)
        if progress is not None:
            progress("fold", {"fold": i + 1, "folds": k, "seconds": seconds})
    return proba


# -- confident learning (cleanlab) ---------------------------------------------------------------------
def _check_arrays(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or y.ndim != 1 or len(y) != len(p):
        raise ValueError(f"labels must be [n] and pred_probs [n, k]; got {y.shape} and {p.shape}")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError("labels must be integer ids in [0, k)")
    sums = p.sum(axis=1, keepdims=True)
    return y.astype(np.int64), p / np.where(sums > 0, sums, 1.0)


FILTERS = (
    "low_self_confidence", "low_normalized_margin", "prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
)
# "low_self_confidence": the N rows with the lowest out-of-fold probability of their given label, N being
# confident learning's count of label errors (the off-diagonal of the confident joint,
# cleanlab.count.num_label_issues). The flagged rows are then exactly the head of the ranking. On 10,000
# online_shopping reviews with 10% uniform flips (`cat`, two samples) it flagged ~900 rows at precision
# 0.89-0.90, recall 0.80-0.81, where "both" flagged ~1,100 at precision 0.745: "both" sizes its set from the
# calibrated confident joint, which over-counted the errors by ~40% (benchmarks/results/label_default.md).
DEFAULT_FILTER = "low_self_confidence"


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray, *, filter_by: str = DEFAULT_FILTER) -> np.ndarray:
    """Indices of likely mislabelled examples, most suspicious first.

    labels: int array [n]; pred_probs: out-of-fold probabilities [n, k]. Confident learning as cleanlab
    implements it (`cleanlab.filter.find_label_issues`, `filter_by` one of FILTERS), ranked by
    self-confidence (the probability the model gives the given label).
    """
    if filter_by not in FILTERS:
        raise ConfigError(f"unknown filter_by {filter_by!r}", hint=f"one of {', '.join(FILTERS)}")
    from cleanlab.filter import find_label_issues as cl_find

    y, p = _check_arrays(labels, pred_probs)
    if not len(y):
        return np.zeros(0, dtype=np.int64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranked = cl_find(y, p, filter_by=filter_by, return_indices_ranked_by="self_confidence", n_jobs=1)
    for w in caught:  # e.g. "may not flag all label issues in class 3, it has too few examples"
        log.info("cleanlab: %s", w.message)
    return np.asarray(ranked, dtype=np.int64)


def label_quality_scores(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Quality in [0, 1] per example, low = likely wrong (`cleanlab.rank.get_label_quality_scores`,
    self-confidence: the out-of-fold probability of the given label)."""
    from cleanlab.rank import get_label_quality_scores

    y, p = _check_arrays(labels, pred_probs)
    if not len(y):
        return np.zeros(0)
    return np.asarray(get_label_quality_scores(y, p, method="self_confidence"), dtype=np.float64)


# -- near-duplicates with different labels -------------------------------------------------------------
def duplicate_key(text: str) -> str:
    """The text compared for near-duplicates: normalized (NFKC, lowercase), with punctuation, symbols and
    white space removed, so "好评！" and "好评 !!" are the same text."""
    return "".join(ch for ch in normalize(text) if not ch.isspace() and unicodedata.category(ch)[0] not in "PSZ")


def conflicting_duplicates(texts: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """Groups of indices whose texts are equal under `duplicate_key` but whose labels differ,
    in order of first appearance. Texts that are empty once stripped are not compared."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        key = duplicate_key(text)
        if key:
            groups[key].append(i)
    return [idx for idx in groups.values() if len(idx) > 1 and len({labels[i] for i in idx}) > 1]


# -- rows for review -----------------------------------------------------------------------------------
@dataclass
class LabelIssue:
    """One suspect row. `line` is the record's first line in `file` (CSV records may span lines)."""

    rank: int
    kind: str  # "label_error" (confident learning) or "conflicting_duplicate"
    source: str  # "path:line"
    file: str
    line: int
    text: str
    given_label: str
    suggested_label: str
    given_prob: float  # the model's (out-of-fold) probability of the given label
    suggested_prob: float  # ... and of the suggested one
    quality: float  # cleanlab label quality score, 0 (surely wrong) to 1
    duplicates: list[str] = field(default_factory=list)  # sources of the same text under other labels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_source(source: str) -> tuple[str, int]:
    path, _, line = source.rpartition(":")
    if not path or not line.isdigit():
        return source, 0
    return path, int(line)


def build_issues(
    examples: Sequence[Example], pred_probs: np.ndarray, classes: LabelSet, *, duplicates: bool = True, filter_by: str = DEFAULT_FILTER,
) -> list[LabelIssue]:
    """Confident-learning suspects (ranked, most suspicious first), then conflicting near-duplicates not
    already listed. A duplicate group's suggested label is its majority label (ties go to the label the
    model gives the most probability in total); members already carrying it are not listed."""
    labels = [e.label for e in examples]
    y = np.asarray(classes.encode(labels), dtype=np.int64)
    p = np.asarray(pred_probs, dtype=np.float64)
    quality = label_quality_scores(y, p)
    ranked = find_label_issues(y, p, filter_by=filter_by)
    groups = conflicting_duplicates([e.text for e in examples], labels) if duplicates else []
    group_of = {i: g for g in groups for i in g}

    def row(i: int, kind: str, suggested: int) -> LabelIssue:
        file, line = examples[i].file, examples[i].line
        others = [examples[j].source for j in group_of.get(i, []) if j != i and labels[j] != labels[i]]
        return LabelIssue(
            rank=0, kind=kind, source=examples[i].source, file=file, line=line, text=examples[i].text,
            given_label=labels[i], suggested_label=classes.labels[suggested],
            given_prob=round(float(p[i, y[i]]), 6), suggested_prob=round(float(p[i, suggested]), 6),
            quality=round(float(quality[i]), 6), duplicates=others,
        )

    out: list[LabelIssue] = []
    listed: set[int] = set()
    for i in ranked.tolist():
        scores = p[i].copy()
        scores[y[i]] = -1.0  # the suggestion is the best label other than the given one
        out.append(row(i, LABEL_ERROR, int(scores.argmax())))
        listed.add(i)
    for group in groups:
        counts = Counter(int(y[i]) for i in group)
        mass = p[group].sum(axis=0)
        majority = max(counts, key=lambda c: (counts[c], mass[c]))
        for i in group:
            if i not in listed and y[i] != majority:
                out.append(row(i, CONFLICTING_DUPLICATE, majority))
                listed.add(i)
    for rank, issue in enumerate(out, 1):
        issue.rank = rank
    return out


def summarize(issues: Sequence[LabelIssue], examples: Sequence[Example], top_pairs: int = 10) -> dict[str, Any]:
    """Counts for the report: issues per given class (and share of that class), kinds, and the class
    pairs most often confused (given -> suggested)."""
    per_class_n = Counter(e.label for e in examples)
    per_class = Counter(i.given_label for i in issues)
    pairs = Counter((i.given_label, i.suggested_label) for i in issues)
    return {
        "n_examples": len(examples),
        "n_issues": len(issues),
        "issue_share": round(len(issues) / max(len(examples), 1), 6),
        "kinds": dict(Counter(i.kind for i in issues)),
        "per_class": [
            {"label": label, "n": per_class_n[label], "issues": per_class[label], "share": round(per_class[label] / per_class_n[label], 6)}
            for label in sorted(per_class_n, key=lambda l: (-per_class[l], l))
        ],
        "confused_pairs": [{"given": g, "suggested": s, "count": c} for (g, s), c in pairs.most_common(top_pairs)],
    }


# -- the whole file (what `zhcls labels find` runs) ----------------------------------------------------
@dataclass
class FindResult:
    examples: list[Example]
    classes: LabelSet
    pred_probs: np.ndarray
    issues: list[LabelIssue]
    summary: dict[str, Any]


DEFAULT_OOF_MODEL = "tfidf.v1"
# Logistic regression at tfidf.v1's C without a dev set (10), solved by newton-cg: the same loss as lbfgs, and
# 5 fits on 8,000 reviews x 300,000 n-grams x 10 classes in ~15 CPU-seconds instead of ~300, at the same out-of-fold
# accuracy (`labels find` on 10,000 reviews: 33 CPU-seconds instead of 323).
DEFAULT_OOF_PARAMS: dict[str, Any] = {"loss": "log", "solver": "newton-cg"}


def oof_model(cfg: Any) -> tuple[str, Any]:
    """The model to cross-fit: the config's [model], or tfidf.v1 (DEFAULT_OOF_PARAMS) when the config has none.
    Confident learning is only as good as its out-of-fold probabilities: a default TextCNN (66% accurate on
    news titles) flagged 1,281 rows at precision 0.45 there; TF-IDF + LR is stronger on small data and fits
    in seconds."""
    from ..config import model_params

    if "model" not in cfg.model_fields_set:
        return DEFAULT_OOF_MODEL, dict(DEFAULT_OOF_PARAMS)
    return cfg.model.name, model_params(cfg)


def find_in_file(
    data: str,
    cfg: Any,  # RunConfig: [data] says how to read DATA, [model]/[training] what to cross-fit
    *,
    folds: int = 5,
    soft: str | None = None,
    duplicates: bool = True,
    filter_by: str = DEFAULT_FILTER,
    progress: FoldHook | None = None,
) -> FindResult:
    """Read DATA with the config's field mapping, get out-of-fold probabilities (k-fold cross-fitting of
    the configured model, or teacher soft labels from `soft`), and list the suspects."""
    from pathlib import Path

    from ..data.readers import ReadOptions, fingerprint, read_examples, require_labeled
    from .review import read_soft_labels

    options = ReadOptions.from_config(cfg.data)
    examples = read_examples(data, options)
    require_labeled(examples, str(data))
    labels = [e.label for e in examples]
    classes = LabelSet.from_labels(labels)
    if soft is not None:
        proba = read_soft_labels(soft, examples, classes)
        how: dict[str, Any] = {"soft_labels": str(soft)}
    else:
        name, params = oof_model(cfg)
        proba = out_of_fold_proba([e.text for e in examples], labels, name, params, cfg.training, folds, cfg.training.seed, progress)
        settings = params.model_dump(mode="json", exclude_defaults=True) if isinstance(params, BaseModel) else dict(params or {})
        how = {"model": name, "model_params": settings, "folds": folds, "seed": cfg.training.seed}
    issues = build_issues(examples, proba, classes, duplicates=duplicates, filter_by=filter_by)
    y = np.asarray(classes.encode(labels))
    file = examples[0].file
    summary = {
        "data": file,
        "data_sha256": fingerprint(Path(file)),
        "read_options": {"format": options.format, "text_field": options.text_field, "label_field": options.label_field, "tsv_order": options.tsv_order},
        **how,
        "filter_by": filter_by,
        "oof_accuracy": round(float((proba.argmax(1) == y).mean()), 6),
        **summarize(issues, examples),
    }
    return FindResult(examples, classes, proba, issues, summary)
