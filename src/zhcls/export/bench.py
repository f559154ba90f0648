"""bench: the latency and throughput of a bundle, its other precision and the PyTorch model it came from.

One run measures every variant on the same texts, the same machine and the same text pipeline:

- single-text latency at 1 thread, tokenization included (what one request costs): p50, p99, mean;
- throughput in texts/s at batch 1, 32 and 256 with 1 and 2 threads, tokenization included;
- tokenization alone (normalize + tokenize + ids), so the share of the model call is visible;
- the machine's measured fp32 matrix-multiply peak (onnxruntime MatMul, 1 and 2 threads) and the model's FLOPs
  per text, so throughput can be read as a fraction of what the cores can do.

Variants: the bundle itself; with `run` (the run or model directory the bundle was exported from) also the
other precision (exported on the fly into a temporary directory) and PyTorch eager of the same weights,
run fairly: `torch.set_num_threads(threads)`, `torch.inference_mode()`, the bundle's featurizer and padding.
Ratios are speed-ups over PyTorch eager (> 1: faster than PyTorch), computed from the measured values.
"""

from __future__ import annotations

import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..artifact import read_json
from ..data.example import Example
from ..errors import ZhclsError
from ..eval.probs import softmax
from ..serve.bundle import load_manifest
from ..serve.predictor import Predictor
from ..text.featurizer import Featurizer, pad

log = logging.getLogger(__name__)

BATCH_SIZES = (1, 32, 256)
THREADS = (1, 2)
TORCH = "torch_eager"
VARIANT_TITLES = {"onnx_fp32": "ONNX fp32", "onnx_int8": "ONNX int8", TORCH: "PyTorch eager", "linear": "numpy linear"}


class BenchError(ZhclsError):
    """The benchmark cannot run with what it was given."""


@dataclass(frozen=True)
class BenchSettings:
    latency_texts: int = 1000  # texts timed one by one (each once per round)
    throughput_texts: int = 2048  # texts per throughput pass, cut into batches
    warmup: int = 50  # untimed calls before each measurement
    rounds: int = 3  # throughput passes (the median is reported); latency rounds alternate the variant order
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    threads: tuple[int, ...] = THREADS


BenchProgress = Callable[[str, int, int], None]  # (what is measured next, measurements done, total)


@dataclass
class Variant:
    """One way to turn texts into probabilities; `make(threads)` gives a `predict_proba` for that thread count."""

    name: str
    source: str
    make: Callable[[int], Callable[[Sequence[str]], np.ndarray]]
    info: dict[str, Any] = field(default_factory=dict)


# -- texts ---------------------------------------------------------------------------------------------
def bench_texts(bundle: str | Path, run: str | Path | None = None, data: Sequence[Example] | None = None) -> list[Example]:
    """The texts to time: `data` if given, else the run's dev split read with the run's [data] settings,
    else the dev file recorded in the bundle's manifest."""
    if data is not None:
        examples = list(data)
    elif run is not None and (examples := _run_dev_examples(run)):
        pass
    else:
        examples = _manifest_dev_examples(Path(bundle))
    examples = [e for e in examples if e.text.strip()]
    if not examples:
        raise BenchError("no texts to benchmark on", hint="pass --data FILE with texts like the ones you will serve")
    return examples


def _run_dev_examples(run: str | Path) -> list[Example]:
    from ..models.dirs import ModelDir

    try:
        return ModelDir.find(run).split("dev") or []
    except ZhclsError as exc:
        log.warning("cannot read the run's dev set (%s); trying the bundle's manifest", exc.message)
        return []


def _manifest_dev_examples(bundle: Path) -> list[Example]:
    from ..data.readers import read_examples

    manifest = load_manifest(bundle, verify=False)
    path = (manifest.get("data") or {}).get("dev", {}).get("path")
    if not path:
        raise BenchError(
            f"{bundle}: the manifest records no dev set to take texts from", hint="pass --data FILE (any format `zhcls predict` reads)"
        )
    if not Path(path).is_file():
        raise BenchError(
            f"{bundle}: the dev set recorded in the manifest, {path}, is not there",
            hint="pass --data FILE, or run from the directory the model was trained in",
        )
    return read_examples(path)


# -- variants ------------------------------------------------------------------------------------------
def _bundle_variant(path: Path) -> Variant:
    manifest = load_manifest(path)
    name = "linear" if manifest["backend"] == "linear" else f"onnx_{manifest['precision']}"

    def make(threads: int) -> Callable[[Sequence[str]], np.ndarray]:
        return Predictor(path, threads=threads, verify=False).predict_proba

    return Variant(name, str(path), make, {"precision": manifest.get("precision"), "backend": manifest["backend"]})


class TorchEager:
    """PyTorch inference of a trained model, with the bundle's featurizer and padding, in inference mode."""

    def __init__(self, model: Any, featurizer: Featurizer, threads: int) -> None:
        self.net = model.net_.eval()
        self.featurizer = featurizer
        self.min_len = int(model.min_len)
        self.threads = threads

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        f = self.featurizer
        ids, lengths = pad([f.encode_tokens(f.full_tokens(t)[: f.max_len]) for t in texts], self.min_len)
        if torch.get_num_threads() != self.threads:  # another variant's measurement may have changed it
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
        return softmax(logits.astype(np.float64)).astype(np.float32)


def _torch_variant(run: str | Path, featurizer: Featurizer) -> Variant:
    from ..models.dirs import ModelDir

    model_dir = ModelDir.find(run)
    model = model_dir.load()
    if not hasattr(model, "net_"):
        raise BenchError(f"{model_dir.path}: {model.name} has no PyTorch network to compare with", hint="leave out --run")
    return Variant(TORCH, str(model_dir.path), lambda threads: TorchEager(model, featurizer, threads).predict_proba, {"model": model.name})


def _check_same_model(bundle: Path, manifest: dict[str, Any], run: str | Path) -> None:
    from ..models.dirs import ModelDir

    model_dir = ModelDir.find(run).path
    meta = read_json(model_dir / "zhcls.json")
    if meta.get("model") != manifest["model"] or list(meta.get("labels", manifest["labels"])) != list(manifest["labels"]):
        raise BenchError(
            f"{bundle} ({manifest['model']}) was not exported from {model_dir} ({meta.get('model')})",
            hint="pass the run directory the bundle was exported from as --run",
        )
    if (model_dir / "tokenizer.json").is_file() and read_json(model_dir / "tokenizer.json") != read_json(bundle / "tokenizer.json"):
        raise BenchError(
            f"{bundle}: its tokenizer differs from {model_dir}'s", hint="pass the run directory the bundle was exported from as --run"
        )


# -- measurement -------------------------------------------------------------------------------------
def latency_ms(predict: Callable[[Sequence[str]], Any], texts: Sequence[str], warmup: int) -> np.ndarray:
    """Milliseconds per call, one text per call, in text order."""
    for text in texts[:warmup]:
        predict([text])
    out = np.empty(len(texts))
    clock = time.perf_counter
    for i, text in enumerate(texts):
        start = clock()
        predict([text])
        out[i] = clock() - start
    return out * 1e3


def throughput(predict: Callable[[Sequence[str]], Any], texts: Sequence[str], batch: int, rounds: int, warmup: int) -> float:
    """Texts per second over `texts` cut into consecutive batches of `batch` (the median of `rounds` passes)."""
    batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    for b in batches[: max(1, warmup // batch)]:
        predict(b)
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for b in batches:
            predict(b)
        rates.append(len(texts) / (time.perf_counter() - start))
    return float(np.median(rates))


def _summary(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p90_ms": round(float(np.percentile(ms, 90)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "n": int(ms.size),
    }


def _cycle(texts: Sequence[str], n: int) -> list[str]:
    return [texts[i % len(texts)] for i in range(n)] if texts else []


def _quality(probas: dict[str, np.ndarray], labels: Sequence[str], examples: Sequence[Example]) -> dict[str, dict[str, Any]]:
    """Per variant: agreement with PyTorch (or the first variant), max |dp|, and accuracy when the texts are labelled."""
    ref_name = TORCH if TORCH in probas else next(iter(probas))
    ref = probas[ref_name]
    labeled = [i for i, e in enumerate(examples) if e.label is not None]
    # Accuracy only when the labels are the model's (a file read with another label field, e.g. sentiment instead
    # of category, shares none); labels the model never saw count as wrong.
    scored = bool(labeled) and sum(examples[i].label in labels for i in labeled) >= 0.9 * len(labeled)
    out = {}
    for name, p in probas.items():
        q: dict[str, Any] = {
            "reference": ref_name,
            "label_agreement": float((p.argmax(1) == ref.argmax(1)).mean()),
            "max_abs_diff": float(np.abs(p - ref).max()),
        }
        if scored:
            q["accuracy"] = float(np.mean([labels[j] == examples[i].label for i, j in zip(labeled, p[labeled].argmax(1))]))
        out[name] = q
    return out


def bench(
    bundle: str | Path,
    *,
    run: str | Path | None = None,
    data: Sequence[Example] | None = None,
    settings: BenchSettings = BenchSettings(),
    progress: BenchProgress | None = None,
) -> dict[str, Any]:
    """Measure the bundle (and, with `run`, its other precision and PyTorch eager) and return the results:
    `variants` (per variant: latency, throughput[threads][batch], quality), `rows` (the table: one row per
    measurement, a value and a speed-up over PyTorch eager per variant) and `tokenize` (the text pipeline alone).
    `progress(what, done, total)` is called before each measurement and once at the end (done == total)."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    examples = bench_texts(bundle, run, data)
    texts = [e.text for e in examples]
    variants = [_bundle_variant(bundle)]
    steps = _Steps(progress, settings, n_variants=1 if run is None else 3, export=run is not None)
    with tempfile.TemporaryDirectory(prefix="zhcls-bench-") as tmp:
        if run is not None:
            if manifest["backend"] != "onnx":
                raise BenchError(
                    f"{bundle}: a {manifest['model']} bundle has no ONNX graph or PyTorch model to compare with", hint="leave out --run"
                )
            _check_same_model(bundle, manifest, run)
            from .onnx import export_bundle

            other = "none" if manifest["precision"] == "int8" else "int8"
            log.info("exporting the %s variant of %s into a temporary directory", "fp32" if other == "none" else "int8", run)
            steps("export the " + ("fp32" if other == "none" else "int8") + " variant")
            with _quiet_logging():  # onnxruntime's quantizer logs advice on the root logger
                export_bundle(run, Path(tmp) / "other", quantize=other, data=examples[:2000], latency_texts=20)  # type: ignore[arg-type]
            variants.append(_bundle_variant(Path(tmp) / "other"))
            variants.append(_torch_variant(run, Featurizer.from_json(read_json(bundle / "tokenizer.json"))))
            variants.sort(key=lambda v: ("onnx_fp32", "onnx_int8", TORCH).index(v.name))
        result = _measure(variants, examples, texts, bundle, settings, steps)
    steps.finish()
    result.update(bundle=str(bundle), run=None if run is None else str(run), model=manifest["model"], precision=manifest["precision"])
    return result


class _Steps:
    """Counts the measurements for a progress hook: `steps(what)` before each, `finish()` at the end."""

    def __init__(self, hook: BenchProgress | None, s: BenchSettings, n_variants: int, export: bool) -> None:
        latency = (s.rounds if n_variants > 1 else 1) * n_variants
        throughputs = len(s.threads) * n_variants * len(s.batch_sizes)
        # export, latency rounds, throughput passes, quality per variant, tokenization, matmul peak per thread count
        self.total = int(export) + latency + throughputs + n_variants + 1 + len(s.threads)
        self.hook, self.done = hook, 0

    def __call__(self, what: str) -> None:
        if self.hook is not None:
            self.hook(what, min(self.done, self.total), self.total)
        self.done += 1

    def finish(self) -> None:
        if self.hook is not None:
            self.hook("done", self.total, self.total)


class CpuShare:
    """CPU used by other processes while a measurement ran, in cores (Linux /proc/stat; None elsewhere).
    On a 2-core machine anything much above 0 means the latencies were taken on a loaded machine."""

    def __enter__(self) -> "CpuShare":
        self.others_cores: float | None = None
        self._start = (_busy_seconds(), _own_seconds(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy, own, wall = _busy_seconds(), _own_seconds(), time.perf_counter()
        if busy is not None and self._start[0] is not None:
            self.others_cores = round(max(0.0, (busy - self._start[0]) - (own - self._start[1])) / max(wall - self._start[2], 1e-9), 3)


def _busy_seconds() -> float | None:
    import os

    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    import os

    t = os.times()
    return t.user + t.system


def _measure(
    variants: list[Variant], examples: Sequence[Example], texts: list[str], bundle: Path, s: BenchSettings, steps: _Steps | None = None
) -> dict[str, Any]:
    import os

    steps = steps or _Steps(None, s, len(variants), export=False)
    with CpuShare() as share:
        result = _measure_all(variants, examples, texts, bundle, s, steps)
        peaks = {}
        for t in s.threads:
            steps(f"matmul peak, {t} thread{'s' if t > 1 else ''}")
            peaks[str(t)] = matmul_peak(t)
        result["peak"] = {t: p for t, p in peaks.items() if p is not None} or None
    result["flops"] = bundle_flops(bundle, texts)
    add_peak_fractions(result)
    result["machine"] = {
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "other_processes_cores": share.others_cores,
    }
    return result


def _measure_all(
    variants: list[Variant], examples: Sequence[Example], texts: list[str], bundle: Path, s: BenchSettings, steps: _Steps
) -> dict[str, Any]:
    lat_texts = _cycle(texts, min(s.latency_texts, max(len(texts), 1)))
    tp_texts = _cycle(texts, s.throughput_texts)
    predictors = {v.name: {t: v.make(t) for t in s.threads} for v in variants}
    one = min(s.threads)
    samples: dict[str, list[np.ndarray]] = {v.name: [] for v in variants}
    for r in range(s.rounds if len(variants) > 1 else 1):
        order = variants if r % 2 == 0 else variants[::-1]  # alternate, so a drift in load hits every variant alike
        for v in order:
            steps(f"latency {VARIANT_TITLES.get(v.name, v.name)}")
            samples[v.name].append(latency_ms(predictors[v.name][one], lat_texts, s.warmup))
    rates: dict[str, dict[int, dict[int, float]]] = {v.name: {} for v in variants}
    for t in s.threads:
        for v in variants:
            rates[v.name][t] = {}
            for b in s.batch_sizes:
                steps(f"throughput {VARIANT_TITLES.get(v.name, v.name)}, batch {b}, {t} thread{'s' if t > 1 else ''}")
                rates[v.name][t][b] = throughput(predictors[v.name][t], tp_texts, b, s.rounds, s.warmup)
    probas = {}
    for v in variants:
        steps(f"agreement {VARIANT_TITLES.get(v.name, v.name)}")
        probas[v.name] = np.concatenate([predictors[v.name][one](texts[i : i + 256]) for i in range(0, len(texts), 256)])
    labels = load_manifest(bundle, verify=False)["labels"]
    quality = _quality(probas, labels, examples)
    out_variants = {}
    for v in variants:
        out_variants[v.name] = {
            "title": VARIANT_TITLES.get(v.name, v.name),
            "source": v.source,
            **v.info,
            "latency": {**_summary(np.concatenate(samples[v.name])), "threads": one, "batch": 1, "tokenization": "included"},
            "throughput": {str(t): {str(b): round(rates[v.name][t][b], 1) for b in s.batch_sizes} for t in s.threads},
            "quality": quality[v.name],
        }
    featurizer = _tokenize_variant(bundle)
    steps("tokenization alone")
    tokenize = _summary(latency_ms(featurizer, lat_texts, s.warmup)) if featurizer is not None else None
    return {
        "variants": out_variants,
        "rows": table_rows(out_variants),
        "tokenize": tokenize,
        "texts": {
            "n": len(texts),
            "latency_calls_per_round": len(lat_texts),
            "throughput_texts": len(tp_texts),
            "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        },
        "settings": {
            "latency_texts": s.latency_texts,
            "throughput_texts": s.throughput_texts,
            "warmup": s.warmup,
            "rounds": s.rounds,
            "batch_sizes": list(s.batch_sizes),
            "threads": list(s.threads),
        },
    }


# -- FLOPs and the matmul peak ----------------------------------------------------------------------------
def matmul_peak(threads: int, n: int = 1024, reps: int = 5) -> dict[str, Any] | None:
    """The machine's fp32 matrix-multiply rate: an n x n x n MatMul in onnxruntime (MLAS, the engine the bundles run
    on) with `threads` intra-op threads, best of `reps` calls after one warm-up. GFLOP/s = 2 n^3 / seconds / 1e9.
    None where onnx (the graph builder, in the export extra) is not installed."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None

    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), name="b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "peak",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
        initializer=[b],
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = rng.standard_normal((n, n)).astype(np.float32)
    session.run(None, {"a": a})
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        session.run(None, {"a": a})
        best = min(best, time.perf_counter() - start)
    return {"gflops": round(2 * n**3 / best / 1e9, 2), "threads": threads, "n": n, "engine": f"onnxruntime {ort.__version__} MatMul fp32"}


def _id_lengths(bundle: Path, texts: Sequence[str]) -> list[int] | None:
    tokenizer = read_json(bundle / "tokenizer.json")
    if tokenizer.get("kind") != "featurizer":
        return None
    f = Featurizer.from_json(tokenizer)
    return [len(f.encode(t)) for t in texts]


def bundle_flops(bundle: Path, texts: Sequence[str]) -> dict[str, Any] | None:
    """model_flops of the bundle's model over `texts`; an ensemble's is the sum of its members', each counted
    over its own ids (None when a member does not count its FLOPs: a partial sum would understate it)."""
    manifest = load_manifest(bundle, verify=False)
    if manifest["backend"] != "ensemble":
        return model_flops(manifest, _id_lengths(bundle, texts))
    parts = [bundle_flops(bundle / m["dir"], texts) for m in manifest["input"]["members"]]
    if not parts or any(p is None for p in parts):
        return None
    out: dict[str, Any] = {
        "per_text": sum(p["per_text"] for p in parts),
        "mean_ids": None,
        "basis": "the sum of the members': " + "; ".join(f"{m['model']}: {p['basis']}" for m, p in zip(manifest["input"]["members"], parts)),
    }
    if any("graph_per_text" in p for p in parts):
        out["graph_per_text"] = sum(p.get("graph_per_text", p["per_text"]) for p in parts)
    return out


def model_flops(manifest: dict[str, Any], id_lengths: Sequence[int] | None) -> dict[str, Any] | None:
    """FLOPs per text of the model as trained (a multiply-add counts 2), averaged over the texts' id counts:
    the model's own count (Classifier.flops_per_text), asked of a model rebuilt from the manifest's params.

    The dense computation the model defines, the same for every variant: the ONNX table graphs precompute
    the convolution or the output layer into tables and execute far fewer operations than this."""
    from ..models.base import build_model

    params = manifest.get("params")
    if id_lengths is None or not id_lengths or not params:
        return None
    model = build_model(manifest["model"], params)
    n_classes, graph = len(manifest["labels"]), (manifest.get("input") or {}).get("graph")
    counts = [model.flops_per_text(int(n), n_classes, graph) for n in id_lengths]
    if counts[0] is None:
        return None
    out = {
        "per_text": round(float(np.mean([c["per_text"] for c in counts]))),
        "mean_ids": round(float(np.mean(id_lengths)), 1),
        "basis": counts[0]["basis"],
    }
    if "graph_per_text" in counts[0]:
        out["graph_per_text"] = round(float(np.mean([c["graph_per_text"] for c in counts])))
    return out


def add_peak_fractions(result: dict[str, Any]) -> None:
    """Per variant, threads and batch: texts/s x FLOPs per text / the matmul peak at that thread count."""
    flops, peak = result.get("flops"), result.get("peak") or {}
    for v in result["variants"].values():
        v["peak_fraction"] = {
            t: {b: (None if not flops or t not in peak else round(rate * flops["per_text"] / (peak[t]["gflops"] * 1e9), 5)) for b, rate in per.items()}
            for t, per in v["throughput"].items()
        }


def _tokenize_variant(bundle: Path) -> Callable[[Sequence[str]], Any] | None:
    tokenizer = read_json(bundle / "tokenizer.json")
    if tokenizer.get("kind") != "featurizer":
        return None
    f = Featurizer.from_json(tokenizer)
    return lambda texts: [f.encode_tokens(f.full_tokens(t)[: f.max_len]) for t in texts]


def table_rows(variants: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per measurement: {metric, unit, threads, batch, values{variant}, speedup{variant}}. speedup is
    PyTorch's value over the variant's for latency, the variant's over PyTorch's for throughput (> 1: faster)."""
    names = list(variants)
    rows = []
    for key in ("p50_ms", "p99_ms"):
        rows.append(
            {
                "metric": f"latency {key[:3]}",
                "unit": "ms",
                "threads": 1,
                "batch": 1,
                "higher_is_better": False,
                "values": {n: variants[n]["latency"][key] for n in names},
            }
        )
    threads = list(variants[names[0]]["throughput"])
    for t in threads:
        for b in variants[names[0]]["throughput"][t]:
            rows.append(
                {
                    "metric": "throughput",
                    "unit": "texts/s",
                    "threads": int(t),
                    "batch": int(b),
                    "higher_is_better": True,
                    "values": {n: variants[n]["throughput"][t][b] for n in names},
                }
            )
    for row in rows:
        ref = row["values"].get(TORCH)
        row["speedup"] = {
            n: (None if ref is None or not v else (v / ref) if row["higher_is_better"] else (ref / v)) for n, v in row["values"].items()
        }
    return rows


def table_legend(result: dict[str, Any]) -> str:
    """One line saying what the columns and cells of format_table's table are."""
    ratio = TORCH in result["variants"] and len(result["variants"]) > 1
    return (
        "One column per variant (the bundle" + (", its other precision and PyTorch eager on the run" if ratio else "") + "); "
        "latency in ms per text (lower is better), throughput in texts/s (higher is better)"
        + ("; (xN) is the speed-up over PyTorch eager, above 1 is faster." if ratio else ".")
    )


def format_table(result: dict[str, Any]) -> str:
    """The rows as a Markdown table; each cell `value (x speed-up over PyTorch eager)`."""
    names = list(result["variants"])
    head = ["measurement"] + [result["variants"][n]["title"] for n in names]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(names) + "|"]
    for row in result["rows"]:
        what = (
            f"{row['metric']} ({row['unit']}, 1 text, {row['threads']} thread)"
            if row["metric"].startswith("latency")
            else (f"throughput (texts/s, batch {row['batch']}, {row['threads']} thread{'s' if row['threads'] > 1 else ''})")
        )
        cells = []
        for n in names:
            v, r = row["values"][n], row["speedup"][n]
            num = f"{v:.3f}" if row["unit"] == "ms" else f"{v:,.0f}"
            cells.append(num if r is None or n == TORCH else f"{num} (x{r:.2f})")
        lines.append("| " + " | ".join([what] + cells) + " |")
    if result.get("tokenize"):
        tok = result["tokenize"]
        lines.append(f"| tokenization alone, p50 / p99 (ms) | {tok['p50_ms']:.3f} / {tok['p99_ms']:.3f}" + " |" * len(names))
    q = [
        f"{result['variants'][n]['title']}: agrees with {result['variants'].get(result['variants'][n]['quality']['reference'], {}).get('title', '?')} "
        f"on {result['variants'][n]['quality']['label_agreement']:.2%}"
        + (f", accuracy {result['variants'][n]['quality']['accuracy']:.4f}" if "accuracy" in result["variants"][n]["quality"] else "")
        for n in names
        if n != result["variants"][n]["quality"]["reference"]
    ]
    return "\n".join(lines) + ("\n\n" + "; ".join(q) if q else "") + _peak_lines(result)


def _peak_lines(result: dict[str, Any]) -> str:
    flops, peak = result.get("flops"), result.get("peak")
    if not flops or not peak:
        return ""
    lines = [
        "",
        "",
        f"Model: {flops['per_text'] / 1e6:.3f} MFLOP per text ({flops['basis']}" + (f"; mean {flops['mean_ids']} ids)" if flops.get("mean_ids") else ")")
        + (
            f"; the exported table graph executes {flops['graph_per_text'] / 1e6:.3f} MFLOP of it (the rest is precomputed into its tables, "
            "so a fraction above 100% is possible)"
            if flops.get("graph_per_text")
            else ""
        )
        + ". "
        + "Matrix-multiply peak measured now: "
        + ", ".join(f"{p['gflops']:.1f} GFLOP/s at {t} thread{'s' if int(t) > 1 else ''}" for t, p in peak.items())
        + f" ({next(iter(peak.values()))['engine']}, {next(iter(peak.values()))['n']}^3)."
        + " Throughput as a fraction of that peak (texts/s x FLOPs per text / peak):",
        "",
    ]
    for v in result["variants"].values():
        parts = []
        for t, per in v["peak_fraction"].items():
            batch = max(per, key=int)  # the largest batch: the throughput regime
            if per[batch] is not None:
                parts.append(f"{per[batch]:.2%} at {t} thread{'s' if int(t) > 1 else ''}, batch {batch}")
        lines.append(f"- {v['title']}: " + "; ".join(parts))
    return "\n".join(lines)


@contextmanager
def _quiet_logging() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
