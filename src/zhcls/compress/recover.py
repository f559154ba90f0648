"""Recovery: a pruned model learns again from its unpruned parent (distillation), early-stopped on dev.

The transfer set and the soft targets are distillation's (distill/transfer.py: the train split, the
[[augment]] copies and unlabeled files of the config, the teacher's probabilities through the soft-target
cache); the loop is the Trainer's. What differs from `zhcls train` with [distill] is the start: the pruned
weights, not a fresh initialization, so a few epochs bring back what pruning cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..augment.pipeline import augment_for_run
from ..config import RunConfig
from ..data.example import Example
from ..errors import DataError
from ..models.base import Classifier, ProgressHook


def recover(model: Classifier, cfg: RunConfig, splits: dict[str, list[Example]], *, work_dir, progress: ProgressHook | None = None) -> dict[str, Any]:
    """Train `model` (pruned, fitted) in place on the transfer set of `cfg` ([distill] names the parent);
    its best dev evaluation's weights are kept. Returns what metrics.json records: the distillation info and
    the transfer-set loss before and after."""
    from ..distill.transfer import distill_set
    from ..models.trainer import Trainer, fingerprint_of
    from .run import state_digest

    train_ex, augment_info = augment_for_run(cfg, splits)
    copies = train_ex[len(splits["train"]) :] if cfg.distill is not None and cfg.distill.use_augment else []
    ds = distill_set(cfg, splits, augmented=copies)
    classes = model.labels_
    if tuple(ds.targets.classes) != tuple(classes.labels):
        raise DataError("the teacher's labels differ from the pruned model's", hint="compress from the run the model was pruned from")
    f = model.featurizer_  # type: ignore[attr-defined]
    seqs = f.encode_batch(ds.texts)
    y = np.asarray([-1 if label is None else classes.index(label) for label in ds.labels], dtype=np.int64)
    dev = None
    if splits.get("dev"):
        dev_y = np.asarray([classes.index(e.label) if e.label in classes else -1 for e in splits["dev"]], dtype=np.int64)
        dev = (f.encode_batch([e.text for e in splits["dev"]]), dev_y)
    net = model.net_  # type: ignore[attr-defined]
    before = transfer_loss(net, seqs, y, ds.targets, model.min_len)  # type: ignore[attr-defined]
    start = {k: v.detach().clone() for k, v in net.state_dict().items()}
    start_score = dev_score(net, dev, model.min_len, model.training.metric) if dev is not None else None  # type: ignore[attr-defined]
    fingerprint = fingerprint_of(
        "compress", model.name, model.params.model_dump(), model.training.model_dump(), ds.texts, ds.labels, ds.targets.digest(), state_digest(net)
    )
    result = Trainer(model.training, work_dir, progress).fit(
        net, seqs, y, n_classes=len(classes), dev=dev, min_len=model.min_len, fingerprint=fingerprint,  # type: ignore[attr-defined]
        lr=model.training.lr or model.default_lr, soft=ds.targets, **model.trainer_options(),  # type: ignore[attr-defined]
    )
    # The Trainer keeps its best evaluation, but its first one comes after an epoch: when no epoch beat the
    # pruned weights on dev, those are the best model.
    kept = "recovered"
    if start_score is not None and result.best_score is not None and start_score > result.best_score:
        result.best_state, kept = start, "pruned"
    net.load_state_dict(result.best_state)
    net.eval()
    model.fit_result_ = result  # type: ignore[attr-defined]
    after = transfer_loss(net, seqs, y, ds.targets, model.min_len)  # type: ignore[attr-defined]
    return {
        "distill": ds.info, "augment": augment_info, "n_transfer": len(ds.texts), "kept": kept,
        "dev_start": start_score, "dev_best": result.best_score, "loss_before": round(before, 6), "loss_after": round(after, 6),
    }


def dev_score(net, dev, min_len: int, metric: str) -> float:
    from ..eval.metrics import score_from_proba
    from ..eval.probs import softmax
    from ..models.trainer import predict_logits

    return score_from_proba(softmax(predict_logits(net, dev[0], min_len=min_len)), np.asarray(dev[1]), metric)


def transfer_loss(net, seqs, y: np.ndarray, targets, min_len: int) -> float:
    """The distillation loss recovery minimizes, over the whole transfer set, dropout off."""
    import torch

    from ..models.losses import distill_loss
    from ..models.trainer import predict_logits

    logits = torch.from_numpy(predict_logits(net, seqs, min_len=min_len))
    target = torch.from_numpy(targets.target_array())
    loss = distill_loss(logits, torch.as_tensor(y), target, temperature=targets.temperature, alpha=targets.alpha, kind=targets.loss)
    return float(loss)


def recover_spans(model: Any, cfg: RunConfig, splits: dict[str, list[Example]], *, work_dir, progress: ProgressHook | None = None) -> dict[str, Any]:
    """recover() for a pruned tagger.v1 or joint.v1: tagging distillation from the parent (its per-character
    tag probabilities over train, [[augment]] copies and unlabeled text; training/spans.py), starting from
    the pruned weights, with [[datasets]] as in training. The best dev evaluation's weights are kept, the
    pruned ones when no evaluation beat them."""
    from ..training.spans import extra_datasets, fit_span_distilled

    train_ex, augment_info = augment_for_run(cfg, splits)
    dev = splits.get("dev")
    dev_all = [e for e in dev or [] if e.text]
    start = {k: v.detach().clone() for k, v in model.module_.state_dict().items()}
    start_score = model._dev_scores(dev_all)["score"] if dev_all else None
    info = fit_span_distilled(model, cfg, splits, train_ex, dev, extra_datasets(cfg), progress=progress, work_dir=work_dir, warm_start=True)
    result = model.fit_result_
    kept = "recovered"
    if start_score is not None and result.best_score is not None and start_score > result.best_score:
        model.module_.load_state_dict(start)
        result.best_state, kept = start, "pruned"
    model.module_.eval()
    n = info["transfer"]
    return {"distill": info, "augment": augment_info, "n_transfer": n["labeled"] + n["augmented"] + n["unlabeled"], "kept": kept,
            "dev_start": start_score, "dev_best": result.best_score}
