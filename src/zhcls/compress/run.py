"""`compress(run, out, width=...)`: a trained run -> a smaller, faster run, recovered by distillation.

    prune (the model's own `prune` hook) -> recover (distill from the parent on its train data,
    early-stopped on dev) -> evaluate -> save a run directory -> export parent and child as bundles

out/
  config.toml      the pruned model's config: the parent's, with the smaller [model] and a [distill]
                   section naming the parent as teacher (what recovery trained on)
  metrics.json     dev/test metrics like any run, and `compress`: the parent, what was pruned, and
                   accuracy, size and latency before and after
  log.jsonl        one line per dev evaluation during recovery
  model-best/      the recovered model (or the pruned one, when recovery never beat it on dev)
  model-last/      the weights recovery ended with
  bundle/          the compressed run exported (latency and size in its manifest)
  compress/        the parent's bundle, exported in the same process, for the before/after figures

A rerun of the same command after a kill resumes recovery from its checkpoint (the Trainer's), and the
pruning, a pure function of the parent and its train data, is the same again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ..artifact import read_json, write_json, write_text
from ..config import BuildConfig, RunConfig, config_from_dict, dump_config, load_config, resolved_dict
from ..data.example import Example
from ..errors import ConfigError, RunError, ZhclsError
from ..eval.metrics import headline
from ..models.base import Classifier, ProgressHook, load_model
from ..training.run import describe_split, evaluate_examples, git_commit, load_splits

log = logging.getLogger(__name__)

WORK = "compress"  # out/compress/: the parent's bundle, and the search's candidates


class CompressError(ZhclsError):
    """The run cannot be compressed as asked."""


@dataclass
class CompressResult:
    run_dir: Path
    best_dir: Path
    metrics: dict[str, Any]
    bundle: Path | None = None


def parse_width(text: str | float) -> float:
    """"2/3", "0.5", 1 or 0 -> a float in [0, 1] (0: a textcnn.v1 or bigru.v1 with an n-gram bag keeps the bag alone;
    the model's `prune` refuses it otherwise)."""
    try:
        value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"width {text!r} is not a number or fraction", hint="e.g. --width 2/3 or --width 0.5") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"width {text} is outside [0, 1]", hint="1 keeps everything, 1/2 half of the filters, units or heads")
    return value


def width_label(width: float) -> str:
    """2/3 for 0.666..., 1 for 1.0: the fraction a user would type."""
    f = Fraction(width).limit_denominator(16)
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def load_parent(run: str | Path) -> tuple[Path, RunConfig, Classifier]:
    """The run to compress, its config and its best model; a model without a `prune` hook is refused."""
    run = Path(run)
    if not (run / "metrics.json").is_file() or not (run / "config.toml").is_file():
        raise CompressError(f"{run}: not a finished run (no metrics.json and config.toml)", hint="pass the directory `zhcls train -o RUN` wrote")
    cfg = load_config(run / "config.toml")
    model = load_model(run)
    if not callable(getattr(model, "prune", None)):
        raise CompressError(
            f"{model.name} models cannot be pruned: compression needs a neural model with filters, units, heads or embedding rows to remove",
            hint="compress a textcnn.v1, bigru.v1, fasttext.v1 or transformer.v1 run; for a smaller tfidf.v1, lower model.max_features and train again",
        )
    return run, cfg, model


def parent_splits(cfg: RunConfig, model: Classifier) -> dict[str, list[Example]]:
    """The parent's data as its training read it: labels, or entities too for tagger.v1/joint.v1."""
    if getattr(model, "tags_spans", False):
        from ..training.spans import load_span_splits

        return load_span_splits(cfg)
    return load_splits(cfg)


def prune_for(model: Classifier, width: float, max_vocab: int | None, train: Sequence[Example], vocab_by: str = "frequency") -> Classifier:
    """The model's own pruning, ranked on the train split; the pruned copy keeps the parent's training settings."""
    texts, labels = [e.text for e in train], [e.label for e in train]
    return model.prune(width, max_vocab, texts=texts, labels=labels, vocab_by=vocab_by)  # type: ignore[attr-defined]


def sample_train(splits: dict[str, list[Example]], max_train: int | None, seed: int) -> dict[str, list[Example]]:
    """`splits` with at most `max_train` train examples, a seeded sample kept in file order: what the ranking
    of what to prune, the vocabulary counts and recovery see when the train split is too large to recover on."""
    if max_train is not None and max_train < 1:
        raise ConfigError(f"max_train {max_train} is below 1", hint="leave --max-train out to use the whole train split")
    train = splits["train"]
    if max_train is None or len(train) <= max_train:
        return splits
    keep = np.sort(np.random.default_rng(seed).choice(len(train), size=max_train, replace=False))
    return {**splits, "train": [train[i] for i in keep]}


def recovery_config(
    cfg: RunConfig, parent: Path, pruned: Classifier, epochs: int, unlabeled: Sequence[str | Path] = (), cache_dir: str | Path | None = None,
    max_unlabeled: int | None = None,
) -> RunConfig:
    """The parent's config with the pruned [model] and a [distill] section whose teacher is the parent: its
    labeled, augmented and unlabeled transfer text, temperature and alpha carry over, its teacher does not.
    `unlabeled` files join the transfer set, `max_unlabeled` caps it (a seeded sample)."""
    raw = resolved_dict(cfg)
    distill = {k: v for k, v in (raw.get("distill") or {}).items() if k not in ("teacher", "soft_targets", "teacher_weights")}
    distill["teacher"] = [str(parent.resolve())]
    distill["unlabeled"] = list(distill.get("unlabeled", [])) + [str(u) for u in unlabeled]
    if max_unlabeled is not None:
        distill["max_unlabeled"] = max_unlabeled
    if cache_dir is not None and not distill.get("cache_dir"):
        distill["cache_dir"] = str(cache_dir)
    model = {"name": pruned.name, **pruned.params.model_dump(mode="json", exclude_none=True)}
    training = {**raw["training"], "epochs": max(1, epochs)}
    if pruned.name != cfg.model.name:
        # Width 0: a new kind of model learns the parent, as a build's student does. The parent's learning rate
        # was its own model's (a TextCNN's 1e-3 leaves a fastText bag far from converged), and a few epochs of
        # "recovery" are not enough for a model that starts mostly untrained: the new model's own learning
        # rate, and at least the students' epoch budget, early stopping ending it.
        training.pop("lr", None)
        training["epochs"] = max(training["epochs"], BuildConfig.model_fields["epochs"].default)
    return config_from_dict({**raw, "model": model, "training": training, "distill": distill}, source=f"{parent}/config.toml (compressed)")


def compress(
    run: str | Path,
    out: str | Path,
    *,
    width: float,
    max_vocab: int | None = None,
    vocab_by: Literal["frequency", "norm"] = "frequency",
    recover_epochs: int = 10,
    unlabeled: Sequence[str | Path] = (),
    max_unlabeled: int | None = None,
    max_train: int | None = None,
    quantize: Literal["none", "int8"] = "none",
    export: bool = True,
    force: bool = False,
    progress: ProgressHook | None = None,
) -> CompressResult:
    """Prune `run` to `width` (and `max_vocab` tokens), recover it by distillation from `run` for
    `recover_epochs` epochs (0: none), and write the compressed run to `out`. `max_train`: rank and recover
    on at most that many train examples (a sample seeded by the run's training.seed)."""
    out = Path(out)
    _check_out(out, force)
    parent, cfg, model = load_parent(run)
    splits = sample_train(parent_splits(cfg, model), max_train, cfg.training.seed)
    pruned = prune_for(model, width, max_vocab, splits["train"], vocab_by)
    return finish(parent, cfg, splits, model, pruned, out, width=width, max_vocab=max_vocab, vocab_by=vocab_by, recover_epochs=recover_epochs,
                  unlabeled=unlabeled, max_unlabeled=max_unlabeled, max_train=max_train, quantize=quantize, export=export, progress=progress)


def finish(
    parent: Path, cfg: RunConfig, splits: dict[str, list[Example]], model: Classifier, pruned: Classifier, out: Path, *,
    width: float, max_vocab: int | None, vocab_by: str, recover_epochs: int, unlabeled: Sequence[str | Path] = (), max_unlabeled: int | None = None,
    max_train: int | None = None, quantize: str = "none", export: bool = True, progress: ProgressHook | None = None, cache_dir: str | Path | None = None,
) -> CompressResult:
    """Recover `pruned` and write the run (compress() and the budget search share this)."""
    rcfg = recovery_config(cfg, parent, pruned, recover_epochs, unlabeled, cache_dir if cache_dir is not None else out / WORK / "soft-targets", max_unlabeled)
    pruned.training = rcfg.training
    config_text = dump_config(rcfg)
    previous = out / "config.toml"
    if previous.is_file() and previous.read_text(encoding="utf-8") != config_text:
        raise RunError(f"{out}: holds an unfinished compression of another run or width", hint="rerun the same command to resume it, or pass --force")
    write_text(out / "config.toml", config_text)
    dev_ex, test_ex = splits.get("dev"), splits.get("test")
    parent_metrics = read_json(parent / "metrics.json")
    info: dict[str, Any] = {
        "parent": str(parent), "parent_model": model.name, "width": round(width, 6), "width_label": width_label(width),
        "max_vocab": max_vocab, "vocab_by": vocab_by, "recover_epochs": recover_epochs, "max_train": max_train, "n_train_used": len(splits["train"]),
        "pruned": shape_summary(model, pruned),
        "before": {s: headline(parent_metrics[s]) for s in ("dev", "test") if s in parent_metrics},
    }
    if dev_ex:
        info["pruned_only"] = {"dev": headline(evaluate_examples(pruned, dev_ex))}

    started = time.perf_counter()
    metrics: dict[str, Any] = {"model": pruned.name, "git_commit": git_commit()}
    if recover_epochs > 0:
        from .recover import recover, recover_spans

        rec = (recover_spans if getattr(pruned, "tags_spans", False) else recover)(pruned, rcfg, splits, work_dir=out, progress=progress)
        metrics["distill"] = rec.pop("distill")
        if rec.get("augment") is None:
            rec.pop("augment", None)
        info["recovery"] = rec
        metrics["n_train"] = rec["n_transfer"]
        report = pruned.fit_report()
        if report:
            metrics["fit"] = report
            metrics.update({k: report[k] for k in ("best_step", "steps", "resumed_from") if k in report})
        history = pruned.fit_history()
        if history:
            write_text(out / "log.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in history))
    else:
        metrics["n_train"] = len(splits["train"])
    metrics["train_seconds"] = round(time.perf_counter() - started, 3)
    for name, examples in (("dev", dev_ex), ("test", test_ex)):
        if examples:
            metrics[name] = evaluate_examples(pruned, examples)
    info["after"] = {s: headline(metrics[s]) for s in ("dev", "test") if s in metrics}
    pruned.meta = {
        "metrics": {name: headline(metrics[name]) for name in ("dev", "test") if name in metrics},
        "data": {name: describe_split(cfg, name, ex) for name, ex in splits.items()},
    }
    best_dir = pruned.save(out / "model-best", config_toml=config_text)
    last = pruned.last_model() if hasattr(pruned, "last_model") and getattr(pruned, "fit_result_", None) is not None else pruned
    last.meta = pruned.meta
    last.save(out / "model-last", config_toml=config_text)

    bundle = None
    if export:
        from ..export.onnx import export_bundle

        parent_bundle = export_bundle(parent, out / WORK / "parent-bundle", quantize=quantize)  # type: ignore[arg-type]
        child_bundle = export_bundle(out, out / "bundle", quantize=quantize)  # type: ignore[arg-type]
        info["before"]["bundle"], info["after"]["bundle"] = bundle_stats(parent_bundle), bundle_stats(child_bundle)
        info["ratios"] = {
            "size": round(child_bundle["total_bytes"] / parent_bundle["total_bytes"], 4),
            "p50": round(child_bundle["latency"]["p50_ms"] / parent_bundle["latency"]["p50_ms"], 4),
        }
        bundle = out / "bundle"
    info["change"] = {s: {k: round(info["after"][s][k] - info["before"][s][k], 6) for k in ("accuracy", "macro_f1", "entity_f1")
                          if k in info["after"][s] and k in info["before"][s]}
                      for s in ("dev", "test") if s in info["after"] and s in info["before"]}
    metrics["compress"] = info
    write_json(out / "metrics.json", metrics)  # last: a run with metrics.json is complete
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    return CompressResult(out, best_dir, metrics, bundle)


def bundle_stats(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "p50_ms": manifest["latency"]["p50_ms"], "p99_ms": manifest["latency"]["p99_ms"], "total_bytes": manifest["total_bytes"],
        "precision": manifest.get("precision", "fp32"), "graph": manifest.get("input", {}).get("graph"),
    }


def shape_summary(before: Classifier, after: Classifier) -> dict[str, Any]:
    """The sizes that changed: params (filters, hidden units), vocabulary, n-gram rows, heads, FFN neurons,
    and the parameter count."""
    out: dict[str, Any] = {}
    if before.name != after.name:  # width 0: a hybrid's n-gram bag alone, a fasttext.v1
        out["model"] = [before.name, after.name]
    a, b = before.params.model_dump(), after.params.model_dump()
    for key in ("num_filters", "hidden_size", "gram_dim"):
        if key in a and a[key] != b.get(key, 0):
            out[key] = [a[key], b.get(key, 0)]
    if vocab_size(before) is not None:
        out["vocab"] = [vocab_size(before), vocab_size(after)]
    fa, fb = getattr(before, "featurizer_", None), getattr(after, "featurizer_", None)
    if getattr(fa, "buckets", 0) and hasattr(fa, "bucket_rows"):
        out["ngram_rows"] = [fa.bucket_rows, fb.bucket_rows]  # type: ignore[union-attr]
    count = lambda m: int(sum(p.numel() for p in torch_module(m).parameters()))  # noqa: E731
    out["parameters"] = [count(before), count(after)]
    if not hasattr(after, "net_"):
        return out
    hf = getattr(after.net_, "model", None)  # type: ignore[attr-defined]
    if hf is not None:
        from ..models.transformer import encoder_layers

        heads = lambda m: [layer.attention.self.num_attention_heads for layer in encoder_layers(m)]  # noqa: E731
        ffn = lambda m: [layer.intermediate.dense.out_features for layer in encoder_layers(m)]  # noqa: E731
        out["heads"], out["ffn"] = [heads(before.net_.model), heads(hf)], [ffn(before.net_.model), ffn(hf)]  # type: ignore[attr-defined]
    return out


def torch_module(model: Classifier) -> Any:
    """The model's torch module: a classifier's net, a tagger's net and CRF."""
    return model.module_ if hasattr(model, "module_") else model.net_  # type: ignore[attr-defined]


def vocab_size(model: Classifier) -> int | None:
    """Tokens with an embedding row of their own: the featurizer's vocabulary, or a transformer's embedding rows."""
    f = getattr(model, "featurizer_", None) or getattr(model, "features_", None)
    if hasattr(f, "vocab"):
        return len(f.vocab)  # type: ignore[union-attr]
    hf = getattr(getattr(model, "net_", None), "model", None)
    return int(hf.get_input_embeddings().num_embeddings) if hf is not None else None


def state_digest(net: Any) -> str:
    """sha256 of a module's weights: recovery's checkpoint belongs to this very pruned model."""
    h = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
    return h.hexdigest()


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: is a file; a run is a directory", hint="choose a new output directory")
    if force and out.exists():
        shutil.rmtree(out)
    if (out / "metrics.json").is_file():
        raise RunError(f"{out}: this compressed run is already complete", hint="evaluate or export it, or pass --force to compress again")
    if out.exists() and any(p.name != WORK for p in out.iterdir()) and not (out / "config.toml").is_file():
        raise RunError(f"{out}: exists and is not a zhcls run", hint="choose a new output directory")
