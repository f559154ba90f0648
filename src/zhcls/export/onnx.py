"""export_bundle: a trained model -> a self-contained, verified bundle that serves without torch.

The ONNX graph covers ids -> logits only; normalization and tokenization stay in Python and are the
very code the model trained with (tokenizer.json), so training and serving cannot disagree. Export
refuses to finish unless the bundle's predictions match the trained model's (the parity gate).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from .. import __version__
from ..artifact import atomic_dir, read_json, sha256_file, write_json
from ..data.example import Example
from ..errors import ExportError, ZhclsError
from ..eval.metrics import classification_metrics
from ..models.base import Classifier
from ..models.dirs import ModelDir
from ..serve.bundle import FORMAT, MANIFEST, SCHEMA_VERSION, BundleError, check_finite_numbers, seal_manifest
from ..serve.predictor import Predictor

log = logging.getLogger(__name__)

PROB_TOLERANCE = 1e-4
MIN_AGREEMENT = 0.999
INT8_OPS = ("Gather",)  # measured: quantizing the final MatMul/Gemm too adds DynamicQuantizeLinear + MatMulInteger and is slower, for no size gain

__all__ = ["ExportError", "export_bundle", "check_parity", "measure_latency", "spread"]


def export_bundle(
    model_path: str | Path,
    out: str | Path,
    *,
    quantize: Literal["none", "int8"] = "none",
    data: Sequence[Example] | None = None,
    latency_texts: int = 500,
) -> dict[str, Any]:
    """Write the bundle at `out` and return its manifest. `data`: parity texts (labels optional);
    by default the dev set the run was trained with."""
    model_dir = ModelDir.find(model_path)
    model = model_dir.load()
    examples = list(data) if data is not None else _dev_examples(model_dir)
    if not examples:
        raise ExportError(f"{model_dir.path}: no texts to check the export against", hint="pass --data FILE with texts like the ones you will serve")
    texts = [e.text for e in examples]
    meta = model_dir.meta()
    with atomic_dir(out) as tmp:
        manifest = write_part(model, tmp, meta)
        if getattr(model, "tags_spans", False):  # tagger.v1, joint.v1: a gate per head (export/tagging.py)
            from .tagging import span_parity

            fp32 = Predictor(tmp, verify=False)
            parity = span_parity(model, fp32, texts, PROB_TOLERANCE, MIN_AGREEMENT)
            manifest["parity"] = {"fp32": parity, "n_texts": len(texts)}
            if quantize == "int8":
                from .tagging import span_int8_change

                reference = fp32._tagger.run(texts, len(fp32.labels))
                _quantize_graphs(tmp)
                manifest["precision"] = "int8"
                manifest["parity"]["int8"] = span_int8_change(fp32, reference, Predictor(tmp, verify=False), examples)
            return _finish(tmp, manifest, spread(texts, latency_texts))
        reference = model.predict_proba(texts)
        parity = check_parity(reference, Predictor(tmp, verify=False).predict_proba(texts))
        manifest["parity"] = {"fp32": parity, "n_texts": len(texts)}
        if parity["max_abs_diff"] > PROB_TOLERANCE or parity["label_agreement"] < MIN_AGREEMENT:
            raise ExportError(
                f"exported model disagrees with the trained one: max |p_onnx - p_torch| = {parity['max_abs_diff']:.2e} "
                f"(limit {PROB_TOLERANCE:g}), labels agree on {parity['label_agreement']:.4%} (limit {MIN_AGREEMENT:.1%})",
                hint="nothing was written; report this with the model's config",
            )
        if quantize == "int8":
            manifest["precision"] = "int8"
            manifest["parity"]["int8"] = _quantize(tmp, model, examples, reference)
        _finish(tmp, manifest, spread(texts, latency_texts))
    return manifest


def _finish(tmp: Path, manifest: dict[str, Any], latency_texts: Sequence[str]) -> dict[str, Any]:
    """Latency and sizes into the manifest, written last."""
    _write_manifest(tmp, manifest)
    manifest["latency"] = measure_latency(Predictor(tmp, verify=False), latency_texts)
    manifest["size_bytes"] = {name: (tmp / name).stat().st_size for name in manifest["files"]}
    manifest["total_bytes"] = sum(manifest["size_bytes"].values())
    _write_manifest(tmp, manifest)
    return manifest


def check_parity(reference: np.ndarray, exported: np.ndarray) -> dict[str, float]:
    return {
        "max_abs_diff": float(np.abs(reference - exported).max()),
        "label_agreement": float((reference.argmax(1) == exported.argmax(1)).mean()),
    }


def spread(items: Sequence[Any], n: int) -> list[Any]:
    """At most `n` of `items`, evenly spaced from the first to the last: latency texts that stand for the whole
    split. A file ordered by label (online_shopping's is, by category) has one label's texts first, and those
    can be twice as long as the average."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, max(n, 1)).round().astype(int)]


def measure_latency(predictor: Predictor, texts: Sequence[str], warmup: int = 50) -> dict[str, float]:
    """Single-text latency, tokenization included (and decoding, for tagging bundles), on one thread: what
    one request costs."""
    run = predictor.predict_scored if getattr(predictor, "tags_spans", False) else predictor.predict_proba
    for text in texts[:warmup]:
        run([text])
    times = []
    for text in texts:
        start = time.perf_counter()
        run([text])
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4), "n": len(texts), "threads": 1}


def write_part(model: Classifier, out: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model's serving files (its own `export_serving`) and a manifest over them; a composite model's
    parts become sub-bundles the same way. Returns the manifest."""
    if meta is None:
        meta = model._meta_json()
    spec = model.export_serving(out, lambda part, sub: write_part(part, sub))
    manifest = {**_base_manifest(model, meta, spec["backend"]), "input": spec["input"]}
    _write_manifest(out, manifest)
    return manifest


def _quantize(tmp: Path, model: Classifier, examples: Sequence[Example], reference: np.ndarray) -> dict[str, Any]:
    """Dynamic int8 weights (onnxruntime) for the ops in INT8_OPS, the tables and embeddings; records how much the
    predictions move. Convolutions stay fp32 (onnxruntime's ConvInteger is slower on CPU than its fp32 Conv),
    and so does the small output layer (its dynamic int8 MatMul costs more than it saves). Quantizing the
    tables (Gather) is what shrinks a bundle about 4x."""
    if not any(tmp.rglob("model.onnx")) and not any(tmp.rglob("linear.safetensors")):
        raise ExportError(f"{model.name} bundles have no weights to quantize", hint="export without --quantize")
    for linear in sorted(tmp.rglob("linear.safetensors")):  # one per TF-IDF model or member
        _quantize_linear(linear)
        if linear.parent != tmp:
            _write_manifest(linear.parent, {**read_json(linear.parent / MANIFEST), "precision": "int8"})
    _quantize_graphs(tmp)
    proba = Predictor(tmp, verify=False).predict_proba([e.text for e in examples])
    out: dict[str, Any] = {**check_parity(reference, proba)}
    labeled = [i for i, e in enumerate(examples) if e.label is not None]
    if labeled:
        labels = model.labels_.labels
        truth = [examples[i].label for i in labeled]
        acc = lambda p: float(np.mean([labels[j] == t for j, t in zip(p[labeled].argmax(1), truth)]))  # noqa: E731
        f1 = lambda p: classification_metrics(truth, [labels[j] for j in p[labeled].argmax(1)], labels)["macro_f1"]  # noqa: E731
        out.update(accuracy_fp32=acc(reference), accuracy_int8=acc(proba), macro_f1_fp32=f1(reference), macro_f1_int8=f1(proba))
        out["accuracy_change"] = out["accuracy_int8"] - out["accuracy_fp32"]
        out["macro_f1_change"] = out["macro_f1_int8"] - out["macro_f1_fp32"]
    return out


def _quantize_graphs(tmp: Path) -> None:
    """Every ONNX graph of the bundle at `tmp` (an ensemble has one per neural member) with int8 weights for the
    ops in INT8_OPS, and the manifests rewritten over the new files."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for graph in sorted(tmp.rglob("model.onnx")):
        fp32 = graph.with_name("model.fp32.onnx")
        graph.rename(fp32)
        with _quiet_onnxruntime():
            quantize_dynamic(str(fp32), str(graph), op_types_to_quantize=list(INT8_OPS), weight_type=QuantType.QInt8)
        fp32.unlink()
        if graph.parent != tmp:  # a member's own manifest lists its files too
            _write_manifest(graph.parent, {**read_json(graph.parent / MANIFEST), "precision": "int8"})
    _write_manifest(tmp, read_json(tmp / MANIFEST))


LINEAR_INT8_BLOCK = 64  # n-gram weights per int8 scale


def _quantize_linear(path: Path) -> None:
    """A TF-IDF model's weights [classes, n-grams] as int8, one scale per block of 64 weights of a class
    (symmetric, the block's largest |weight| at 127). These weights are nearly all of such a bundle: 119
    classes x 300,000 n-grams are 143 MB in float32, 38 MB so. One scale per class was too coarse: the
    weights are heavy-tailed, and rounding the small ones against the class's largest moved 1.4% of TNEWS
    dev predictions (dev -0.36, test -0.15 points); per block of 64 the dev accuracy is unchanged (test
    -0.05). The predictor turns them back into float32 when it loads them: the latency is the fp32 one."""
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(path))
    coef = arrays.pop("coef").astype(np.float32)
    k, v = coef.shape
    blocks = np.pad(coef, ((0, 0), (0, (-v) % LINEAR_INT8_BLOCK))).reshape(k, -1, LINEAR_INT8_BLOCK)
    scale = np.abs(blocks).max(axis=2) / 127.0
    scale[scale == 0] = 1.0
    arrays["coef_int8"] = np.clip(np.rint(blocks / scale[:, :, None]), -127, 127).astype(np.int8).reshape(k, -1)[:, :v].copy()
    arrays["coef_scale"] = scale.astype(np.float32)
    arrays["coef_block"] = np.asarray([LINEAR_INT8_BLOCK], dtype=np.int64)
    save_file(arrays, str(path))  # inside the export's temporary directory: the bundle appears whole or not at all


def _quiet_onnxruntime():
    """quantize_dynamic logs a warning to run its pre-processing first; on these small graphs it changes
    nothing measurable, and the parity gate checks the result."""
    import contextlib

    @contextlib.contextmanager
    def quiet():
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)

    return quiet()


def _base_manifest(model: Classifier, meta: dict[str, Any], backend: str) -> dict[str, Any]:
    name, _, version = model.name.rpartition(".")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "model": model.name,
        "model_name": name,
        "model_version": version,
        "zhcls_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "backend": backend,
        "precision": "fp32",
        "labels": list(model.labels_.labels),
        "metrics": meta.get("metrics", {}),
        "data": meta.get("data", {}),
        "params": meta.get("params", {}),
    }
    return manifest


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    # every file below the bundle, sub-bundles included, so one check at load covers all of them
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.relative_to(path).as_posix() != MANIFEST)
    manifest["files"] = {p.relative_to(path).as_posix(): sha256_file(p) for p in files}
    try:  # a NaN parity compares false against every limit: refuse it here, where every manifest is written
        check_finite_numbers(manifest)
    except BundleError as exc:
        raise ExportError(exc.message, hint=exc.hint) from None
    write_json(path / MANIFEST, seal_manifest(manifest))  # the digest last, over everything above


def _dev_examples(model_dir: ModelDir) -> list[Example]:
    """The dev split recorded in the model's config, read the way training read it."""
    try:
        return model_dir.split("dev") or []
    except ZhclsError as exc:
        raise ExportError(f"cannot read the run's dev set to check the export: {exc.message}", hint="pass --data FILE instead") from None


def manifest_json(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, ensure_ascii=False, indent=2)
