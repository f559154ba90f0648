"""Augmentation benchmark: TextCNN without augmentation vs the default recipe vs label-safe mode, and the
throughput of every strategy.

    nice -n 19 .venv/bin/python benchmarks/augmentation.py                      # everything, in priority order
    nice -n 19 .venv/bin/python benchmarks/augmentation.py --only throughput
    nice -n 19 .venv/bin/python benchmarks/augmentation.py --tasks eprstmt/0,tnews/0 --seeds 0
    .venv/bin/python benchmarks/augmentation.py --report                         # rewrite the Markdown only

Cells are (task, variant, seed); variants:
- `none`: TextCNN on the train split as it is;
- `default`: the same config plus `[[augment]]` entries for zhcls.augment.DEFAULT_RECIPE (one copy per
  strategy per example), applied on the fly by `zhcls.training.run.train`;
- `guard`: the same copies, filtered by label-safe mode with the `none` model of the same task and seed
  (zhcls.augment.guard, min_confidence --guard-min-confidence), then trained on originals + kept copies.

Every variant gets the same optimizer step budget (--steps; epochs = ceil(steps / steps per epoch)), so
augmentation is compared at equal compute, with dev-based early stopping and checkpoint selection.
Test accuracy on the task's test split; nothing is tuned on test. One JSON entry per cell, written
atomically after each; a rerun skips cells already present (--force redoes them).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import _harness as h
from _harness import RESULTS, now

VARIANTS = ("none", "default", "guard")
FEW = {f"{name}/0": h.fewclue(name, "0") for name in ("tnews", "eprstmt", "iflytek", "csldcp")}  # train_0 / dev_0 / test_public
SHOP_SIZES = {"online_shopping_cat/500": 500, "online_shopping_cat/2000": 2000, "online_shopping_cat/all": None}
TASKS = list(FEW) + list(SHOP_SIZES)
# The order cells run in when the budget is short: the smallest, most informative first.
PRIORITY = ["eprstmt/0", "tnews/0", "online_shopping_cat/500", "online_shopping_cat/2000", "iflytek/0", "csldcp/0", "online_shopping_cat/all"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(h.default_data_dir()))
    ap.add_argument("--out", default=str(RESULTS / "augmentation.json"))
    ap.add_argument("--work", default="/tmp/zhcls-bench/augmentation")
    ap.add_argument("--tasks", default=",".join(PRIORITY))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--only", choices=["throughput", "accuracy"], default=None)
    ap.add_argument("--seed-major", action="store_true", help="run seed 0 of every task before seed 1 of any (default: task by task)")
    ap.add_argument("--steps", type=int, default=600, help="optimizer steps per cell (equal for every variant)")
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epoch-rule", choices=["ceil", "round"], default="ceil",
                    help="epochs = ceil or round of steps / steps per epoch (at least 1); round keeps a variant whose epoch is just under the budget from getting two")
    ap.add_argument("--guard-min-confidence", type=float, default=0.0)
    ap.add_argument("--shop-dev", type=int, default=2000, help="online_shopping dev rows used for selection (a fixed random subset)")
    ap.add_argument("--throughput-texts", type=int, default=300)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--report", action="store_true", help="only rewrite the Markdown from the JSON")
    args = ap.parse_args(argv)

    out = Path(args.out)
    results = h.load_results(out, {"invocations": [], "cells": {}, "throughput": {}, "errors": {}})  # resume: done cells are skipped
    if args.report:
        write_markdown(results, out.with_suffix(".md"))
        return 0
    import torch

    torch.set_num_threads(1)
    data_dir = Path(args.data_dir)
    results["invocations"].append(invocation(argv if argv is not None else sys.argv[1:]))
    results["data"] = verify_data(data_dir)
    save(results, out)
    failed = False
    if args.only in (None, "throughput") and (args.force or not results.get("throughput")):
        results["throughput"] = throughput(data_dir, Path(args.work), args.throughput_texts)
        save(results, out)
    if args.only in (None, "accuracy"):
        tasks = [t for t in args.tasks.split(",") if t]
        seeds = [int(s) for s in args.seeds.split(",") if s]
        order = [(t, s) for s in seeds for t in tasks] if args.seed_major else [(t, s) for t in tasks for s in seeds]
        for task, seed in order:
            for variant in [v for v in VARIANTS if v in args.variants.split(",")]:
                key = f"{task}|{variant}|{seed}"
                if key in results["cells"] and not args.force:
                    continue
                started = time.perf_counter()
                try:
                    cell = run_cell(task, variant, seed, data_dir, Path(args.work), args)
                except Exception:  # noqa: BLE001 - recorded, the other cells still run
                    results["errors"][key] = traceback.format_exc()
                    failed = True
                    print(f"FAILED {key}", file=sys.stderr, flush=True)
                    save(results, out)
                    continue
                cell["wall_seconds"] = round(time.perf_counter() - started, 1)
                cell["invocation"] = len(results["invocations"]) - 1
                results["cells"][key] = cell
                results["errors"].pop(key, None)
                save(results, out)
                print(f"{key}: test acc {cell['test']['accuracy']:.4f} ({cell['wall_seconds']:.0f}s)", file=sys.stderr, flush=True)
    results["invocations"][-1]["finished"] = now()
    save(results, out)
    return 1 if failed else 0


# -- data ---------------------------------------------------------------------------------------------
def task_files(task: str) -> tuple[list[str], str, str]:
    t = FEW.get(task) or h.online_shopping("cat")
    return [t.train, t.dev, t.test], t.text_field, t.label_field


def verify_data(data_dir: Path) -> dict[str, str]:
    return h.verify_data(data_dir, [f for t in TASKS for f in task_files(t)[0]])


def load_task(task: str, data_dir: Path):
    """(train, dev, test) Examples; online_shopping train subsampled (fixed seed 0) and dev cut to --shop-dev."""
    from zhcls.data.readers import ReadOptions, read_examples

    (tr, dv, te), tf, lf = task_files(task)
    opts = ReadOptions("auto", tf, lf)
    train, dev, test = (read_examples(data_dir / f, opts) for f in (tr, dv, te))
    if task in SHOP_SIZES:
        size = SHOP_SIZES[task]
        if size is not None:
            train = random.Random(0).sample(train, size)
        dev = random.Random(1).sample(dev, min(len(dev), 2000))
    return train, dev, test


def write_jsonl(path: Path, examples) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": e.text, "label": e.label}, ensure_ascii=False) + "\n" for e in examples), encoding="utf-8")
    return path


# -- one cell -----------------------------------------------------------------------------------------
def run_cell(task: str, variant: str, seed: int, data_dir: Path, work: Path, args) -> dict[str, Any]:
    from zhcls.augment import DEFAULT_RECIPE, augment_train, guard
    from zhcls.config import AugmentStep, config_from_dict
    from zhcls.models.base import load_model
    from zhcls.training.run import train

    train_ex, dev_ex, test_ex = load_task(task, data_dir)
    d = work / task.replace("/", "_")
    files = {"dev": write_jsonl(d / "dev.jsonl", dev_ex), "test": write_jsonl(d / "test.jsonl", test_ex)}
    steps = [{"name": name, "rate": rate, "n": 1} for name, rate in DEFAULT_RECIPE.items()]
    info: dict[str, Any] = {"task": task, "variant": variant, "seed": seed, "n_train_original": len(train_ex)}
    augment: list[dict] = []
    train_file = write_jsonl(d / "train.jsonl", train_ex)
    if variant == "default":
        augment = steps
        n_rows = len(train_ex) * (1 + len(steps))  # upper bound; copies dropped as duplicates make it smaller
    elif variant == "guard":
        none_run = work / "runs" / task.replace("/", "_") / f"none_{seed}"
        if not (none_run / "metrics.json").is_file():
            raise RuntimeError(f"guard needs the none run of {task} seed {seed} first ({none_run})")
        model = load_model(none_run)
        held = list(dev_ex) + list(test_ex)
        all_rows, stats = augment_train(train_ex, [AugmentStep(**s) for s in steps], held_out=held, seed=seed)
        copies = all_rows[len(train_ex):]
        g = guard(model, train_ex, copies, min_confidence=args.guard_min_confidence)
        info["augment"] = {**stats, "kept": len(g.kept), "dropped": g.counts, "min_confidence": args.guard_min_confidence}
        train_file = write_jsonl(d / f"train_guard_{seed}.jsonl", list(train_ex) + g.kept)
        n_rows = len(train_ex) + len(g.kept)
    else:
        n_rows = len(train_ex)
    per_epoch = math.ceil(n_rows / args.batch_size)
    epochs = max(1, (math.ceil if args.epoch_rule == "ceil" else round)(args.steps / per_epoch))
    raw = {
        "data": {"train": str(train_file), "dev": str(files["dev"]), "test": str(files["test"]), "format": "jsonl", "text_field": "text", "label_field": "label"},
        "model": {"name": "textcnn.v1", "max_len": args.max_len},
        "training": {"seed": seed, "epochs": epochs, "batch_size": args.batch_size, "eval_every": max(10, min(per_epoch, 50)), "patience": 6,
                     "metric": "accuracy", "threads": 1},
        "augment": augment,
    }
    cfg = config_from_dict(raw, source=f"{task}|{variant}")
    run_dir = work / "runs" / task.replace("/", "_") / f"{variant}_{seed}"
    result = train(cfg, run_dir, force=True)
    m = result.metrics
    info.update(
        test={k: m["test"][k] for k in ("accuracy", "macro_f1")}, dev={k: m["dev"][k] for k in ("accuracy", "macro_f1")},
        n_train=m["n_train"], train_seconds=m["train_seconds"], steps=m.get("steps"), best_step=m.get("best_step"), epochs=epochs,
        config=json.loads(json.dumps(raw)), run_dir=str(run_dir),
    )
    if "augment" in m:
        info["augment"] = m["augment"]
    return info


# -- throughput ---------------------------------------------------------------------------------------
def throughput(data_dir: Path, work: Path, n_texts: int) -> dict[str, Any]:
    """Augmented rows per second for every strategy (rate 0.2, 4 copies per text) on tnews and eprstmt
    train texts; fit time (corpus resources) reported apart. synonym.v1 and vectors.v1 read a word2vec file
    trained here on eprstmt's unlabeled texts, and a synonym file derived from its neighbours (synthetic:
    for timing only, no Cilin dictionary is available offline)."""
    import numpy as np

    from zhcls.augment import Augmenter, build_strategy
    from zhcls.data.readers import ReadOptions, read_examples
    from zhcls.registry import augmenters
    from zhcls.text.vectors import train_vectors

    texts = [e.text for f, tf in (("fewclue/tnews/train_few_all.json", "sentence"), ("fewclue/eprstmt/train_few_all.json", "sentence"))
             for e in read_examples(data_dir / f, ReadOptions("jsonl", tf, None))]
    texts = random.Random(0).sample(texts, min(n_texts, len(texts)))
    work.mkdir(parents=True, exist_ok=True)
    vec = work / "eprstmt_words.vec"
    syn = work / "eprstmt_synthetic_cilin.txt"
    if not vec.is_file():
        unl = [e.text for e in read_examples(data_dir / "fewclue/eprstmt/unlabeled.json", ReadOptions("jsonl", "sentence", None))][:5000]
        train_vectors(unl, vec, tokenizer="jieba.v1", dim=50, epochs=3, min_count=3)
    if not syn.is_file():
        from gensim.models import KeyedVectors

        kv = KeyedVectors.load_word2vec_format(str(vec))
        lines = [f"Zz{i:05d}= {w} " + " ".join(x for x, _ in kv.most_similar(w, topn=3)) for i, w in enumerate(kv.index_to_key[:2000]) if len(w) > 1]
        syn.write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = {"synonym.v1": {"path": str(syn)}, "vectors.v1": {"path": str(vec), "min_similarity": 0.3}}
    out: dict[str, Any] = {"texts": len(texts), "copies_per_text": 4, "rate": 0.2, "mean_chars": round(sum(map(len, texts)) / len(texts), 1), "strategies": {}}
    for name in augmenters.names():
        strategy = build_strategy(name, {"rate": 0.2, **options.get(name, {})})
        aug = Augmenter([strategy], n=4, seed=0)
        t0 = time.perf_counter()
        aug.fit(texts)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = sum(len(aug.variants(t, np.random.default_rng([0, i]))) for i, t in enumerate(texts))
        secs = time.perf_counter() - t0
        out["strategies"][name] = {"rows": rows, "seconds": round(secs, 3), "rows_per_s": round(rows / secs, 1), "fit_seconds": round(fit_s, 3)}
        print(f"throughput {name}: {rows / secs:.0f} rows/s", file=sys.stderr, flush=True)
    return out


# -- bookkeeping --------------------------------------------------------------------------------------
def invocation(argv: list[str]) -> dict[str, Any]:
    env = h.environment("benchmarks/augmentation.py", argv, "torch", prefix="nice -n 19 .venv/bin/python")
    env["git_commit"] = env["git"]["commit"]  # where the Markdown has always read it
    return env


def save(results: dict[str, Any], out: Path) -> None:
    h.atomic_write(out, json.dumps(results, ensure_ascii=False, indent=1) + "\n")
    write_markdown(results, out.with_suffix(".md"))


def write_markdown(results: dict[str, Any], path: Path) -> None:
    import statistics as st

    inv = results.get("invocations", [])
    lines = ["# zhcls augmentation benchmark", ""]
    if inv:
        m = inv[0]["machine"]
        lines += [
            f"- machine: {m['cpu_model']}, os.cpu_count() = {m['os_cpu_count']}, shared with two other engineers' jobs; run under `nice -n 19`, torch threads = 1",
            f"- dates: {inv[0]['started']} to {inv[-1].get('finished', inv[-1]['started'])}",
            f"- versions: {inv[-1]['versions']}; git {inv[-1]['git_commit'][:12]} (plus uncommitted work in progress)",
            "- commands:", *[f"  {i}. {x['started']}: `{x['command']}`" for i, x in enumerate(inv)], "",
        ]
    lines += [
        "TextCNN (`textcnn.v1`, char.v1, max_len 128, batch 16) with the same optimizer step budget in every variant "
        "(`--steps`, default 600: epochs = max(1, ceil(steps / steps per epoch)), so where one epoch is longer than the budget, "
        "as on online_shopping `all`, each variant trains up to one epoch; dev-based early stopping, patience 6 evaluations). Test accuracy in percent (test_public for FewCLUE, "
        "test.csv for online_shopping `cat`). `default` = `[[augment]]` with zhcls.augment.DEFAULT_RECIPE, one copy per strategy "
        "per example; `guard` = the same copies filtered by label-safe mode with the `none` model of the same seed.",
        "",
        "| task | n train | none | default | Δ default | guard | Δ guard | seeds | guard kept / dropped | steps run (none / default / guard) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    cells = results.get("cells", {})
    deltas: dict[str, list[float]] = {"default": [], "guard": []}
    small_deltas: dict[str, list[float]] = {"default": [], "guard": []}
    wins = {"default": 0, "guard": 0}
    pairs = {"default": 0, "guard": 0}
    for task in TASKS:
        acc = {v: {c["seed"]: c["test"]["accuracy"] * 100 for c in cells.values() if c["task"] == task and c["variant"] == v} for v in VARIANTS}
        if not any(acc.values()):
            continue

        def fmt(values: list[float]) -> str:
            if not values:
                return "–"
            return f"{st.mean(values):.2f}" + (f" ± {st.stdev(values):.2f}" if len(values) > 1 else "")

        row = [task, str(next(c["n_train_original"] for c in cells.values() if c["task"] == task))]
        row.append(fmt(list(acc["none"].values())))
        for v in ("default", "guard"):
            paired = [acc[v][s] - acc["none"][s] for s in sorted(acc[v]) if s in acc["none"]]
            per_seed = f" ({' '.join(f'{d:+.1f}' for d in paired)})" if len(paired) > 1 else ""
            row += [fmt(list(acc[v].values())), (f"{st.mean(paired):+.2f}{per_seed}" if paired else "–")]
            if paired:
                deltas[v].append(st.mean(paired))
                wins[v] += sum(d > 0 for d in paired)
                pairs[v] += len(paired)
                if task != "online_shopping_cat/all":
                    small_deltas[v].append(st.mean(paired))
        row.append(",".join(str(s) for s in sorted(set().union(*[set(a) for a in acc.values()]))))
        g = [c.get("augment", {}) for c in cells.values() if c["task"] == task and c["variant"] == "guard"]
        row.append("; ".join(f"{x.get('kept')}/{sum((x.get('dropped') or {}).values())}" for x in g) or "–")
        steps = {v: [c.get("steps") or 0 for c in cells.values() if c["task"] == task and c["variant"] == v] for v in VARIANTS}
        row.append(" / ".join(f"{st.mean(steps[v]):.0f}" if steps[v] else "–" for v in VARIANTS))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Δ = mean over seeds of (variant − none) with the same seed, in accuracy points (per seed in parentheses)."]
    rounded = [k for k, c in cells.items() if "--epoch-rule round" in inv[c.get("invocation", 0)]["command"]]
    if rounded:
        lines.append(f"- run with `--epoch-rule round` (the ceil rule gave them about twice the steps of the other variants): {', '.join(rounded)}")
    for v in ("default", "guard"):
        if small_deltas[v]:
            d = small_deltas[v]
            lines.append(
                f"- {v}: mean Δ over the small-data tasks measured (≤ 2,000 examples): {st.mean(d):+.2f} points ({len(d)} tasks; target ≥ +2); "
                f"median task Δ {st.median(d):+.2f}; mean without the task with the largest Δ {st.mean(sorted(d)[:-1]) if len(d) > 1 else float('nan'):+.2f}; "
                f"better than `none` in {wins[v]} of {pairs[v]} paired (task, seed) runs"
            )
    done = {k.rsplit("|", 2)[0] + "|" + k.rsplit("|", 2)[1] + "|" + k.rsplit("|", 1)[1] for k in cells}
    missing = [f"{t}|{v}|{s}" for t in TASKS for s in (0, 1, 2) for v in VARIANTS if f"{t}|{v}|{s}" not in done]
    lines += ["", f"**Missing cells** (not run within the CPU budget; rerun the command to resume): {len(missing)} of {len(TASKS) * 9}."
              if missing else f"Every cell ran ({len(TASKS) * 9}).", ""]
    by_task: dict[str, list[str]] = {}
    for key in missing:
        t, v, s = key.split("|")
        by_task.setdefault(t, []).append(f"{v}/{s}")
    lines += [f"- {t}: {', '.join(x)}" for t, x in by_task.items()]
    if results.get("errors"):
        lines += ["", "Errors (tracebacks in the JSON): " + ", ".join(results["errors"])]
    tp = results.get("throughput") or {}
    if tp:
        lines += [
            "", "## Throughput", "",
            f"Augmented rows per second, one strategy at rate {tp['rate']}, {tp['copies_per_text']} copies per text, {tp['texts']} tnews + eprstmt "
            f"texts (mean {tp['mean_chars']} characters), single process, checks included (protected spans, duplicates, redraws). "
            "Fit = building corpus resources once (POS vocabulary, frequencies). synonym.v1 uses a synthetic Cilin-style file derived from "
            "word2vec neighbours (timing only). `rows` below 1,200 (300 texts x 4): texts where the strategy has nothing to vary "
            "(equivalent.v1 needs Latin letters, digits or numbers; synonym.v1 and vectors.v1 need a known word) give fewer copies.", "",
            "| strategy | rows/s | rows | seconds | fit s |", "|---|---:|---:|---:|---:|",
        ]
        for name, r in tp["strategies"].items():
            lines.append(f"| {name} | {r['rows_per_s']:.0f} | {r['rows']} | {r['seconds']:.2f} | {r['fit_seconds']:.2f} |")
    h.atomic_write(path, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
