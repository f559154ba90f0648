"""Latency benchmark: zhcls bundles (ONNX fp32 / int8) against PyTorch eager and fastText's native predict.

    .venv/bin/python benchmarks/latency.py                  # the committed measurement (about 20 min on 2 cores)
    .venv/bin/python benchmarks/latency.py --quick          # smoke run on small subsets; numbers mean nothing

For each task (TNEWS titles: FewCLUE train_few_all / dev_few_all; online_shopping_10_cats reviews, `cat` task,
train subsampled) it trains through the library (`config_from_dict` + `training.run.train`) a TextCNN (char,
embed 128, 128 filters, kernels 2/3/4) and a fasttext.v1 model, exports fp32 and int8 bundles
(`export_bundle`: TextCNN as per-tap lookup tables, fasttext.v1 with its output layer folded into the
embedding, int8 = the tables quantized), and runs `zhcls.export.bench.bench` on the dev texts: single-text latency at 1 thread with
tokenization, throughput at batch 1/32/256 with 1 and 2 threads, for ONNX fp32, ONNX int8 and PyTorch eager
of the same weights. A fastText supervised model (fasttext-wheel) trained on the same training texts as
space-separated characters, with fasttext.v1's shape (dim 100, word 2-grams, 200k buckets), is timed with
`predict` on the same texts in the same run; its input preparation (splitting into characters) is timed too.
Each bench also measures the machine's fp32 matmul peak (onnxruntime, 1 and 2 threads) and reports throughput
as a fraction of it, from the model's FLOPs per text.

Models are trained first; the measurements wait (5-minute steps, --wait-minutes in all) while another
benchmarks/foundation.py runs, because latency on a loaded 2-core machine means little. Results:
benchmarks/results/latency.json and latency.md, with a verdict per target.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import _harness as h
import numpy as np
from _harness import REPO, Task

log = logging.getLogger("latency")

TARGETS = {
    "textcnn_p50_ms": 0.12,
    "textcnn_p99_ms": 0.5,
    "textcnn_speedup": 2.5,
    "fasttext_ratio": 3.0,
    "textcnn_titles_per_s": 10_000,  # batch throughput at 2 threads, TNEWS titles
    "fasttext_titles_per_s": 100_000,
    "int8_accuracy_drop": 0.005,
    "int8_size_ratio": 0.30,
}
TITLES = "tnews"  # the task whose texts are titles (the throughput targets are stated for titles)
TEXTCNN = {"name": "textcnn.v1", "tokenizer": "char.v1", "embed_dim": 128, "num_filters": 128, "kernel_sizes": [2, 3, 4]}
FASTTEXT = {"name": "fasttext.v1"}  # embed 100, token 2-grams hashed into 200k buckets
NATIVE = {"dim": 100, "wordNgrams": 2, "bucket": 200_000, "minn": 0, "maxn": 0, "loss": "softmax", "lr": 0.5}


TASKS = [replace(h.fewclue("tnews"), name="tnews"), replace(h.online_shopping("cat"), name="online_shopping_cat")]
MAX_TRAIN = {"tnews": None, "online_shopping_cat": 10_000}  # subsample the training split to this many examples
EPOCHS = {"tnews": {"textcnn.v1": 30, "fasttext.v1": 60, "native": 25}, "online_shopping_cat": {"textcnn.v1": 5, "fasttext.v1": 10, "native": 10}}


# -- data -----------------------------------------------------------------------------------------------
def subsample(src: Path, dest: Path, n: int, seed: int = 0) -> Path:
    """`n` random records of `src` (CSV with header, or JSON lines) written to `dest` in the same format."""
    text = src.read_text(encoding="utf-8")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, body = rows[0], rows[1:]
        body = random.Random(seed).sample(body, min(n, len(body)))
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\n").writerows([header, *body])
        dest.write_text(buf.getvalue(), encoding="utf-8")
    else:
        lines = [line for line in text.split("\n") if line.strip()]
        dest.write_text("\n".join(random.Random(seed).sample(lines, min(n, len(lines)))) + "\n", encoding="utf-8")
    return dest


def read(path: Path, task: Task):
    from zhcls.data.readers import ReadOptions, read_examples

    return read_examples(path, ReadOptions(text_field=task.text_field, label_field=task.label_field))


# -- training and export -----------------------------------------------------------------------------------
def train_zhcls(
    task: Task, model: dict[str, Any], train: Path, dev: Path, run_dir: Path, quick: bool, reuse: bool, threads: int, max_epochs: int | None
) -> dict[str, Any]:
    from zhcls.config import config_from_dict, dump_config
    from zhcls.training.run import train as run_train

    epochs = 2 if quick else min(EPOCHS[task.name][model["name"]], max_epochs or EPOCHS[task.name][model["name"]])
    training = {
        "epochs": epochs,
        "batch_size": 32 if MAX_TRAIN[task.name] is None else 64,
        "patience": 5 if MAX_TRAIN[task.name] is None else 2,
        "threads": threads,
        "seed": 42,
    }
    raw = {
        "data": {"train": str(train), "dev": str(dev), "text_field": task.text_field, "label_field": task.label_field},
        "model": {**model, "max_len": 256},  # tokens kept per text (the default, stated)
        "training": training,
    }
    cfg = config_from_dict(raw, source=f"{task.name}:{model['name']}")
    if reuse and (run_dir / "metrics.json").is_file() and (run_dir / "config.toml").read_text(encoding="utf-8") == dump_config(cfg):
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))  # trained by an earlier, interrupted invocation
    else:
        metrics = run_train(cfg, run_dir, force=True).metrics
    return {
        "run_dir": str(run_dir),
        "train_seconds": metrics["train_seconds"],
        "dev_accuracy": metrics["dev"]["accuracy"],
        "dev_macro_f1": metrics["dev"]["macro_f1"],
        "config": {"model": raw["model"], "training": training},
    }


def export(run_dir: Path, out: Path, reuse: bool) -> dict[str, Any]:
    from zhcls.export.onnx import export_bundle
    from zhcls.serve.bundle import load_manifest

    info = {}
    for precision, quantize in (("fp32", "none"), ("int8", "int8")):
        if reuse and (out / precision / "manifest.json").is_file():
            manifest = load_manifest(out / precision)
        else:
            manifest = export_bundle(run_dir, out / precision, quantize=quantize)  # type: ignore[arg-type]
        info[precision] = {
            "path": str(out / precision),
            "graph": manifest["input"].get("graph", "net"),
            "parity": manifest["parity"],
            "size_bytes": sum(manifest["size_bytes"].values()),
        }
    return info


class NativeFastText:
    """fastText (fasttext-wheel) on characters: the baseline the fasttext.v1 bundle is compared with."""

    def __init__(self, train, work: Path, epochs: int, threads: int) -> None:
        import fasttext

        labels = sorted({e.label for e in train})
        self.to_ft = {label: "".join(label.split()) or "_" for label in labels}
        self.from_ft = {v: k for k, v in self.to_ft.items()}
        path = work / "native.train.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            for e in train:
                f.write(f"__label__{self.to_ft[e.label]} {self.chars(e.text)}\n")
        started = time.perf_counter()
        self.model = fasttext.train_supervised(input=str(path), epoch=epochs, thread=threads, verbose=0, seed=42, **NATIVE)
        self.train_seconds = round(time.perf_counter() - started, 1)

    @staticmethod
    def chars(text: str) -> str:
        return " ".join(ch for ch in text if not ch.isspace())

    def predict_one(self, text: str) -> str:
        """What a caller does with a raw text: split into characters, then predict (k=1). The list form:
        fasttext-wheel's single-string `predict` fails under numpy 2 (`np.array(probs, copy=False)`)."""
        return self.model.predict([self.chars(text)])[0][0][0]

    def accuracy(self, examples) -> float:
        got, _ = self.model.predict([self.chars(e.text) for e in examples])
        return float(np.mean([self.from_ft.get(g[0].removeprefix("__label__")) == e.label for g, e in zip(got, examples)]))


def compare_with_native(bundle: Path, native: NativeFastText, texts: list[str], n: int, warmup: int, rounds: int) -> dict[str, Any]:
    """Single-text latency of the fasttext.v1 bundle and of fastText's predict, rounds alternating, same texts."""
    from zhcls.export.bench import CpuShare, latency_ms
    from zhcls.serve.predictor import Predictor

    texts = [texts[i % len(texts)] for i in range(n)]
    split = [native.chars(t) + "\n" for t in texts]
    predictor = Predictor(bundle, threads=1)
    presplit = dict(zip(texts, split))
    fns = {
        "bundle": predictor.predict_proba,
        "native": lambda batch: native.predict_one(batch[0]),
        # fastText's C++ predict alone, on text already split into characters (no input preparation, no wrapper)
        "native_presplit": lambda batch: native.model.f.predict(presplit[batch[0]], 1, 0.0, "strict"),
        "native_all_probs": lambda batch: native.model.predict([native.chars(batch[0])], k=-1),
    }
    samples: dict[str, list[np.ndarray]] = {k: [] for k in fns}
    names = list(fns)
    with CpuShare() as share:
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                samples[name].append(latency_ms(fns[name], texts, warmup))
    out: dict[str, Any] = {"other_processes_cores": share.others_cores}
    for name, s in samples.items():
        ms = np.concatenate(s)
        out[name] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "mean_ms": round(float(ms.mean()), 4),
            "n": int(ms.size),
        }
    out["ratio_p50"] = out["bundle"]["p50_ms"] / out["native"]["p50_ms"]
    out["ratio_p50_vs_core"] = out["bundle"]["p50_ms"] / out["native_presplit"]["p50_ms"]
    return out


# -- machine state ------------------------------------------------------------------------------------------
def foundation_running() -> bool:
    me = os.getpid()
    try:
        pids = subprocess.run(["pgrep", "-f", "foundation\\.py"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return False
    return any(int(p) != me for p in pids)


def wait_for_quiet(max_minutes: float, max_load: float) -> dict[str, Any]:
    """Wait (5-minute steps while benchmarks/foundation.py runs, 1-minute steps while the 1-minute load average is
    above max_load) for at most max_minutes; then measure regardless, and say so in the results."""
    waited = 0.0
    while waited < max_minutes * 60:
        running, load = foundation_running(), os.getloadavg()[0]
        if not running and load <= max_load:
            break
        step = 300 if running else 60
        log.info(
            "%s; waiting %d s (waited %.0f of %.0f min)",
            "benchmarks/foundation.py is running" if running else f"load average {load:.2f} > {max_load}",
            step,
            waited / 60,
            max_minutes,
        )
        time.sleep(step)
        waited += step
    return {
        "waited_minutes": round(waited / 60, 1),
        "gave_up_waiting": waited >= max_minutes * 60 > 0,
        "max_load": max_load,
        "foundation_running_at_start": foundation_running(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def environment(argv: list[str]) -> dict[str, Any]:
    return h.environment("benchmarks/latency.py", argv, "torch", "onnxruntime", "onnx", "numpy", "fasttext-wheel", prefix="python")


# -- verdicts and report ------------------------------------------------------------------------------------
def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for task, entry in results["tasks"].items():
        cnn = entry.get("textcnn.v1", {}).get("bench")
        if cnn:
            fp32, int8, torch_ = (cnn["variants"][k]["latency"] for k in ("onnx_fp32", "onnx_int8", "torch_eager"))
            speedup = torch_["p50_ms"] / fp32["p50_ms"]
            out += [
                {
                    "task": task,
                    "target": f"TextCNN bundle p50 <= {TARGETS['textcnn_p50_ms']} ms (1 text, 1 thread, tokenization included)",
                    "measured": f"{fp32['p50_ms']:.3f} ms",
                    "met": fp32["p50_ms"] <= TARGETS["textcnn_p50_ms"],
                },
                {
                    "task": task,
                    "target": f"TextCNN bundle p99 <= {TARGETS['textcnn_p99_ms']} ms",
                    "measured": f"{fp32['p99_ms']:.3f} ms",
                    "met": fp32["p99_ms"] <= TARGETS["textcnn_p99_ms"],
                },
                {
                    "task": task,
                    "target": f"TextCNN bundle >= {TARGETS['textcnn_speedup']}x faster than PyTorch eager (p50)",
                    "measured": f"x{speedup:.2f} ({torch_['p50_ms']:.3f} ms / {fp32['p50_ms']:.3f} ms)",
                    "met": speedup >= TARGETS["textcnn_speedup"],
                },
                {
                    "task": task,
                    "target": "TextCNN int8 bundle faster still than fp32 (p50)",
                    "measured": f"{int8['p50_ms']:.3f} ms vs {fp32['p50_ms']:.3f} ms",
                    "met": int8["p50_ms"] < fp32["p50_ms"],
                },
            ]
        out += throughput_and_int8_verdicts(task, entry)
        native = entry.get("fasttext.v1", {}).get("vs_native")
        if native:
            out.append(
                {
                    "task": task,
                    "target": f"fasttext.v1 bundle p50 within {TARGETS['fasttext_ratio']:g}x of fastText's native predict",
                    "measured": f"x{native['ratio_p50']:.2f} ({native['bundle']['p50_ms']:.3f} ms vs {native['native']['p50_ms']:.3f} ms; "
                    f"x{native['ratio_p50_vs_core']:.2f} vs the C++ call alone on pre-split text)",
                    "met": native["ratio_p50"] <= TARGETS["fasttext_ratio"],
                }
            )
    return out


def throughput_and_int8_verdicts(task: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for model, key in (("textcnn.v1", "textcnn_titles_per_s"), ("fasttext.v1", "fasttext_titles_per_s")):
        m = entry.get(model)
        if not m or "bench" not in m:
            continue
        b = m["bench"]
        if task == TITLES:
            rates = b["variants"]["onnx_fp32"]["throughput"].get("2", {})
            batch, rate = max(rates.items(), key=lambda kv: kv[1])
            frac = b["variants"]["onnx_fp32"].get("peak_fraction", {}).get("2", {}).get(batch)
            out.append(
                {
                    "task": task,
                    "target": f"{model} bundle (fp32) throughput at 2 threads >= {TARGETS[key]:,} titles/s",
                    "measured": f"{rate:,.0f} texts/s at batch {batch}" + ("" if frac is None else f" ({frac:.2%} of the 2-thread matmul peak)"),
                    "met": rate >= TARGETS[key],
                }
            )
        q = m["export"]["int8"]["parity"]["int8"]
        if "accuracy_change" in q:
            out.append(
                {
                    "task": task,
                    "target": f"{model} int8 accuracy within {TARGETS['int8_accuracy_drop'] * 100:g} point of fp32 (dev)",
                    "measured": f"{q['accuracy_change'] * 100:+.2f} points",
                    "met": q["accuracy_change"] >= -TARGETS["int8_accuracy_drop"],
                }
            )
        ratio = m["export"]["int8"]["size_bytes"] / m["export"]["fp32"]["size_bytes"]
        out.append(
            {
                "task": task,
                "target": f"{model} int8 bundle <= {TARGETS['int8_size_ratio']:.0%} of fp32's size",
                "measured": f"{ratio:.1%} ({m['export']['int8']['size_bytes'] / 1e6:.1f} MB / {m['export']['fp32']['size_bytes'] / 1e6:.1f} MB)",
                "met": ratio <= TARGETS["int8_size_ratio"],
            }
        )
    return out


def render_markdown(results: dict[str, Any]) -> str:
    from zhcls.export.bench import format_table

    env, quiet = results["environment"], results["measurement_conditions"]
    lines = ["# zhcls latency benchmark", ""]
    if results.get("quick"):
        lines += ["**Quick smoke run on small subsets: these numbers mean nothing.**", ""]
    loaded = quiet.get("foundation_running_at_start") or quiet.get("foundation_running_at_end")
    shares = [
        m["bench"]["machine"]["other_processes_cores"] or 0.0
        for e in results["tasks"].values()
        for k, m in e.items()
        if isinstance(m, dict) and "bench" in m
    ]
    busiest = max(shares, default=0.0)
    lines += [
        f"- command: `{env['command']}`",
        f"- machine: {env['machine']['cpu_model']}, {env['machine']['os_cpu_count']} cores ({env['machine']['affinity_cpus']} usable), {env['machine']['platform']}",
        f"- date: {env['started']}, measurements finished {results.get('finished', '?')}"
        + (" (--reuse: runs and bundles an earlier, interrupted invocation left in --work-dir were used as they were)" if results.get("reused_runs") else ""),
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + f"; git {env['git']['commit'][:12]}"
        + (" (with uncommitted changes)" if env["git"]["dirty_tracked_files"] else ""),
        f"- conditions: load average {quiet['loadavg_at_start']} when measuring began, {quiet.get('loadavg_at_end')} at the end; waited "
        f"{quiet['waited_minutes']} min for benchmarks/foundation.py to finish and the load to fall below {quiet['max_load']}"
        + (" and then gave up waiting" if quiet.get("gave_up_waiting") else "")
        + ". "
        + (
            "**benchmarks/foundation.py was running during the measurements: the numbers are inflated by a loaded machine.** "
            if loaded
            else "benchmarks/foundation.py was not running. "
        )
        + f"Other processes used on average {busiest:.2f} of {env['machine']['os_cpu_count']} cores during the busiest measurement (per measurement below).",
        "",
        "Latency: one text per call, 1 thread, normalization + tokenization + ids + padding + model + softmax, "
        "in-process (no HTTP). Throughput: texts/s over the dev texts cut into batches, tokenization included. "
        "PyTorch eager: the same weights, `torch.set_num_threads(threads)`, `torch.inference_mode()`, the bundle's featurizer "
        "and padding. `(xN)`: speed-up over PyTorch eager in the same run (> 1 is faster).",
        "",
        "## Verdicts",
        "",
        "| task | target | measured | met |",
        "|---|---|---|---|",
    ]
    lines += [f"| {v['task']} | {v['target']} | {v['measured']} | {'**yes**' if v['met'] else '**NO**'} |" for v in results["verdicts"]]
    lines.append("")
    for task, entry in results["tasks"].items():
        lines += [
            f"## {task}",
            "",
            f"{entry['n_train']} training texts, {entry['n_bench_texts']} dev texts timed (mean {entry['mean_chars']} characters).",
            "",
        ]
        for model in ("textcnn.v1", "fasttext.v1"):
            m = entry.get(model)
            if not m:
                continue
            q = m["export"]["int8"]["parity"]["int8"]
            lines += [
                f"### {model}",
                "",
                f"dev accuracy {m['train']['dev_accuracy']:.4f} (trained in {m['train']['train_seconds']} s, {m['train']['config']['training']['epochs']} epochs at most, "
                f"{m['train']['config']['training']['threads']} thread(s)); exported graph `{m['export']['fp32'].get('graph', 'net')}`; bundle sizes fp32 "
                f"{m['export']['fp32']['size_bytes'] / 1e6:.1f} MB, int8 {m['export']['int8']['size_bytes'] / 1e6:.1f} MB; int8 agrees with "
                f"the model on {q['label_agreement']:.2%} of dev labels, accuracy change {q.get('accuracy_change', float('nan')):+.4f}.",
                "",
                format_table(m["bench"]),
                "",
                f"Measured with load average {m['bench']['machine']['loadavg']}; other processes used {m['bench']['machine']['other_processes_cores']} cores meanwhile.",
                "",
            ]
            native = m.get("vs_native")
            if native:
                lines += [
                    f"fastText native (fasttext-wheel, dim {NATIVE['dim']}, wordNgrams {NATIVE['wordNgrams']}, {NATIVE['bucket']} buckets, on characters; "
                    f"dev accuracy {entry['native']['dev_accuracy']:.4f}), single text, same texts, rounds alternating:",
                    "",
                    "| predictor | p50 ms | p99 ms | mean ms |",
                    "|---|---:|---:|---:|",
                    *(
                        f"| {label} | {native[k]['p50_ms']:.4f} | {native[k]['p99_ms']:.4f} | {native[k]['mean_ms']:.4f} |"
                        for k, label in (
                            ("bundle", "fasttext.v1 bundle (ONNX fp32, all probabilities)"),
                            ("native", "fastText `model.predict([' '.join(chars)])`, k=1"),
                            ("native_presplit", "fastText C++ `model.f.predict` alone, text already split, k=1"),
                            ("native_all_probs", "fastText `model.predict([...], k=-1)` (all probabilities)"),
                        )
                    ),
                    "",
                    f"Other processes used {native['other_processes_cores']} cores meanwhile. bundle / native p50 = x{native['ratio_p50']:.2f} (x{native['ratio_p50_vs_core']:.2f} against the C++ call alone on pre-split text)",
                    "",
                ]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(h.default_data_dir()))
    p.add_argument("--work-dir", default=None, help="runs and bundles (default: a temporary directory, removed at the end)")
    p.add_argument("--results-dir", default=None, help="default: benchmarks/results (a temporary directory with --quick)")
    p.add_argument("--tasks", default=",".join(t.name for t in TASKS))
    p.add_argument("--bench-texts", type=int, default=2000, help="dev texts (a seeded sample) to time on")
    p.add_argument("--latency-texts", type=int, default=1000)
    p.add_argument("--throughput-texts", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--wait-minutes", type=float, default=70, help="how long to wait for benchmarks/foundation.py to finish and the load to fall"
    )
    p.add_argument("--max-load", type=float, default=0.8, help="1-minute load average under which measuring starts")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reuse", action="store_true", help="keep runs and bundles an interrupted invocation left in --work-dir")
    p.add_argument("--train-threads", type=int, default=1, help="torch threads for training (1: leaves the other core to others)")
    p.add_argument("--max-epochs", type=int, default=None, help="cap every model's epochs (fewer than the per-task defaults)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("zhcls").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # onnxruntime's quantizer logs advice on the root logger; this script uses "latency"
        handler.addFilter(lambda record: record.name != "root")
    from zhcls.export.bench import BenchSettings, bench

    data_dir = Path(args.data_dir).resolve()
    tasks = [t for t in TASKS if t.name in args.tasks.split(",")]
    checked = h.verify_data(data_dir, [r for t in tasks for r in (t.train, t.dev)])
    tmp = tempfile.TemporaryDirectory(prefix="zhcls-latency-")
    work = Path(args.work_dir) if args.work_dir else Path(tmp.name)
    results_dir = Path(args.results_dir) if args.results_dir else (work / "results" if args.quick else REPO / "benchmarks" / "results")
    results: dict[str, Any] = {
        "schema": 1,
        "quick": args.quick,
        "environment": environment(argv),
        "targets": TARGETS,
        "data": {"dir": str(data_dir), "sha256": checked},
        "reused_runs": args.reuse,
        "tasks": {},
    }
    settings = BenchSettings(latency_texts=args.latency_texts, throughput_texts=args.throughput_texts, rounds=args.rounds)
    if args.quick:
        settings = BenchSettings(latency_texts=100, throughput_texts=256, rounds=1, warmup=10)

    # 1. train and export everything (no timing here, so a loaded machine does not matter yet)
    prepared = {}
    for task in tasks:
        train_path, dev_path = data_dir / task.train, data_dir / task.dev
        n_train = 300 if args.quick else MAX_TRAIN[task.name]
        if n_train is not None:
            train_path = subsample(train_path, work / "data" / task.name / f"train{train_path.suffix}", n_train)
        if args.quick:
            dev_path = subsample(dev_path, work / "data" / task.name / f"dev{dev_path.suffix}", 200)
        train_ex, dev_ex = read(train_path, task), read(dev_path, task)
        bench_ex = random.Random(0).sample(dev_ex, min(args.bench_texts, len(dev_ex)))
        entry: dict[str, Any] = {
            "n_train": len(train_ex),
            "n_bench_texts": len(bench_ex),
            "mean_chars": round(float(np.mean([len(e.text) for e in bench_ex])), 1),
        }
        for model in (TEXTCNN, FASTTEXT):
            log.info("%s %s: training", task.name, model["name"])
            run_dir = work / "runs" / task.name / model["name"]
            trained = train_zhcls(task, model, train_path, dev_path, run_dir, args.quick, args.reuse, args.train_threads, args.max_epochs)
            log.info("%s %s: dev accuracy %.4f; exporting", task.name, model["name"], trained["dev_accuracy"])
            entry[model["name"]] = {"train": trained, "export": export(run_dir, work / "bundles" / task.name / model["name"], args.reuse)}
        native_epochs = 2 if args.quick else min(EPOCHS[task.name]["native"], args.max_epochs or EPOCHS[task.name]["native"])
        native = NativeFastText(train_ex, work / "native" / task.name, native_epochs, args.train_threads)
        entry["native"] = {"train_seconds": native.train_seconds, "dev_accuracy": native.accuracy(dev_ex), "params": NATIVE}
        results["tasks"][task.name] = entry
        prepared[task.name] = (bench_ex, native)

    # 2. measure, on a machine no other benchmark is loading
    conditions = wait_for_quiet(0 if args.quick else args.wait_minutes, args.max_load)
    results["measurement_conditions"] = conditions
    for task in tasks:
        bench_ex, native = prepared[task.name]
        entry = results["tasks"][task.name]
        for model in ("textcnn.v1", "fasttext.v1"):
            log.info("%s %s: benchmarking", task.name, model)
            m = entry[model]
            bundle = Path(m["export"]["fp32"]["path"])
            m["bench"] = bench(bundle, run=m["train"]["run_dir"], data=bench_ex, settings=settings)
            if model == "fasttext.v1":
                m["vs_native"] = compare_with_native(
                    bundle, native, [e.text for e in bench_ex], settings.latency_texts, settings.warmup, settings.rounds
                )
    conditions.update(foundation_running_at_end=foundation_running(), loadavg_at_end=[round(x, 2) for x in os.getloadavg()])
    results["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    results["verdicts"] = verdicts(results)
    results_dir.mkdir(parents=True, exist_ok=True)
    h.write_results(results_dir / "latency.json", results, lambda r: render_markdown(r) + "\n")
    log.info("results: %s", results_dir / "latency.md")
    for v in results["verdicts"]:
        log.info("%s %s: %s -> %s", "met " if v["met"] else "MISSED", v["task"], v["target"], v["measured"])
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
