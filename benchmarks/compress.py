"""Compression benchmark: TextCNN on FewCLUE tnews few_all, pruned (width, vocabulary) and recovered by
distillation from the unpruned run, against that run: bundle size, p50 latency, accuracy.

    nice -n 19 .venv/bin/python benchmarks/compress.py                  # resumable; about 15 min on 2 shared cores
    .venv/bin/python benchmarks/compress.py --report                    # rewrite the Markdown from the JSON
    .venv/bin/python benchmarks/compress.py --search                    # also the budget search (half the parent's p50)

Cells, each `zhcls.compress.compress` on the same parent run (configs/tnews_textcnn.toml: chars, max_len 64, 128
filters x (2, 3, 4), n-gram bag of 100k buckets x 64):
  parent          the unpruned run
  w1/2            width 1/2 (filters and n-gram buckets), full vocabulary
  v1/2            full width, half the vocabulary
  w2/3+v1/2, w1/2+v1/2, w1/4+v1/2   width and vocabulary together
  w1/2+v1/2+unlabeled                ... recovered on the train texts plus 5,000 of tnews' unlabeled titles (`--unlabeled`)
  w0, w0+v1/2     width 0: the CNN dropped, the n-gram bag kept (a fasttext.v1 run), recovered the same way
  w0+unlabeled    ... recovered on the train texts plus 20,000 unlabeled titles

Size is the bundle's total_bytes (fp32 and int8). Latency: every bundle is loaded in this one process and
timed on the same test texts, one at a time, on one thread, tokenization included, in interleaved rounds (the
median of the rounds' p50s), so the ratios compare like with like on a machine that other jobs share.
Accuracy: test (and dev) before and after recovery, the parent's and the cell's from the same evaluation.
Results: benchmarks/results/compress.{json,md}, written after every cell. Work: /tmp/zhcls-bench/compress/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from _harness import REPO, cpu_model, dist_versions, git_state, verify_data, width0_summary

RESULTS = REPO / "benchmarks" / "results"
log = logging.getLogger("compress-bench")
FILES = ("fewclue/tnews/train_few_all.json", "fewclue/tnews/dev_few_all.json", "fewclue/tnews/test_public.json", "fewclue/tnews/unlabeled.json")
CELLS = {  # name -> (width, share of the parent's vocabulary, unlabeled titles in recovery); the cells the targets are about first
    "w1/2+v1/2": ("1/2", 0.5, None),
    "w2/3+v1/2": ("2/3", 0.5, None),
    "w1/4+v1/2": ("1/4", 0.5, None),
    "w1/2": ("1/2", None, None),
    "v1/2": ("1", 0.5, None),
    "w1/2+v1/2+unlabeled": ("1/2", 0.5, 5000),
    "w0": ("0", None, None),
    "w0+v1/2": ("0", 0.5, None),
    "w0+unlabeled": ("0", None, 20000),
}
MAIN = "w1/2+v1/2"
TARGETS = {"size": 0.5, "p50": 0.7, "accuracy_points": -0.5}


def parent_run(data_dir: Path, work: Path, threads: int) -> Path:
    from zhcls.config import load_config
    from zhcls.training.run import train

    run = work / "parent"
    os.environ["ZHCLS_DATA_DIR"] = str(data_dir)  # the parent's config names its data by it; compress reads it again on a resumed run
    if not (run / "metrics.json").is_file():
        cfg = load_config(REPO / "configs" / "tnews_textcnn.toml", [f"training.threads={threads}"])
        train(cfg, run)
    return run


def compress_cell(parent: Path, work: Path, name: str, args: argparse.Namespace) -> Path:
    from zhcls.compress import compress, parse_width
    from zhcls.models.base import load_model

    width, vocab_share, n_unlabeled = CELLS[name]
    out = work / name.replace("/", "_").replace("+", "-")
    if not (out / "metrics.json").is_file():
        n_vocab = len(load_model(parent).featurizer_.vocab)
        max_vocab = None if vocab_share is None else int(round(vocab_share * n_vocab))
        unlabeled = [Path(args.data_dir) / FILES[3]] if n_unlabeled else []
        compress(parent, out, width=parse_width(width), max_vocab=max_vocab, recover_epochs=args.recover_epochs, unlabeled=unlabeled,
                 max_unlabeled=n_unlabeled, quantize="none", force=args.force)
    for precision in ("fp32", "int8"):
        bundle = out / ("bundle" if precision == "fp32" else "bundle-int8")
        if not (bundle / "manifest.json").is_file():
            from zhcls.export.onnx import export_bundle

            export_bundle(out, bundle, quantize="int8" if precision == "int8" else "none")
    return out


def parent_bundles(parent: Path, work: Path) -> dict[str, Path]:
    from zhcls.export.onnx import export_bundle

    out = {}
    for precision in ("fp32", "int8"):
        bundle = work / f"parent-bundle-{precision}"
        if not (bundle / "manifest.json").is_file():
            export_bundle(parent, bundle, quantize="int8" if precision == "int8" else "none")
        out[precision] = bundle
    return out


def time_bundles(bundles: dict[str, Path], texts: list[str], rounds: int) -> dict[str, dict[str, float]]:
    """p50/p99 of one text at a time, 1 thread, every bundle in each round (interleaved), median over rounds;
    and `graph_p50_ms`, the ONNX graph alone on the same texts already tokenized: the part pruning shrinks."""
    import numpy as np

    from zhcls.export.onnx import measure_latency
    from zhcls.serve.predictor import Predictor

    predictors = {k: Predictor(v, threads=1) for k, v in bundles.items()}
    p50: dict[str, list[float]] = {k: [] for k in bundles}
    p99: dict[str, list[float]] = {k: [] for k in bundles}
    graph: dict[str, list[float]] = {k: [] for k in bundles}
    for _ in range(rounds):
        for k, pred in predictors.items():
            lat = measure_latency(pred, texts)
            p50[k].append(lat["p50_ms"])
            p99[k].append(lat["p99_ms"])
            graph[k].append(graph_p50(pred, texts))
    med = lambda xs: round(float(np.median(xs)), 4)  # noqa: E731
    return {k: {"p50_ms": med(p50[k]), "p99_ms": med(p99[k]), "graph_p50_ms": med(graph[k]), "p50_rounds": p50[k]} for k in bundles}


def graph_p50(predictor, texts: list[str]) -> float:
    import numpy as np

    f = predictor.featurizer
    feeds = []
    for text in texts:
        seq = f.encode_tokens(f.full_tokens(text)[: f.max_len])
        n = len(seq)
        seq = seq + [0] * max(0, predictor.min_len - n)
        feeds.append({"ids": np.array([seq], dtype=np.int64), "lengths": np.array([n], dtype=np.int64)})
    run, out = predictor._session.run, predictor._outputs
    times = []
    for feed in feeds:
        start = time.perf_counter()
        run(out, feed)
        times.append(time.perf_counter() - start)
    return float(np.percentile(np.asarray(times) * 1e3, 50))


def manifest(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def run(args: argparse.Namespace, results: dict[str, Any]) -> None:
    from zhcls.data.readers import ReadOptions, read_examples

    data_dir = Path(args.data_dir).resolve()
    results["data"] = {"dir": str(data_dir), "sha256": verify_data(data_dir, FILES)}
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    parent = parent_run(data_dir, work, args.threads)
    pm = json.loads((parent / "metrics.json").read_text(encoding="utf-8"))
    results["parent"] = {"run": str(parent), "dev": pm["dev"]["accuracy"], "test": pm["test"]["accuracy"], "test_macro_f1": pm["test"]["macro_f1"],
                         "train_seconds": pm["train_seconds"]}
    bundles = {f"parent/{k}": v for k, v in parent_bundles(parent, work).items()}
    texts = [e.text for e in read_examples(data_dir / FILES[2], ReadOptions("auto", "sentence", "label_desc"))][: args.latency_texts]
    cells = results.setdefault("cells", {})
    for name in CELLS:
        out = compress_cell(parent, work, name, args)
        m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        c = m["compress"]
        cells[name] = {
            "run": str(out), "width": c["width_label"], "max_vocab": c["max_vocab"], "pruned": c["pruned"],
            "dev_pruned_only": c.get("pruned_only", {}).get("dev", {}).get("accuracy"),
            "dev": m["dev"]["accuracy"], "test": m["test"]["accuracy"], "test_macro_f1": m["test"]["macro_f1"],
            "recovery": {k: c["recovery"][k] for k in ("loss_before", "loss_after", "kept", "dev_start", "dev_best")} | {"epochs_run": m.get("fit", {}).get("epochs")},
            "recover_seconds": m["train_seconds"],
        }
        bundles[f"{name}/fp32"], bundles[f"{name}/int8"] = out / "bundle", out / "bundle-int8"
        measure(results, bundles, texts, args.rounds)  # after every cell, every bundle so far: a partial run still compares like with like
        save(results)
    if args.search:  # the budget (half the parent's p50), then one variants can meet: an eighth of its size, its p50 + 10%
        lat = results["latency"]["bundles"]["parent/fp32"]
        results["search"] = [budget_search(parent, work, {"budget_ms": round(lat["p50_ms"] / 2, 4)}, args),
                             budget_search(parent, work, {"budget_ms": round(1.1 * lat["p50_ms"], 4), "budget_mb": round(lat["total_bytes"] / 8 / 2**20, 3)}, args)]
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    save(results)


def measure(results: dict[str, Any], bundles: dict[str, Path], texts: list[str], rounds: int) -> None:
    timing = time_bundles(bundles, texts, rounds)
    results["latency"] = {"texts": len(texts), "rounds": rounds, "threads": 1, "bundles": timing,
                          "loadavg_after": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    for key, bundle in bundles.items():
        mf = manifest(bundle)
        timing[key].update(total_bytes=mf["total_bytes"], graph=mf["input"]["graph"], export_p50_ms=mf["latency"]["p50_ms"])
        if "int8" in mf["parity"]:
            timing[key]["int8_accuracy_change_dev"] = mf["parity"]["int8"].get("accuracy_change")
    for name, cell in results["cells"].items():
        if f"{name}/fp32" not in timing:
            continue
        for precision in ("fp32", "int8"):
            mine, theirs = timing[f"{name}/{precision}"], timing[f"parent/{precision}"]
            cell[precision] = {"size_ratio": round(mine["total_bytes"] / theirs["total_bytes"], 4), "p50_ratio": round(mine["p50_ms"] / theirs["p50_ms"], 4),
                               "graph_p50_ratio": round(mine["graph_p50_ms"] / theirs["graph_p50_ms"], 4),
                               "total_bytes": mine["total_bytes"], "p50_ms": mine["p50_ms"], "graph_p50_ms": mine["graph_p50_ms"]}
        cell["accuracy_change_points"] = round(100 * (cell["test"] - results["parent"]["test"]), 2)
        cell["dev_change_points"] = round(100 * (cell["dev"] - results["parent"]["dev"]), 2)


def budget_search(parent: Path, work: Path, budget: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    """`zhcls compress PARENT -o work/search --budget-ms X [--budget-mb Y]`; candidates are cached across budgets."""
    from zhcls.compress import search
    from zhcls.compress.run import CompressError
    from zhcls.compress.search import DEFAULT_WIDTHS

    out = work / "search"
    keys = ("name", "precision", "recovered", "dev", "test_accuracy", "p50_ms", "size_mb", "within_budget", "chosen", "note")
    widths = ", ".join(DEFAULT_WIDTHS)
    try:
        result = search(parent, out, recover_epochs=args.recover_epochs, **budget)
    except CompressError as exc:
        summary = json.loads((out / "compress" / "search.json").read_text(encoding="utf-8"))
        return {**budget, "widths": widths, "error": exc.message, "candidates": [{k: r.get(k) for k in keys} for r in summary["candidates"]]}
    rows = [{k: r.get(k) for k in keys} for r in result.candidates]
    return {**budget, "widths": widths, "chosen": f"{result.chosen['name']} {result.chosen['precision']}", "reason": result.reason, "candidates": rows}


# -- results -----------------------------------------------------------------------------------------
def save(results: dict[str, Any]) -> None:
    from zhcls.artifact import write_json, write_text

    results["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(RESULTS / "compress.json", results)
    write_text(RESULTS / "compress.md", markdown(results))


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def markdown(r: dict[str, Any]) -> str:
    inv = r.get("invocations", [{}])[-1]
    p = r.get("parent", {})
    lat = r.get("latency", {}).get("bundles", {})
    lines = [
        "# Compression: TextCNN on FewCLUE tnews few_all",
        "",
        f"- command: `{inv.get('command', '?')}`",
        f"- date: {inv.get('date', '?')}; machine: {inv.get('cpu_model', '?')}, {inv.get('os_cpu_count', '?')} cores shared with other "
        f"jobs (load average {inv.get('loadavg', '?')} when this invocation started, {r.get('latency', {}).get('loadavg_after', '?')} after the "
        "last timing round): **the timings come from a shared, at times loaded machine**; which invocation trained the parent and the "
        "cells, and what else ran then: the results JSON's `invocations` and the commit that added them",
        f"- versions: {', '.join(f'{k} {v}' for k, v in inv.get('versions', {}).items())}; git {inv.get('git', {}).get('commit', '?')[:10]}",
        "- parent: `configs/tnews_textcnn.toml` (characters, max_len 64, 128 filters x kernels 2/3/4, dropout 0.5, n-gram bag 100k buckets x 64), "
        f"dev accuracy {pct(p.get('dev'))}, test accuracy {pct(p.get('test'))}",
        f"- compression: `zhcls.compress.compress(parent, out, width=W, max_vocab=N, recover_epochs={r.get('recover_epochs', '?')})`, "
        "the same as `zhcls compress RUN -o OUT --width W --max-vocab N`; recovery distills the parent on its 1,185 train texts (the +unlabeled cells: and 5,000 unlabeled titles, `--unlabeled unlabeled.json --max-unlabeled 5000`; w0+unlabeled: 20,000), early-stopped on dev; "
        "width 0 trains a fasttext.v1, with its own learning rate and for at least 40 epochs, early stopping ending them",
        f"- latency: every bundle timed in one process on the same {r.get('latency', {}).get('texts', '?')} test texts, one at a time, 1 thread, "
        f"tokenization included, {r.get('latency', {}).get('rounds', '?')} interleaved rounds, median p50",
        "",
        f"Targets for width 1/2 + vocabulary pruning: size <= {100 * TARGETS['size']:.0f}% of the parent's bundle, p50 <= {100 * TARGETS['p50']:.0f}%, "
        f"accuracy loss <= {-TARGETS['accuracy_points']} point after recovery.",
        "",
        "| cell | filters | vocab | n-gram rows | test acc | Δ test (points) | dev acc (pruned → recovered) | size fp32 | p50 fp32 | graph p50 fp32 | size int8 | p50 int8 |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    pf, pi = lat.get("parent/fp32", {}), lat.get("parent/int8", {})
    if pf:
        lines.append(f"| parent | 128 | {r['cells'][MAIN]['pruned']['vocab'][0] if MAIN in r.get('cells', {}) else '?'} | 100000 | {pct(p.get('test'))} | — | {pct(p.get('dev'))} | "
                     f"{pf['total_bytes'] / 1e6:.2f} MB | {pf['p50_ms']:.4f} ms | {pf.get('graph_p50_ms', 0):.4f} ms | {pi.get('total_bytes', 0) / 1e6:.2f} MB | {pi.get('p50_ms', 0):.4f} ms |")
    for name, c in r.get("cells", {}).items():
        if "fp32" not in c:
            continue
        pr = c["pruned"]
        filters = pr.get("num_filters", [128, 128])[1]
        bold = "**" if name == MAIN else ""
        lines.append(
            f"| {bold}{name}{bold} | {filters} | {pr['vocab'][1]} | {pr.get('ngram_rows', ['?', '?'])[1]} | {pct(c['test'])} | {c['accuracy_change_points']:+.2f} | "
            f"{pct(c['dev_pruned_only'])} → {pct(c['dev'])} | {100 * c['fp32']['size_ratio']:.1f}% | {100 * c['fp32']['p50_ratio']:.1f}% | "
            f"{100 * c['fp32'].get('graph_p50_ratio', float('nan')):.1f}% | "
            f"{100 * c['int8']['size_ratio']:.1f}% | {100 * c['int8']['p50_ratio']:.1f}% |"
        )
    lines += ["", "Sizes and p50s in the cells are ratios to the parent's bundle of the same precision. p50 is end to end (normalize, tokenize, "
              "hash the n-grams, run the graph, softmax); graph p50 is the ONNX graph alone on the same texts already tokenized.", ""]
    main = r.get("cells", {}).get(MAIN)
    if main and "fp32" in main:
        met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
        lines += [
            f"Width 1/2 + vocabulary pruning (fp32 against fp32): size {100 * main['fp32']['size_ratio']:.1f}% ({met(main['fp32']['size_ratio'] <= TARGETS['size'])}), "
            f"p50 {100 * main['fp32']['p50_ratio']:.1f}% ({met(main['fp32']['p50_ratio'] <= TARGETS['p50'])}), "
            f"test accuracy {main['accuracy_change_points']:+.2f} points ({met(main['accuracy_change_points'] >= TARGETS['accuracy_points'])}). "
            f"int8 against int8: size {100 * main['int8']['size_ratio']:.1f}%, p50 {100 * main['int8']['p50_ratio']:.1f}%.",
            "",
        ]
    bag = width0_summary(r.get("cells", {}), "accuracy_change_points")
    if bag:
        lines += [bag + ". It is a different model, not the width-1/2 target's cell; the targets above are about that one.", ""]
    searches = r.get("search") or []
    for s in searches if isinstance(searches, list) else [searches]:
        budget = ", ".join(x for x in (f"p50 <= {s['budget_ms']} ms" if s.get("budget_ms") is not None else "",
                                      f"size <= {s['budget_mb']} MB" if s.get("budget_mb") is not None else "") if x)
        lines += [f"## Budget search: {budget}", "",
                  f"`zhcls compress PARENT -o OUT --budget-ms {s.get('budget_ms')}" + (f" --budget-mb {s['budget_mb']}`" if s.get("budget_mb") else "`")
                  + f" (widths {s.get('widths', '1, 2/3, 1/2, 1/4')} x vocabulary 1, 1/2 x fp32/int8; candidates cached across budgets).", ""]
        lines += [f"Nothing chosen: {s['error']}" if "error" in s else f"Chosen **{s['chosen']}**: {s['reason']}.", ""]
        lines += ["| candidate | precision | recovered | dev acc | test acc | p50 ms | size MB | within budget |", "|---|---|---|---:|---:|---:|---:|---|"]
        for row in sorted(s.get("candidates", []), key=lambda x: -x["dev"]):
            mark = "**" if row.get("chosen") else ""
            rec = {None: "parent", True: "yes", False: "no (over budget as pruned)"}[row["recovered"]]
            lines.append(f"| {mark}{row['name']}{mark} | {row['precision']} | {rec} | {pct(row['dev'])} | {pct(row['test_accuracy'])} | "
                         f"{row['p50_ms']} | {row['size_mb']} | {'yes' if row['within_budget'] else 'no'} |")
        lines.append("")
    lines += [
        "## Elsewhere",
        "",
        "- online_shopping_10_cats `cat` (50k reviews): the TextCNN cells, the budget search at half the TextCNN p50 and the small BERT from random "
        "initialization (4 layers, hidden 256, 4 heads) at width 2/3 and 1/2 are `benchmarks/compress_shopping.py`'s: compress_shopping.md; "
        "width 0 and the budget search with it, on another TextCNN parent: compress_shopping_bag.md.",
    ]
    if not searches:
        lines.append("- the budget search on tnews (`--search`) was not run.")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("ZHCLS_DATA_DIR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--work", default="/tmp/zhcls-bench/compress")
    p.add_argument("--threads", type=int, default=2, help="training threads (latency is always 1 thread)")
    p.add_argument("--recover-epochs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--latency-texts", type=int, default=1000)
    p.add_argument("--search", action="store_true", help="also the budget search at half the parent's p50")
    p.add_argument("--force", action="store_true")
    p.add_argument("--report", action="store_true", help="only rewrite the Markdown from the JSON")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    path = RESULTS / "compress.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if args.report:
        save(results)
        return
    results.setdefault("invocations", []).append({
        "command": " ".join(shlex.quote(a) for a in ["python", *sys.argv]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(), "os_cpu_count": os.cpu_count(), "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "platform": platform.platform(), "versions": dist_versions("torch", "onnxruntime", "numpy"), "git": git_state(),
    })
    results["recover_epochs"] = args.recover_epochs
    run(args, results)


if __name__ == "__main__":
    main()
