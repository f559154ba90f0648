"""Foundation benchmark: every zhcls model against the tuned baselines users would reach for.

    .venv/bin/python benchmarks/foundation.py                 # full run (about 100 min on 2 cores)
    .venv/bin/python benchmarks/foundation.py --quick         # smoke run on small subsets (minutes)
    .venv/bin/python benchmarks/foundation.py --tasks tnews,eprstmt/0 --models textcnn.v1,baseline.tfidf_lr

zhcls models are trained through the library (`config_from_dict` + `training.run.train`); the baselines are
fastText (fasttext-wheel, autotuned on dev) and scikit-learn char 1-3-gram TF-IDF + LogisticRegression (C
chosen on dev). Every number is computed by `zhcls.eval.metrics.classification_metrics` on the test split;
nothing is tuned on test. Results are written after every (task, model) with atomic writes, and a rerun
skips entries already in the JSON (pass --force to redo them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import multiprocessing
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import _harness as h
from _harness import REPO, TASKS, Task, atomic_write

__all__ = ["TASKS", "Task", "atomic_write", "read_task", "run_fasttext_baseline", "run_tfidf_baseline", "verify_data"]
log = logging.getLogger("foundation")

ZHCLS_MODELS = ("textcnn.v1", "bigru.v1", "fasttext.v1", "tfidf.v1")
BASELINES = ("baseline.fasttext", "baseline.tfidf_lr")
ALL_MODELS = ZHCLS_MODELS + BASELINES
LR_C_GRID = (3.0, 10.0, 30.0, 100.0)
LR_MAX_FEATURES = 300_000  # as tfidf.v1; unbounded char 1-3-grams x 119 classes ran lbfgs out of 23 GB
# The TF-IDF baseline measured before this benchmark existed (test accuracy on few_all), quoted in the summary.
EARLIER_TFIDF = {"tnews": 0.43, "iflytek": 0.52, "csldcp": 0.59}


def run_order(task: Task) -> int:
    """online_shopping first (target 1; the neural models get one epoch), then FewCLUE few_all (target 2),
    then the FewCLUE train_0 splits: on a loaded machine the runs the targets need finish first."""
    return 0 if task.large else (1 if task.name.endswith("/few_all") else 2)


# -- hyper-parameters (chosen from data size and the time budget, never from test) ---------------------
def zhcls_config(task: Task, model: str, n_train: int, args: argparse.Namespace) -> dict[str, Any]:
    """The [model] and [training] sections for one zhcls model on one task.

    The budget (about 100 minutes on 2 shared cores for everything) sets the sizes: on FewCLUE each neural
    model gets about --few-steps optimizer steps (3 to 30 epochs) with early stopping on dev; on
    online_shopping (50k reviews) a fixed small number of epochs (--large-epochs).
    """
    training: dict[str, Any] = {"threads": args.threads, "metric": args.metric, "seed": 42}
    opts: dict[str, Any] = {}
    if model == "tfidf.v1":
        training["epochs"] = 1
        opts["max_iter"] = args.lr_max_iter
    elif task.large:
        opts["max_len"] = args.large_max_len
        training.update(batch_size=64, patience=1, epochs=_per_model(args.large_epochs)[model])
        opts.update(_per_model_opts(args.large_model_opts).get(model, {}))
    else:
        opts["max_len"] = args.few_max_len
        batch = 16 if n_train < 500 else 32
        steps_per_epoch = -(-n_train // batch)
        training.update(batch_size=batch, patience=3, epochs=min(30, max(3, -(-args.few_steps // steps_per_epoch))))
    if args.quick:
        training.update(epochs=2, patience=0)
    return {"model": {"name": model, **opts}, "training": training}


def _per_model(spec: str) -> dict[str, int]:
    """Parse `textcnn.v1=2,bigru.v1=2` into {"textcnn.v1": 2, ...}."""
    out = {}
    for item in spec.split(","):
        name, _, value = item.partition("=")
        out[name.strip()] = int(value)
    return out


def _per_model_opts(spec: str) -> dict[str, dict[str, int]]:
    """Parse `textcnn.v1:num_filters=64,bigru.v1:hidden_size=96` into {"textcnn.v1": {"num_filters": 64}, ...}."""
    out: dict[str, dict[str, int]] = {}
    for item in filter(None, (i.strip() for i in spec.split(","))):
        name, _, kv = item.partition(":")
        key, _, value = kv.partition("=")
        out.setdefault(name, {})[key] = int(value)
    return out


# -- data ---------------------------------------------------------------------------------------------
def verify_data(data_dir: Path, tasks: list[Task]) -> dict[str, str]:
    """Check every file the selected tasks read against SHA256SUMS; exit loudly on any mismatch."""
    return h.verify_data(data_dir, [p for t in tasks for p in (t.train, t.dev, t.test)])


def subset_task(task: Task, data_dir: Path, out_dir: Path, sizes: tuple[int, int, int]) -> Task:
    """A copy of `task` on random subsets (quick mode), written under out_dir in the original format."""
    paths = []
    for split, rel, n in zip(("train", "dev", "test"), (task.train, task.dev, task.test), sizes):
        src = data_dir / rel
        lines = [line + "\n" for line in src.read_text(encoding="utf-8").split("\n") if line.strip()]
        header, body = (lines[:1], lines[1:]) if src.suffix == ".csv" else ([], lines)
        if src.suffix == ".csv":  # reviews may span lines: sample parsed rows, not raw lines
            import csv
            import io

            rows = list(csv.reader(io.StringIO("".join(body), newline="")))
            rows = random.Random(0).sample(rows, min(n, len(rows)))
            buf = io.StringIO(newline="")
            csv.writer(buf, lineterminator="\n").writerows(rows)
            text = "".join(header) + buf.getvalue()
        else:
            text = "".join(random.Random(0).sample(body, min(n, len(body))))
        dest = out_dir / task.name.replace("/", "_") / f"{split}{src.suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        paths.append(str(dest))
    return Task(task.name, *paths, task.text_field, task.label_field, task.large)


def read_task(task: Task, data_dir: Path):
    return task.read(data_dir)


# -- the runners: each returns an entry {"test": {...}, "dev": {...}, "train_seconds", ...} ----------------
def run_zhcls(task: Task, model: str, data_dir: Path, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from zhcls.config import config_from_dict, resolved_dict
    from zhcls.training.run import train

    n_train = sum(1 for _ in open(data_dir / task.train, encoding="utf-8"))
    raw = zhcls_config(task, model, n_train, args)
    raw["data"] = {
        "train": str(data_dir / task.train),
        "dev": str(data_dir / task.dev),
        "test": str(data_dir / task.test),
        "text_field": task.text_field,
        "label_field": task.label_field,
    }
    cfg = config_from_dict(raw, source=f"{task.name}:{model}")

    def progress(kind: str, info: dict[str, Any]) -> None:
        if kind == "eval":
            log.info("  %s %s eval %s", task.name, model, {k: v for k, v in info.items() if k != "best"})

    result = train(cfg, run_dir, force=True, progress=progress)
    m = result.metrics
    resolved = resolved_dict(cfg)
    resolved.pop("data", None)
    entry = {
        "test": _headline(m["test"]),
        "dev": _headline(m["dev"]),
        "train_seconds": m["train_seconds"],
        "n_train": m["n_train"],
        "config": resolved,
        "run_dir": str(run_dir),
    }
    for key in ("best_step", "steps"):
        if key in m:
            entry[key] = m[key]
    history_file = run_dir / "log.jsonl"
    if history_file.is_file():
        history = [json.loads(line) for line in history_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        entry["evals"] = len(history)
        if model == "tfidf.v1":
            entry["dev_grid"] = history
    return entry


FASTTEXT_MEMORY_CAP = 12 << 30


FASTTEXT_DEADLINE_FACTOR = 5  # autotune's wall-clock deadline: this many times its duration, plus 5 minutes


def _autotune_capped(train: str, dev: str, duration: int, threads: int, out: str) -> None:
    import resource

    import fasttext

    resource.setrlimit(resource.RLIMIT_AS, (FASTTEXT_MEMORY_CAP, FASTTEXT_MEMORY_CAP))
    model = fasttext.train_supervised(input=train, autotuneValidationFile=dev, autotuneDuration=duration, thread=threads, verbose=0)
    model.save_model(out)


def run_fasttext_baseline(task: Task, data_dir: Path, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """fastText on characters, every hyper-parameter autotuned on dev for a bounded time."""
    import fasttext

    from zhcls.eval.metrics import classification_metrics

    train_ex, dev_ex, test_ex = read_task(task, data_dir)
    labels = sorted({e.label for e in train_ex})
    to_ft = {label: "".join(label.split()) or "_" for label in labels}  # fastText labels cannot hold spaces
    from_ft = {v: k for k, v in to_ft.items()}
    if len(from_ft) != len(to_ft):
        raise RuntimeError("labels collide once their spaces are removed")

    def chars(text: str) -> str:
        return " ".join(ch for ch in text if not ch.isspace())

    run_dir.mkdir(parents=True, exist_ok=True)
    for split, examples in (("train", train_ex), ("dev", dev_ex)):
        with open(run_dir / f"{split}.txt", "w", encoding="utf-8") as f:
            for e in examples:
                f.write(f"__label__{to_ft.get(e.label, ''.join(e.label.split()))} {chars(e.text)}\n")
    duration = args.fasttext_duration_large if task.large else args.fasttext_duration_few
    started = time.perf_counter()
    model_file = run_dir / "autotuned.bin"
    model_file.unlink(missing_ok=True)
    # In a child with a memory cap: autotune's random search can try bucket x dim tables of 20+ GB, and
    # the kernel's OOM killer then takes this whole benchmark with it. A capped child fails alone.
    child = multiprocessing.get_context("fork").Process(
        target=_autotune_capped, args=(str(run_dir / "train.txt"), str(run_dir / "dev.txt"), duration, args.threads, str(model_file))
    )
    child.start()
    # autotune checks its duration between trials only; a trial that fills a multi-GB bucket x dim table with
    # random numbers on a loaded machine has run for most of an hour. Past the deadline the cell fails
    # (recorded as an error and rerun by the next invocation), not the whole benchmark.
    deadline = FASTTEXT_DEADLINE_FACTOR * duration + 300
    child.join(deadline)
    if child.is_alive():
        child.kill()
        child.join()
        raise RuntimeError(f"fastText autotune ({duration} s) was still running after {deadline} s and was stopped")
    if child.exitcode != 0 or not model_file.is_file():
        raise RuntimeError(f"fastText autotune failed (exit {child.exitcode}); its memory was capped at {FASTTEXT_MEMORY_CAP >> 30} GiB")
    model = fasttext.load_model(str(model_file))
    seconds = time.perf_counter() - started

    def predict(examples):
        got, _ = model.predict([chars(e.text) for e in examples])
        return [from_ft.get(g[0].removeprefix("__label__"), g[0]) if g else labels[0] for g in got]

    a = model.f.getArgs()
    tuned = {k: getattr(a, k) for k in ("epoch", "lr", "dim", "wordNgrams", "minn", "maxn", "bucket", "minCount")}
    tuned["loss"] = str(a.loss).rsplit(".", 1)[-1]
    return {
        "test": _headline(classification_metrics([e.label for e in test_ex], predict(test_ex), labels)),
        "dev": _headline(classification_metrics([e.label for e in dev_ex], predict(dev_ex), labels)),
        "train_seconds": round(seconds, 3),
        "n_train": len(train_ex),
        "config": {"autotune_duration_s": duration, "autotune_metric": "f1 (micro = accuracy)", "input": "characters", "tuned": tuned},
    }


def run_tfidf_baseline(task: Task, data_dir: Path, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """TfidfVectorizer(char, 1-3, sublinear_tf) + LogisticRegression, C chosen on dev."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from zhcls.eval.metrics import classification_metrics

    train_ex, dev_ex, test_ex = read_task(task, data_dir)
    labels = sorted({e.label for e in train_ex})
    started = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, max_features=LR_MAX_FEATURES, dtype=np.float32)
    x_train = vec.fit_transform([e.text for e in train_ex])
    x_dev = vec.transform([e.text for e in dev_ex])
    y_train = [e.label for e in train_ex]
    grid = LR_C_GRID[:2] if args.quick else LR_C_GRID
    best, history = None, []
    # C ascending with warm_start: each fit starts from the previous optimum, the same convex problems
    # solved in far fewer lbfgs iterations (119-class iflytek took ~6 min per C from scratch).
    clf = LogisticRegression(max_iter=args.lr_max_iter, warm_start=True)
    for c in sorted(grid):
        clf.set_params(C=c).fit(x_train, y_train)
        dev_m = classification_metrics([e.label for e in dev_ex], list(clf.predict(x_dev)), labels)
        score = dev_m[args.metric if args.metric == "accuracy" else "macro_f1"]
        history.append({"C": c, "dev_accuracy": dev_m["accuracy"], "dev_macro_f1": dev_m["macro_f1"]})
        log.info("  %s baseline.tfidf_lr C=%g dev %s=%.4f", task.name, c, args.metric, score)
        if best is None or score > best[0]:
            test_pred = list(clf.predict(vec.transform([e.text for e in test_ex])))  # scored only for the best-on-dev C
            best = (score, c, test_pred, dev_m)
    seconds = time.perf_counter() - started
    _, c, pred, dev_m = best
    return {
        "test": _headline(classification_metrics([e.label for e in test_ex], pred, labels)),
        "dev": _headline(dev_m),
        "train_seconds": round(seconds, 3),
        "n_train": len(train_ex),
        "config": {
            "vectorizer": f"char 1-3, sublinear_tf, max_features {LR_MAX_FEATURES}",
            "n_features": len(vec.vocabulary_),
            "C_grid": list(grid),
            "C": c,
            "max_iter": args.lr_max_iter,
            "solver": "lbfgs, warm_start over C ascending",
        },
        "dev_grid": history,
    }


def _headline(m: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]}


# -- results file --------------------------------------------------------------------------------------
def environment(argv: list[str]) -> dict[str, Any]:
    return h.environment("benchmarks/foundation.py", argv, "torch", "scikit-learn", "numpy", "fasttext-wheel")


def load_results(path: Path) -> dict[str, Any]:
    return h.load_results(path, {"schema": 1, "invocations": [], "results": {}, "errors": {}})


def save_results(results: dict[str, Any], out_dir: Path, stem: str) -> None:
    h.write_results(out_dir / f"{stem}.json", results, render_markdown)


# -- Markdown ------------------------------------------------------------------------------------------
_pct = h.pct


def _acc(results: dict[str, Any], task: str, model: str) -> float | None:
    entry = results["results"].get(task, {}).get(model)
    return None if entry is None else entry["test"]["accuracy"]


def render_markdown(results: dict[str, Any]) -> str:
    inv = results["invocations"]
    last = inv[-1] if inv else {}
    machine = last.get("machine", {})
    versions = last.get("versions", {})
    lines = ["# zhcls foundation benchmark", ""]
    lines += [
        "**Superseded by `benchmarks/build_bench.py` (results/build.md).** This was the first measurement: its neural rows "
        "trained on a step or epoch budget, and the cells listed as not run below were never run with this script. build.md "
        "covers every task here with every zhcls model (each `zhcls build` trains all of them to convergence, with early "
        "stopping, and lists each candidate's test accuracy), the ensemble, the distilled student and the build's choice, "
        "against fastText autotuned on dev, TF-IDF + logistic regression and a linear SVM measured in the same run.",
        "",
    ]
    if results.get("quick"):
        lines += ["**Quick smoke run on small subsets: these numbers mean nothing.**", ""]
    finished = [e["finished"] for t in results["results"].values() for e in t.values() if e.get("finished")]
    span = ""
    if inv and finished:
        first = dt.datetime.fromisoformat(inv[0]["started"])
        span = f"; first start to last result {(dt.datetime.fromisoformat(max(finished)) - first).total_seconds() / 60:.1f} min"
    lines += [
        f"- command: `{last.get('command', '?')}`",
        f"- machine: {machine.get('cpu_model', '?')}, os.cpu_count() = {machine.get('os_cpu_count', '?')}, shared with other jobs "
        f"(load average at each start: {', '.join(str(i.get('machine', {}).get('loadavg_at_start', ['?'])[0]) for i in inv)})",
        f"- date: {inv[0]['started'] if inv else '?'} to {last.get('finished') or max(finished, default='?')}",
        f"- versions: zhcls {versions.get('zhcls', '?')}, torch {versions.get('torch', '?')}, scikit-learn {versions.get('scikit-learn', versions.get('sklearn', '?'))}, "
        f"fasttext-wheel {versions.get('fasttext-wheel', versions.get('fasttext_wheel', '?'))}; git {last.get('git', {}).get('commit', '?')[:12]}"
        + (" (with uncommitted changes)" if last.get("git", {}).get("dirty_tracked_files") else ""),
        f"- wall time: {sum(i.get('wall_seconds', 0) for i in inv) / 60:.1f} min in {len(inv)} invocation(s){span}",
    ]
    if len(inv) > 1:
        lines.append("- invocations (resumed; each result records which one produced it, with its exact config, in the JSON):")
        lines += [f"  {n}. {i['started']}, {i.get('wall_seconds', 0) / 60:.1f} min: `{i['command']}`" for n, i in enumerate(inv)]
    workarounds = results.get("data", {}).get("workarounds", {})
    if workarounds:
        lines.append(
            f"- data workaround (results from before the reader split on \\n only): {', '.join(f'`{r}`' for r in workarounds)} hold raw "
            "U+2028 inside JSON strings, which `zhcls.data.readers` could not read then; every model read copies with those "
            "characters written as JSON escapes, checked to parse to identical records"
        )
    lines += [
        "",
        "Test-set accuracy and macro-F1 in percent, from `zhcls.eval.metrics.classification_metrics`. Every model "
        "selects its checkpoint / hyper-parameters on the dev split only. `train s` is the fitting time, tuning "
        "included (fastText autotune, the C grid). Baselines: `baseline.fasttext` = fastText on characters, "
        "autotuned on dev; `baseline.tfidf_lr` = scikit-learn char 1-3-gram TF-IDF + LogisticRegression, C from "
        f"{list(LR_C_GRID)} on dev (max_features {LR_MAX_FEATURES:,}, lbfgs).",
        "",
    ]
    lines += _summary(results)
    for task in [t.name for t in TASKS if t.name in results["results"] or t.name in results.get("errors", {})]:
        entries = results["results"].get(task, {})
        lines += [f"## {task}", "", "| model | accuracy | macro-F1 | train s | notes |", "|---|---:|---:|---:|---|"]
        for model in ALL_MODELS:
            e = entries.get(model)
            if e is None:
                err = results.get("errors", {}).get(task, {}).get(model)
                if err:
                    lines.append(f"| {model} | — | — | — | FAILED: {err['error'].strip().splitlines()[-1][:120]} |")
                continue
            lines.append(
                f"| {model} | {_pct(e['test']['accuracy'])} | {_pct(e['test']['macro_f1'])} | {e['train_seconds']:.1f} | {_notes(model, e)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _notes(model: str, e: dict[str, Any]) -> str:
    cfg = e.get("config", {})
    if model == "baseline.fasttext":
        t = cfg.get("tuned", {})
        return f"tuned: epoch {t.get('epoch')}, lr {t.get('lr', 0):.3g}, dim {t.get('dim')}, wordNgrams {t.get('wordNgrams')}, loss {t.get('loss')}"
    if model == "baseline.tfidf_lr":
        return f"C={cfg.get('C')}, {cfg.get('n_features')} features"
    if model == "tfidf.v1":
        grid = e.get("dev_grid") or []
        best = max(grid, key=lambda r: [v for k, v in r.items() if k.startswith("dev_")][0]) if grid else {}
        return f"C={best.get('C', 'fixed')} (auto on dev)"
    tr = cfg.get("training", {})
    return (
        f"max_len {cfg.get('model', {}).get('max_len')}, batch {tr.get('batch_size')}, best step {e.get('best_step')}/{e.get('steps')} "
        f"({e.get('evals')} evals of ≤{tr.get('epochs')} epochs)"
    )


def _epochs(results: dict[str, Any], task: str, model: str) -> str:
    e = results["results"].get(task, {}).get(model, {})
    return f"{e.get('evals', '?')} epoch(s), max_len {e.get('config', {}).get('model', {}).get('max_len', '?')}"


def _summary(results: dict[str, Any]) -> list[str]:
    out = ["## Summary against the targets", ""]
    out.append(
        "**Target 1:** on online_shopping cat and label, zhcls's best neural model (TextCNN or BiGRU) is at least "
        "2 accuracy points above the better tuned baseline (fastText autotune or TF-IDF+LR)."
    )
    out.append("")
    for task in ("online_shopping/cat", "online_shopping/label"):
        neural = {m: _acc(results, task, m) for m in ("textcnn.v1", "bigru.v1")}
        base = {m: _acc(results, task, m) for m in BASELINES}
        if None in neural.values() or None in base.values():
            missing = [m for m, v in {**neural, **base}.items() if v is None]
            out.append(f"- {task}: **not measured** (missing: {', '.join(missing)})")
            continue
        bn, bb = max(neural, key=neural.get), max(base, key=base.get)
        gap = 100 * (neural[bn] - base[bb])
        verdict = "**MET**" if gap >= 2.0 else "**NOT MET**"
        trained = ", ".join(f"{m} {_epochs(results, task, m)}" for m in neural)
        out.append(
            f"- {task}: best neural {bn} {_pct(neural[bn])} vs best baseline {bb} {_pct(base[bb])}: "
            f"{gap:+.2f} points (needs ≥ +2.00) → {verdict} (trained: {trained})"
        )
    out += [
        "",
        "**FewCLUE few_all** (train_few_all / dev_few_all, test_public): test accuracy of each zhcls model minus the "
        "TF-IDF+LR baseline measured in this run (points). The earlier TF-IDF measurement (tnews ≈ 43, iflytek ≈ 52, "
        "csldcp ≈ 59) is shown for reference.",
        "",
    ]
    out += [
        "| task | baseline.tfidf_lr | earlier TF-IDF | baseline.fasttext | " + " | ".join(ZHCLS_MODELS) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(ZHCLS_MODELS),
    ]
    deltas: dict[str, list[str]] = {m: [] for m in ZHCLS_MODELS}
    for name in ("tnews", "eprstmt", "iflytek", "csldcp"):
        task = f"{name}/few_all"
        measured = _acc(results, task, "baseline.tfidf_lr")
        earlier = EARLIER_TFIDF.get(name)
        base, against = (measured, "this run") if measured is not None else (earlier, "earlier")
        cells = []
        for m in ("baseline.fasttext", *ZHCLS_MODELS):
            a = _acc(results, task, m)
            e = results["results"].get(task, {}).get(m, {})
            still = (
                "†" if m in ("textcnn.v1", "bigru.v1", "fasttext.v1") and e.get("steps") and e.get("best_step") == e.get("steps") else ""
            )
            mark = "" if against == "this run" else "*"
            cells.append("—" if a is None else _pct(a) + still + ("" if base is None else f" ({100 * (a - base):+.1f}{mark})"))
            if a is not None and base is not None and m in deltas:
                deltas[m].append(f"{name} {100 * (a - base):+.1f}{mark}")
        out.append(f"| {task} | {_pct(measured)} | {'—' if earlier is None else f'≈ {100 * earlier:.0f}'} | " + " | ".join(cells) + " |")
    out += [
        "",
        "† best dev score at the last step: still improving when its epoch budget ran out (a lower bound). "
        "Neural models on FewCLUE get about --few-steps optimizer steps (at least 3 epochs) to fit the time budget. "
        "\\* no TF-IDF baseline from this run for that task: the difference is to the earlier measurement.",
        "",
    ]
    for m, ds in deltas.items():
        if ds:
            out.append(f"- {m} vs the TF-IDF baseline (points): {', '.join(ds)}")
    missing = [
        f"{t.name} {m}"
        for t in sorted(TASKS, key=run_order)
        for m in (*BASELINES, *ZHCLS_MODELS)
        if m not in results["results"].get(t.name, {})
    ]
    if missing:
        out += ["", f"**Not run** (out of the time budget; rerun the same command to resume): {', '.join(missing)}."]
    out.append("")
    return out


# -- main ----------------------------------------------------------------------------------------------
def select(items: list[str], wanted: str | None, what: str) -> list[str]:
    if not wanted:
        return items
    keys = [w.strip() for w in wanted.split(",") if w.strip()]
    chosen = [i for i in items if any(i == k or i.startswith(k + "/") or i.startswith(k + ".") for k in keys)]
    unknown = [k for k in keys if not any(i == k or i.startswith(k + "/") or i.startswith(k + ".") for i in items)]
    if unknown:
        sys.exit(f"error: unknown {what} {unknown}; choose from {items}")
    return chosen


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data-dir",
        default=str(h.default_data_dir()),
        help="shared/data (default: $ZHCLS_DATA_DIR or ../shared/data from the repo root)",
    )
    p.add_argument("--tasks", help="comma-separated task names or prefixes, e.g. tnews,online_shopping/cat (default: all)")
    p.add_argument("--models", help=f"comma-separated, from {', '.join(ALL_MODELS)}; 'baseline' selects both baselines (default: all)")
    p.add_argument("--quick", action="store_true", help="smoke run: small random subsets, 2 epochs, short autotune; results go to /tmp")
    p.add_argument("--force", action="store_true", help="redo (task, model) entries already in the results JSON")
    p.add_argument(
        "--results-dir", help="where foundation.{json,md} go (default: benchmarks/results, or /tmp/zhcls-bench/quick with --quick)"
    )
    p.add_argument("--runs-dir", help="where run directories go (default: /tmp/zhcls-bench/runs, or /tmp/zhcls-bench/quick/runs)")
    p.add_argument("--threads", type=int, default=2, help="torch / fastText threads (default 2)")
    p.add_argument("--metric", choices=("accuracy", "macro_f1"), default="accuracy", help="dev metric used for every model's selection")
    p.add_argument("--fasttext-duration-large", type=int, default=60, help="fastText autotune seconds on online_shopping (default 60)")
    p.add_argument("--fasttext-duration-few", type=int, default=30, help="fastText autotune seconds on FewCLUE (default 30)")
    p.add_argument(
        "--lr-max-iter",
        type=int,
        default=200,
        help="LogisticRegression max_iter, for tfidf.v1 and the TF-IDF baseline (default 200; lbfgs on 119 classes is slow)",
    )
    p.add_argument(
        "--few-steps", type=int, default=150, help="FewCLUE: about this many optimizer steps per neural model, as 3-30 epochs (default 150)"
    )
    p.add_argument("--few-max-len", type=int, default=128, help="FewCLUE: neural max_len (default 128; iflytek/csldcp run longer)")
    p.add_argument(
        "--large-epochs",
        default="textcnn.v1=1,bigru.v1=1,fasttext.v1=2",
        help="online_shopping epochs per neural model (default textcnn.v1=1,bigru.v1=1,fasttext.v1=2)",
    )
    p.add_argument("--large-max-len", type=int, default=128, help="online_shopping: neural max_len (default 128, 90%% of reviews fit)")
    p.add_argument(
        "--large-model-opts",
        default="textcnn.v1:num_filters=64",
        help="online_shopping: extra model options, MODEL:key=int,... (default textcnn.v1:num_filters=64)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.fasttext_duration_large = args.fasttext_duration_few = 5
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    data_dir = Path(args.data_dir).resolve()
    root = Path("/tmp/zhcls-bench/quick" if args.quick else "/tmp/zhcls-bench")
    results_dir = Path(args.results_dir) if args.results_dir else (root if args.quick else REPO / "benchmarks" / "results")
    runs_dir = Path(args.runs_dir) if args.runs_dir else root / "runs"
    tasks = sorted((t for t in TASKS if t.name in select([t.name for t in TASKS], args.tasks, "task")), key=run_order)
    # Baselines first: if the budget runs out, the comparisons the targets need are there already.
    models = [m for m in (*BASELINES, *ZHCLS_MODELS) if m in select(list(ALL_MODELS), args.models, "model")]

    checked = verify_data(data_dir, tasks)
    log.info("data verified against %s (%d files)", data_dir / "SHA256SUMS", len(checked))
    results = load_results(results_dir / "foundation.json")
    if results.get("quick", args.quick) != args.quick:
        sys.exit(
            f"error: {results_dir / 'foundation.json'} holds {'quick' if results.get('quick') else 'full'} results; use another --results-dir"
        )
    results["quick"] = args.quick
    results.setdefault("data", {}).update({"dir": str(data_dir), "sha256": {**results.get("data", {}).get("sha256", {}), **checked}})
    env = environment(argv)
    results["invocations"].append(env)
    invocation = len(results["invocations"]) - 1
    wall_start = time.perf_counter()
    runners: dict[str, Callable[..., dict[str, Any]]] = {
        "baseline.fasttext": run_fasttext_baseline,
        "baseline.tfidf_lr": run_tfidf_baseline,
    }
    failures = 0
    for task in tasks:
        if args.quick:  # absolute subset paths: data_dir / path is the path itself
            task = subset_task(task, data_dir, root / "data", (200, 100, 100))
        for model in models:
            done = results["results"].get(task.name, {})
            if model in done and not args.force:
                log.info("%s %s: already in the results, skipped (use --force to redo)", task.name, model)
                continue
            run_dir = runs_dir / task.name.replace("/", "_") / model
            log.info("%s %s: start", task.name, model)
            started = time.perf_counter()
            try:
                if model in runners:
                    entry = runners[model](task, data_dir, run_dir, args)
                else:
                    entry = run_zhcls(task, model, data_dir, run_dir, args)
            except Exception:  # noqa: BLE001 - a crashing model is recorded and reported, the others still run
                failures += 1
                tb = traceback.format_exc()
                log.error("%s %s: FAILED\n%s", task.name, model, tb)
                results.setdefault("errors", {}).setdefault(task.name, {})[model] = {"error": tb, "invocation": invocation}
                save_results(results, results_dir, "foundation")
                continue
            entry.update(
                wall_seconds=round(time.perf_counter() - started, 3),
                invocation=invocation,
                finished=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            )
            results["results"].setdefault(task.name, {})[model] = entry
            results.get("errors", {}).get(task.name, {}).pop(model, None)
            env["wall_seconds"] = round(time.perf_counter() - wall_start, 1)
            save_results(results, results_dir, "foundation")
            log.info(
                "%s %s: test accuracy %.4f macro-F1 %.4f, train %.1fs (wall %.1fs)",
                task.name,
                model,
                entry["test"]["accuracy"],
                entry["test"]["macro_f1"],
                entry["train_seconds"],
                entry["wall_seconds"],
            )
    env["wall_seconds"] = round(time.perf_counter() - wall_start, 1)
    env["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    save_results(results, results_dir, "foundation")
    log.info("done in %.1f min; results in %s", env["wall_seconds"] / 60, results_dir)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
