"""Compression benchmark on online_shopping_10_cats `cat` (10 product categories, 50,213 train reviews):
issue 14's two online_shopping cells, through `zhcls.compress` as `zhcls compress` runs it.

    nice -n 10 .venv/bin/python benchmarks/compress_shopping.py bert --bert-train 20000   # 75 min on one shared core
    nice -n 10 .venv/bin/python benchmarks/compress_shopping.py textcnn --parent RUN    # a finished textcnn.v1 run
    .venv/bin/python benchmarks/compress_shopping.py --report              # rewrite the Markdown from the JSON

bert: no pretrained weights can be downloaded, so the model to compress is a BERT (4 layers, hidden 256,
  4 heads, FFN 1024) initialized at random (`zhcls.models.transformer.tiny_checkpoint` with those sizes: a
  local checkpoint whose vocabulary is the train split's characters) and trained as `transformer.v1` on the
  train split; then `compress(parent, out, width=W)` for W = 2/3 and 1/2 (heads and FFN neurons of every
  layer), recovered by distillation from the parent. Target: test accuracy within 1 point of the parent.
textcnn: the parent is a finished textcnn.v1 run on the same task (by default the one benchmarks/build_bench.py
  trains; it is copied first, never written to); cells width 1/2, 2/3, 1/4 with half the vocabulary, recovered
  on a seeded sample of the train split (`--max-train`), and the budget search at half the parent's p50.
  Targets (width 1/2 + vocabulary 1/2): size <= 50% of the parent's bundle, p50 <= 70%, test accuracy loss
  <= 0.5 point; the search: the chosen variant is the most accurate (dev) of those within budget.

Latency: every bundle of a part is loaded in one process and timed on the same test texts, one at a time, one
thread, tokenization included, in interleaved rounds (median of the rounds' p50s). Results:
benchmarks/results/compress_shopping.{json,md}, written after every cell; a rerun skips finished cells.
Work: /tmp/zhcls-bench/compress-shopping/ (`--work`).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import _harness as h
from _harness import RESULTS

log = logging.getLogger("compress-shopping")
OUT = [RESULTS / "compress_shopping.json"]  # --results replaces it (a smoke run's results stay out of the repository)
TASK = h.online_shopping("cat")
BUILD_PARENT = "/tmp/zhcls-build-bench/online_shopping/cat/build/runs/textcnn.v1"
BERT = {"layers": 4, "hidden_size": 256, "heads": 4, "intermediate_size": 1024}
BERT_CELLS = {"w2/3": "2/3", "w1/2": "1/2"}
# name -> (width, share of the vocabulary or None for all of it); width 0: the n-gram bag alone, a fasttext.v1
TEXTCNN_CELLS = {"w1/2+v1/2": ("1/2", 0.5), "w2/3+v1/2": ("2/3", 0.5), "w1/4+v1/2": ("1/4", 0.5), "w0": ("0", None), "w0+v1/2": ("0", 0.5)}
MAIN = "w1/2+v1/2"
STOPPED = {"early_stopping": "stopped by early stopping", "epoch_budget": "stopped by its epoch budget"}
TARGETS = {"bert_points": -1.0, "size": 0.5, "p50": 0.7, "textcnn_points": -0.5}


# -- the BERT ---------------------------------------------------------------------------------------------
def bert_parent(data_dir: Path, work: Path, args: argparse.Namespace) -> Path:
    """A random 4-layer BERT on the train split's characters, trained as transformer.v1."""
    from zhcls.config import config_from_dict
    from zhcls.models.transformer import tiny_checkpoint
    from zhcls.training.run import train

    run = work / "parent"
    if (run / "metrics.json").is_file():
        return run
    train_file = bert_train_file(data_dir, work, args.bert_train)
    ckpt = work / "checkpoint"
    if not (ckpt / "config.json").is_file():
        from zhcls.data.readers import ReadOptions, read_examples

        train_ex = read_examples(train_file, ReadOptions(text_field=TASK.text_field, label_field=TASK.label_field))
        tiny_checkpoint(ckpt, [e.text for e in train_ex], max_positions=args.bert_max_length, **BERT)
    cfg = config_from_dict({
        "data": {"train": str(train_file), "dev": str(data_dir / TASK.dev), "test": str(data_dir / TASK.test),
                 "text_field": TASK.text_field, "label_field": TASK.label_field},
        "model": {"name": "transformer.v1", "path": str(ckpt), "max_length": args.bert_max_length, "warmup_ratio": 0.1},
        "training": {"epochs": args.bert_epochs, "batch_size": 32, "lr": args.bert_lr, "weight_decay": 0.01, "metric": "accuracy",
                     "threads": args.threads, "device": "cpu", "patience": 2},
    }, source="benchmarks/compress_shopping.py (bert parent)")
    train(cfg, run, check=False)  # resumes an interrupted run
    return run


def bert_train_file(data_dir: Path, work: Path, n: int) -> Path:
    """The train split, or (n > 0) a seeded sample of n of its reviews written under `work` (never into the repository)."""
    if n <= 0:
        return data_dir / TASK.train
    import csv
    import random

    out = work / f"train_{n}.csv"
    if not out.is_file():
        with open(data_dir / TASK.train, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        keep = sorted(random.Random(0).sample(range(len(rows)), n))
        work.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows[i] for i in keep)
    return out


def run_bert(args: argparse.Namespace, results: dict[str, Any], data_dir: Path) -> None:
    from zhcls.compress import compress, parse_width

    part = results.setdefault("bert", {"cells": {}})
    part["invocations"] = [*part.get("invocations", []), h.environment("benchmarks/compress_shopping.py", sys.argv[1:], "torch", "transformers", "onnxruntime")]
    part["settings"] = {"train": args.bert_train or "all", "max_length": args.bert_max_length, "epochs": args.bert_epochs, "lr": args.bert_lr, "recover_epochs": args.bert_recover_epochs,
                        "batch_size": 32, "threads": args.threads, **BERT}
    work = Path(args.work) / "bert"
    started = time.perf_counter()
    parent = bert_parent(data_dir, work, args)
    part["parent"] = parent_summary(parent)
    save(results)
    bundles = parent_bundles(parent, work, ("fp32",))
    for name, width in BERT_CELLS.items():
        out = work / name.replace("/", "_")
        if not (out / "metrics.json").is_file():
            compress(parent, out, width=parse_width(width), recover_epochs=args.bert_recover_epochs, quantize="none")
        part["cells"][name] = cell_summary(out)
        bundles[f"{name}/fp32"] = out / "bundle"
        measure(part, bundles, test_texts(data_dir, args.latency_texts), args.rounds)
        save(results)
    part["wall_seconds"] = round(time.perf_counter() - started, 1)
    save(results)


# -- the TextCNN ------------------------------------------------------------------------------------------
def textcnn_parent(src: Path, work: Path) -> Path:
    """A copy of the finished run (its checkpoint left out): compress reads it, and nothing writes beside
    another benchmark's run."""
    run = work / "parent"
    if (run / "metrics.json").is_file():
        return run
    if not (src / "metrics.json").is_file():
        sys.exit(f"error: {src} is not a finished run yet (no metrics.json); wait for it, or pass --parent")
    shutil.copytree(src, run, ignore=shutil.ignore_patterns("checkpoint"), dirs_exist_ok=True)
    return run


def run_textcnn(args: argparse.Namespace, results: dict[str, Any], data_dir: Path) -> None:
    from zhcls.compress import compress, parse_width, search
    from zhcls.compress.run import CompressError
    from zhcls.compress.search import DEFAULT_WIDTHS
    from zhcls.models.base import load_model

    part = results.setdefault("textcnn", {"cells": {}})
    part["invocations"] = [*part.get("invocations", []), h.environment("benchmarks/compress_shopping.py", sys.argv[1:], "torch", "onnxruntime")]
    part["settings"] = {"recover_epochs": args.recover_epochs, "max_train": args.max_train, "parent_source": args.parent}
    work = Path(args.work) / "textcnn"
    started = time.perf_counter()
    parent = textcnn_parent(Path(args.parent), work)
    part["parent"] = parent_summary(parent)
    n_vocab = len(load_model(parent).featurizer_.vocab)
    bundles = parent_bundles(parent, work, ("fp32", "int8"))
    texts = test_texts(data_dir, args.latency_texts)
    for name in args.cells.split(",") if args.cells else []:
        width, share = TEXTCNN_CELLS[name]
        out = work / name.replace("/", "_").replace("+", "-")
        if not (out / "metrics.json").is_file():
            compress(parent, out, width=parse_width(width), max_vocab=None if share is None else int(round(share * n_vocab)), recover_epochs=args.recover_epochs,
                     max_train=args.max_train, quantize="none")
        if not (out / "bundle-int8" / "manifest.json").is_file():
            from zhcls.export.onnx import export_bundle

            export_bundle(out, out / "bundle-int8", quantize="int8")
        part["cells"][name] = cell_summary(out)
        bundles[f"{name}/fp32"], bundles[f"{name}/int8"] = out / "bundle", out / "bundle-int8"
        measure(part, bundles, texts, args.rounds)
        save(results)
    if not args.no_search:
        budget = round(part["latency"]["bundles"]["parent/fp32"]["p50_ms"] / 2, 4)
        keys = ("name", "precision", "recovered", "dev", "test_accuracy", "p50_ms", "size_mb", "within_budget", "chosen", "note")
        entry: dict[str, Any] = {"budget_ms": budget, "widths": ", ".join(DEFAULT_WIDTHS), "command": f"zhcls compress PARENT -o OUT --budget-ms {budget} --recover-epochs "
                                 f"{args.recover_epochs} --max-train {args.max_train}"}
        try:
            res = search(parent, work / "search", budget_ms=budget, recover_epochs=args.recover_epochs, max_train=args.max_train)
            entry.update(chosen=f"{res.chosen['name']} {res.chosen['precision']}", reason=res.reason, rows=res.candidates)
        except CompressError as exc:
            entry.update(error=exc.message, rows=json.loads((work / "search" / "compress" / "search.json").read_text(encoding="utf-8"))["candidates"])
        entry["candidates"] = [{k: r.get(k) for k in keys} for r in entry.pop("rows")]
        part["search"] = entry
    part["wall_seconds"] = round(time.perf_counter() - started, 1)
    save(results)


# -- shared -----------------------------------------------------------------------------------------------
def parent_summary(run: Path) -> dict[str, Any]:
    import tomllib

    m = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    model = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))["model"]
    out = {"run": str(run), "model": model, "dev": m["dev"]["accuracy"], "test": m["test"]["accuracy"], "test_macro_f1": m["test"]["macro_f1"],
           "train_seconds": m.get("train_seconds"), "epochs": (m.get("fit") or {}).get("epochs"), "stopped": (m.get("fit") or {}).get("stopped"),
           "n_train": m.get("n_train")}
    trunc = (m.get("fit") or {}).get("truncation")
    if trunc:
        out["truncation"] = trunc
    return out


def cell_summary(out: Path) -> dict[str, Any]:
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    c = m["compress"]
    rec, fit = c.get("recovery", {}), m.get("fit", {})
    return {
        "run": str(out), "width": c["width_label"], "max_vocab": c["max_vocab"], "max_train": c.get("max_train"), "pruned": c["pruned"],
        "dev_pruned_only": c.get("pruned_only", {}).get("dev", {}).get("accuracy"),
        "dev": m["dev"]["accuracy"], "test": m["test"]["accuracy"], "test_macro_f1": m["test"]["macro_f1"],
        "recovery": {k: rec.get(k) for k in ("n_transfer", "loss_before", "loss_after", "kept", "dev_start", "dev_best")}
        | {"epochs_run": fit.get("epochs"), "stopped": fit.get("stopped"), "best_at_last_step": fit.get("best_step") == fit.get("steps")},
        "recover_seconds": m["train_seconds"],
    }


def parent_bundles(parent: Path, work: Path, precisions: tuple[str, ...]) -> dict[str, Path]:
    from zhcls.export.onnx import export_bundle

    out = {}
    for precision in precisions:
        bundle = work / f"parent-bundle-{precision}"
        if not (bundle / "manifest.json").is_file():
            export_bundle(parent, bundle, quantize="int8" if precision == "int8" else "none")
        out[f"parent/{precision}"] = bundle
    return out


def test_texts(data_dir: Path, n: int) -> list[str]:
    """`n` test reviews spread evenly over the file, which is ordered by category (its first 1,000 are books and tablets)."""
    from zhcls.export.onnx import spread

    return spread([e.text for e in TASK.read(data_dir)[2]], n)


def measure(part: dict[str, Any], bundles: dict[str, Path], texts: list[str], rounds: int) -> None:
    """Every bundle so far, interleaved rounds in this process; the cells' ratios against the parent of the same precision."""
    import numpy as np

    from zhcls.export.onnx import measure_latency
    from zhcls.serve.predictor import Predictor

    predictors = {k: Predictor(v, threads=1) for k, v in bundles.items()}
    p50: dict[str, list[float]] = {k: [] for k in bundles}
    for _ in range(rounds):
        for k, pred in predictors.items():
            p50[k].append(measure_latency(pred, texts)["p50_ms"])
    timing = {}
    for k, bundle in bundles.items():
        mf = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        timing[k] = {"p50_ms": round(float(np.median(p50[k])), 4), "p50_rounds": p50[k], "total_bytes": mf["total_bytes"], "export_p50_ms": mf["latency"]["p50_ms"]}
    part["latency"] = {"texts": len(texts), "rounds": rounds, "threads": 1, "bundles": timing, "loadavg_after": h.machine()["loadavg_at_start"]}
    for name, cell in part["cells"].items():
        for precision in ("fp32", "int8"):
            mine, theirs = timing.get(f"{name}/{precision}"), timing.get(f"parent/{precision}")
            if mine and theirs:
                cell[precision] = {"size_ratio": round(mine["total_bytes"] / theirs["total_bytes"], 4), "p50_ratio": round(mine["p50_ms"] / theirs["p50_ms"], 4),
                                   "total_bytes": mine["total_bytes"], "p50_ms": mine["p50_ms"]}
        cell["test_change_points"] = round(100 * (cell["test"] - part["parent"]["test"]), 2)
        cell["dev_change_points"] = round(100 * (cell["dev"] - part["parent"]["dev"]), 2)


def save(results: dict[str, Any]) -> None:
    h.write_results(OUT[0], results, markdown)


# -- Markdown ---------------------------------------------------------------------------------------------
def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def load(avg: list[float] | None) -> str:
    return " ".join(f"{x:.1f}" for x in avg) if avg else "?"


def header(inv: dict[str, Any], lat: dict[str, Any]) -> list[str]:
    mach = inv.get("machine", {})
    return [
        f"- command: `{inv.get('command', '?')}`",
        f"- started: {inv.get('started', '?')}; machine: {mach.get('cpu_model', '?')}, {mach.get('os_cpu_count', '?')} cores shared with other "
        f"benchmarks (load average {load(mach.get('loadavg_at_start'))} at the start, {load(lat.get('loadavg_after'))} after the last timing round): "
        "**the timings come from a shared, loaded machine**",
        f"- versions: {', '.join(f'{k} {v}' for k, v in inv.get('versions', {}).items())}; git {inv.get('git', {}).get('commit', '?')[:10]}"
        f"{' (tracked files modified)' if inv.get('git', {}).get('dirty_tracked_files') else ''}",
        f"- latency: every bundle timed in one process on the same {lat.get('texts', '?')} test reviews (spread over the file), one at a time, 1 thread, tokenization "
        f"included, {lat.get('rounds', '?')} interleaved rounds, median p50; sizes are the bundles' total bytes",
    ]


def bert_markdown(b: dict[str, Any]) -> list[str]:
    s, p, lat = b.get("settings", {}), b.get("parent", {}), b.get("latency", {})
    pb = lat.get("bundles", {}).get("parent/fp32", {})
    trunc = p.get("truncation", {})
    lines = ["## A small BERT from random initialization", "", *header(b.get("invocations", [{}])[-1], lat),
             f"- model: BERT, {s.get('layers')} layers, hidden {s.get('hidden_size')}, {s.get('heads')} heads, FFN {s.get('intermediate_size')}, "
             "initialized at random (`tiny_checkpoint` with these sizes; vocabulary: the train split's characters, and `##` pieces of the non-CJK ones); "
             f"trained as `transformer.v1`, at most {s.get('epochs')} epochs with early stopping (patience 2), batch 32, lr {s.get('lr')} with 10% linear warmup and decay, "
             f"{s.get('threads')} thread; dev accuracy {h.pct(p.get('dev'))}, test accuracy {h.pct(p.get('test'))}, "
             f"{p.get('epochs', '?')} epochs in {p.get('train_seconds', 0) / 60:.0f} min ({STOPPED.get(p.get('stopped'), 'stopped: unrecorded')})",
             f"- **deviations from the issue**: max_length {s.get('max_length')} tokens, not the 128+ the reviews would need "
             f"({trunc.get('truncated', '?')} of {trunc.get('n', '?')} train reviews truncated, the longest {trunc.get('longest', '?')} tokens); "
             f"train: {'a seeded sample of ' + str(s.get('train')) if s.get('train') != 'all' else 'all'} of the 50,213 reviews, full dev (6,257) and test (6,303): "
             "the parent and its two recoveries on all reviews would take about 2.5 times as long, more than a session of 2 shared cores. "
             "A BERT pretrained on Chinese would start far higher; this one learns from these reviews alone",
             f"- compression: `zhcls compress PARENT -o OUT --width W --recover-epochs {s.get('recover_epochs')}` "
             "(`zhcls.compress.compress`): heads and FFN neurons of every layer ranked by |dL/dmask| on the train split (Michel et al., 4,096 texts), "
             f"the rest cut out; recovery distills the parent on its train reviews for at most {s.get('recover_epochs')} epochs, best on dev kept",
             "", f"Target: test accuracy within {-TARGETS['bert_points']:.0f} point of the unpruned model after recovery.", ""]
    rows = []
    if pb:
        n_params = next(iter(b.get("cells", {}).values()), {}).get("pruned", {}).get("parameters", ["—"])[0]
        rows.append(["parent", f"{s.get('heads')} x {s.get('layers')}", s.get("intermediate_size"), f"{n_params:,}" if isinstance(n_params, int) else n_params, h.pct(p.get("dev")), "—",
                     h.pct(p.get("test")), "—", f"{pb['total_bytes'] / 1e6:.2f} MB", f"{pb['p50_ms']:.3f} ms", "—"])
    for name, c in b.get("cells", {}).items():
        if "fp32" not in c:
            continue
        pr = c["pruned"]
        rows.append([name, f"{pr['heads'][1][0]} x {len(pr['heads'][1])}", pr["ffn"][1][0], f"{pr['parameters'][1]:,} ({100 * pr['parameters'][1] / pr['parameters'][0]:.0f}%)",
                     f"{h.pct(c['dev_pruned_only'])} → {h.pct(c['dev'])}", f"{c['dev_change_points']:+.2f}", h.pct(c["test"]), f"{c['test_change_points']:+.2f}",
                     f"{100 * c['fp32']['size_ratio']:.1f}%", f"{100 * c['fp32']['p50_ratio']:.1f}% ({c['fp32']['p50_ms']:.3f} ms)",
                     met(c["test_change_points"] >= TARGETS["bert_points"])])
    lines += h.md_table(["cell", "heads x layers", "FFN", "parameters", "dev acc (pruned → recovered)", "Δ dev", "test acc", "Δ test (points)",
                         "size", "p50", "accuracy target"], rows, "llrrrrrrrrl")
    lines += ["", "Size and p50 of the cells are ratios to the parent's fp32 bundle. Δ: points against the parent after recovery. "
              "A recovered cell can score above its parent: recovery is more training (on the parent's soft targets), "
              "begun where the parent's own run had stopped.", ""]
    for name, c in b.get("cells", {}).items():
        r = c.get("recovery", {})
        lines.append(f"- {name}: recovery {c['recover_seconds'] / 60:.0f} min, {r.get('epochs_run')} epochs on {r.get('n_transfer')} texts, "
                     f"transfer loss {r.get('loss_before')} → {r.get('loss_after')}, kept: {r.get('kept')}"
                     + (f"; {STOPPED[r['stopped']]}" if r.get("stopped") in STOPPED else "")
                     + (", dev still improving at its last epoch" if r.get("stopped") == "epoch_budget" and r.get("best_at_last_step") else ""))
    missing = [n for n in BERT_CELLS if n not in b.get("cells", {})]
    if missing:
        lines.append(f"- not run yet: {', '.join(missing)}")
    return lines + [""]


def textcnn_markdown(t: dict[str, Any]) -> list[str]:
    s, p, lat = t.get("settings", {}), t.get("parent", {}), t.get("latency", {})
    pm, bl = p.get("model", {}), lat.get("bundles", {})
    lines = ["## TextCNN", "", *header(t.get("invocations", [{}])[-1], lat),
             f"- parent: a finished textcnn.v1 run on this task (`{s.get('parent_source')}`, copied; by default build_bench.py's): {pm.get('tokenizer')} tokens, "
             f"max_len {pm.get('max_len')}, {pm.get('num_filters')} filters x kernels {'/'.join(map(str, pm.get('kernel_sizes', [])))}, embeddings {pm.get('embed_dim')}, "
             f"n-gram bag {pm.get('buckets')} buckets x {pm.get('bag_dim')}; {p.get('epochs', '?')} epochs on all {p.get('n_train', '?')} train reviews; "
             f"dev accuracy {h.pct(p.get('dev'))}, test accuracy {h.pct(p.get('test'))}",
             f"- compression: `zhcls compress PARENT -o OUT --width W --max-vocab N --recover-epochs {s.get('recover_epochs')} --max-train {s.get('max_train')}`: "
             f"ranking and recovery on a seeded sample of {s.get('max_train')} of the 50,213 train reviews (recovery on all of them at this machine's speed "
             "would take hours per cell), at most "
             f"{s.get('recover_epochs')} epochs of distillation from the parent"
             + (" (width 0, a fasttext.v1: its own learning rate and at least 40 epochs, early stopping ending them)" if any(n.startswith("w0") for n in t.get("cells", {})) else "")
             + ", best on dev kept", "",
             f"Targets for width 1/2 + vocabulary 1/2: size <= {100 * TARGETS['size']:.0f}% of the parent's bundle, p50 <= {100 * TARGETS['p50']:.0f}%, "
             f"test accuracy loss <= {-TARGETS['textcnn_points']} point after recovery.", ""]
    rows = []
    pf, pi = bl.get("parent/fp32"), bl.get("parent/int8")
    if pf and pi:
        first = next(iter(t.get("cells", {}).values()), {}).get("pruned", {})
        rows.append(["parent", pm.get("num_filters", "?"), first.get("vocab", ["?"])[0], first.get("ngram_rows", ["?"])[0], h.pct(p.get("dev")), h.pct(p.get("test")), "—",
                     f"{pf['total_bytes'] / 1e6:.2f} MB", f"{pf['p50_ms']:.4f} ms", f"{pi['total_bytes'] / 1e6:.2f} MB", f"{pi['p50_ms']:.4f} ms"])
    for name, c in t.get("cells", {}).items():
        if "fp32" not in c:
            continue
        pr = c["pruned"]
        bold = "**" if name == MAIN else ""
        rows.append([f"{bold}{name}{bold}", pr.get("num_filters", [128, 128])[1], pr["vocab"][1], pr.get("ngram_rows", ["?", "?"])[1],
                     f"{h.pct(c['dev_pruned_only'])} → {h.pct(c['dev'])}", h.pct(c["test"]), f"{c['test_change_points']:+.2f}",
                     f"{100 * c['fp32']['size_ratio']:.1f}%", f"{100 * c['fp32']['p50_ratio']:.1f}%",
                     f"{100 * c['int8']['size_ratio']:.1f}%" if "int8" in c else "—", f"{100 * c['int8']['p50_ratio']:.1f}%" if "int8" in c else "—"])
    lines += h.md_table(["cell", "filters", "vocab", "n-gram rows", "dev acc (pruned → recovered)", "test acc", "Δ test (points)", "size fp32", "p50 fp32",
                         "size int8", "p50 int8"], rows)
    lines += ["", "Cells' sizes and p50s are ratios to the parent's bundle of the same precision.", ""]
    main = t.get("cells", {}).get(MAIN)
    if main and "fp32" in main:
        lines += [f"Width 1/2 + vocabulary 1/2 (fp32 against fp32): size {100 * main['fp32']['size_ratio']:.1f}% ({met(main['fp32']['size_ratio'] <= TARGETS['size'])}), "
                  f"p50 {100 * main['fp32']['p50_ratio']:.1f}% ({met(main['fp32']['p50_ratio'] <= TARGETS['p50'])}), test accuracy "
                  f"{main['test_change_points']:+.2f} points ({met(main['test_change_points'] >= TARGETS['textcnn_points'])}).", ""]
    bag = h.width0_summary(t.get("cells", {}), "test_change_points")
    if bag:
        lines += [bag + ". The targets above are about width 1/2"
                  + ("." if MAIN in t.get("cells", {}) else "; this run has no such cell (compress_shopping.md has them, from another parent)."), ""]
    for name, c in t.get("cells", {}).items():
        r = c.get("recovery", {})
        lines.append(f"- {name}: recovery {c['recover_seconds'] / 60:.0f} min, {r.get('epochs_run')} epochs on {r.get('n_transfer')} texts, kept: {r.get('kept')}")
    lines.append("")
    sr = t.get("search")
    if sr:
        lines += [f"### Budget search: p50 <= {sr['budget_ms']} ms (half the parent's p50)", "", f"`{sr['command']}` (widths {sr.get('widths', '1, 2/3, 1/2, 1/4')} x vocabulary 1, 1/2 x fp32/int8).", "",
                  f"Nothing chosen: {sr['error']}" if "error" in sr else f"Chosen **{sr['chosen']}**: {sr['reason']}.", ""]
        ok = [r for r in sr["candidates"] if r["within_budget"] and r["recovered"] is not False]
        if "error" not in sr:
            best = max(ok, key=lambda r: r["dev"]) if ok else None
            chosen = next((r for r in sr["candidates"] if r.get("chosen")), None)
            lines += [f"Target (the chosen variant is the most accurate on dev of those within budget): {met(best is not None and chosen is not None and chosen['dev'] >= best['dev'])}.", ""]
        else:
            lines += ["Target (the chosen variant is the most accurate of those within budget): **missed**, no variant meets the budget.", ""]
        rows = []
        for r in sorted(sr["candidates"], key=lambda x: -x["dev"]):
            mark = "**" if r.get("chosen") else ""
            rec = {None: "parent", True: "yes", False: "no (over budget as pruned)"}[r["recovered"]]
            rows.append([f"{mark}{r['name']}{mark}", r["precision"], rec, h.pct(r["dev"]), h.pct(r["test_accuracy"]), r["p50_ms"], r["size_mb"], "yes" if r["within_budget"] else "no"])
        lines += h.md_table(["candidate", "precision", "recovered", "dev acc", "test acc", "p50 ms", "size MB", "within budget"], rows, "lllrrrrl") + [""]
    return lines


def markdown(r: dict[str, Any]) -> str:
    lines = ["# Compression on online_shopping_10_cats `cat`", "",
             "Issue 14's online_shopping cells (`benchmarks/compress_shopping.py`); TextCNN on tnews few_all is in `compress.md`.", ""]
    # a results file of one part (--results) leaves the other out
    lines += bert_markdown(r["bert"]) if "bert" in r else []
    lines += textcnn_markdown(r["textcnn"]) if "textcnn" in r else []
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", nargs="?", choices=("bert", "textcnn"))
    p.add_argument("--data-dir", default=str(h.default_data_dir()))
    p.add_argument("--work", default="/tmp/zhcls-bench/compress-shopping")
    p.add_argument("--threads", type=int, default=1, help="training threads (latency is always 1 thread)")
    p.add_argument("--bert-max-length", type=int, default=64)
    p.add_argument("--bert-epochs", type=int, default=4)
    p.add_argument("--bert-lr", type=float, default=5e-4)
    p.add_argument("--bert-recover-epochs", type=int, default=2)
    p.add_argument("--parent", default=BUILD_PARENT, help="textcnn: the finished textcnn.v1 run to compress (copied first)")
    p.add_argument("--recover-epochs", type=int, default=3, help="textcnn: recovery epochs")
    p.add_argument("--max-train", type=int, default=20000, help="textcnn: train reviews ranking and recovery use (a seeded sample)")
    p.add_argument("--no-search", action="store_true", help="textcnn: skip the budget search")
    p.add_argument("--cells", default=",".join(TEXTCNN_CELLS), help="textcnn: comma-separated cells ('' for none: the search alone)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--latency-texts", type=int, default=1000)
    p.add_argument("--bert-train", type=int, default=0, help="bert: a seeded sample of this many train reviews (0: all)")
    p.add_argument("--results", help="results JSON (default benchmarks/results/compress_shopping.json)")
    p.add_argument("--report", action="store_true", help="only rewrite the Markdown from the JSON")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.results:
        OUT[0] = Path(args.results)
    results = h.load_results(OUT[0], {})
    if args.report or args.part is None:
        save(results)
        return
    data_dir = Path(args.data_dir).resolve()
    results.setdefault("data", {}).update(dir=str(data_dir), sha256=h.verify_data(data_dir, TASK.files()))
    import torch

    torch.set_num_threads(args.threads)
    (run_bert if args.part == "bert" else run_textcnn)(args, results, data_dir)


if __name__ == "__main__":
    main()
