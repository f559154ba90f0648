"""Distillation benchmark: an ensemble teacher into a TextCNN student, on labeled, augmented and unlabeled text.

    nice -n 19 .venv/bin/python benchmarks/distill.py                     # all tasks, resumable
    nice -n 19 .venv/bin/python benchmarks/distill.py --tasks eprstmt     # one task
    .venv/bin/python benchmarks/distill.py --report                       # rewrite the Markdown from the JSON

Per task, cells (each a zhcls run trained through the library, `config_from_dict` + `training.run.train`):
  student            TextCNN on the labeled data alone
  member.*           the teacher's members: textcnn.v1 (the student run itself), fasttext.v1, tfidf.v1 (C tuned on dev)
  teacher            their ensemble, probabilities weighted by dev macro-F1
  distill.labeled    TextCNN distilled from the ensemble on the labeled texts
  distill.augmented  ... + augmented texts (only when zhcls.augment exists)
  distill.unlabeled  ... + the unlabeled texts (capped, de-duplicated against dev/test, confidence-filtered)
  distill.augmented_unlabeled  ... + both (only when zhcls.augment exists)

Everything is selected on dev; test is only scored. Results go to benchmarks/results/distill.{json,md} after
every cell with atomic writes; a rerun skips finished cells (--force redoes them). Work: runs/bench-distill/.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import _harness as h
from _harness import REPO, RESULTS, Task

log = logging.getLogger("distill-bench")

MEMBERS = ("textcnn.v1", "fasttext.v1", "tfidf.v1")
MAX_LEN = 128  # the neural models' max_len on every task


def fewclue(name: str, data: Path) -> Task:
    """train_few_all / dev_few_all, scored on test_public, with the task's unlabeled.json; named as in the results."""
    return h.fewclue(name).under(data, name)


def online_shopping(data: Path, work: Path, n_labeled: int, seed: int = 0) -> Task:
    """2,000 labeled reviews drawn from train.csv (seeded); the rest of train.csv is the unlabeled text."""
    import random

    src = data / "online_shopping_10_cats"
    out = work / "online_shopping_cat"
    train, unlabeled = out / f"train_{n_labeled}.csv", out / "unlabeled.jsonl"
    if not (train.is_file() and unlabeled.is_file()):
        out.mkdir(parents=True, exist_ok=True)
        with open(src / "train.csv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        rows = [r for r in rows if (r.get("review") or "").strip()]
        picked = set(random.Random(seed).sample(range(len(rows)), n_labeled))
        with open(train, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["cat", "review"])
            w.writerows([rows[i]["cat"], rows[i]["review"]] for i in sorted(picked))
        with open(unlabeled, "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"review": r["review"]}, ensure_ascii=False) + "\n" for i, r in enumerate(rows) if i not in picked)
    return Task("online_shopping_cat", str(train), str(src / "dev.csv"), str(src / "test.csv"), "review", "cat", large=True, unlabeled=str(unlabeled))


def training_section(n_train: int, args: argparse.Namespace, *, few_steps: int) -> dict[str, Any]:
    """Epochs from a step budget (data size and time, never test): 3 to 30 epochs, early stopping on dev."""
    batch = 16 if n_train < 500 else 32 if n_train < 5000 else 64
    steps_per_epoch = -(-n_train // batch)
    epochs = min(args.max_epochs, max(3, -(-few_steps // steps_per_epoch)))
    return {"seed": 42, "threads": 1, "metric": "macro_f1", "batch_size": batch, "epochs": epochs, "patience": 3}


def model_section(name: str, task: Task) -> dict[str, Any]:
    if name == "tfidf.v1":
        return {"name": name}
    return {"name": name, "max_len": MAX_LEN}


def run_config(task: Task, model: str, n_train: int, args: argparse.Namespace, distill: dict | None = None, n_transfer: int | None = None) -> dict:
    cfg: dict[str, Any] = {
        "data": {"train": str(task.train), "dev": str(task.dev), "test": str(task.test), "text_field": task.text_field, "label_field": task.label_field},
        "model": model_section(model, task),
        "training": training_section(n_transfer or n_train, args, few_steps=args.steps),
    }
    if model == "tfidf.v1":
        cfg["training"]["epochs"] = 1
    if distill is not None:
        cfg["distill"] = distill
    return cfg


def train_cell(cfg: dict, out: Path) -> dict:
    from zhcls.config import config_from_dict
    from zhcls.errors import RunError
    from zhcls.training.run import train

    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    try:
        return train(config_from_dict(cfg), out).metrics
    except RunError:  # an unfinished run of an older config: start it over
        return train(config_from_dict(cfg), out, force=True).metrics


def summary(metrics: dict) -> dict:
    keep = {"test_accuracy": metrics["test"]["accuracy"], "test_macro_f1": metrics["test"]["macro_f1"]}
    if "dev" in metrics:
        keep.update(dev_accuracy=metrics["dev"]["accuracy"], dev_macro_f1=metrics["dev"]["macro_f1"])
    for k in ("train_seconds", "n_train", "best_step", "steps", "distill"):
        if k in metrics:
            keep[k] = metrics[k]
    return keep


def teacher_cell(task: Task, member_dirs: list[Path], weighting: str = "dev") -> dict:
    from zhcls.data.readers import ReadOptions, read_examples
    from zhcls.distill import load_teacher
    from zhcls.eval.metrics import classification_metrics

    dev_ex = read_examples(task.dev, ReadOptions("auto", task.text_field, task.label_field))
    teacher = load_teacher(member_dirs, weighting, "macro_f1", dev=([e.text for e in dev_ex], [e.label for e in dev_ex]))  # type: ignore[arg-type]
    out: dict[str, Any] = {"members": [str(d.relative_to(REPO)) if d.is_relative_to(REPO) else str(d) for d in member_dirs],
                           "weights": [round(float(w), 4) for w in teacher.weights]}
    started = time.perf_counter()
    for split, path in (("dev", task.dev), ("test", task.test)):
        ex = read_examples(path, ReadOptions("auto", task.text_field, task.label_field))
        probs, _ = teacher.predict([e.text for e in ex])
        pred = [teacher.labels[i] for i in probs.argmax(1)]
        m = classification_metrics([e.label for e in ex], pred, teacher.labels)
        out[f"{split}_accuracy"], out[f"{split}_macro_f1"] = m["accuracy"], m["macro_f1"]
    out["predict_seconds"] = round(time.perf_counter() - started, 2)
    return out


def run_task(task: Task, args: argparse.Namespace, results: dict) -> None:
    from zhcls.data.readers import ReadOptions, read_examples

    work = Path(args.work) / task.name
    cells = results.setdefault("tasks", {}).setdefault(task.name, {})
    n_train = len(read_examples(task.train, ReadOptions("auto", task.text_field, task.label_field)))

    def done(cell: str) -> bool:
        return cell in cells and "error" not in cells[cell] and not args.force

    def record(cell: str, fn) -> None:
        if done(cell):
            return
        log.info("%s: %s ...", task.name, cell)
        started = time.perf_counter()
        try:
            cells[cell] = {**fn(), "wall_seconds": round(time.perf_counter() - started, 1)}
        except Exception as exc:  # noqa: BLE001 - one failing cell must not lose the others
            cells[cell] = {"error": f"{type(exc).__name__}: {exc}"}
            log.error("%s: %s failed:\n%s", task.name, cell, traceback.format_exc())
        save(results)
        log.info("%s: %s -> %s", task.name, cell, {k: v for k, v in cells[cell].items() if k.startswith("test_") or k == "error"})

    member_dirs = {"textcnn.v1": work / "student", **{m: work / f"member.{m}" for m in MEMBERS[1:]}}
    record("student", lambda: summary(train_cell(run_config(task, "textcnn.v1", n_train, args), member_dirs["textcnn.v1"])))
    for m in MEMBERS[1:]:
        record(f"member.{m}", lambda m=m: summary(train_cell(run_config(task, m, n_train, args), member_dirs[m])))
    if not all(done(c) for c in ("student", "member.fasttext.v1", "member.tfidf.v1")):
        return
    record("teacher", lambda: teacher_cell(task, [member_dirs[m] for m in MEMBERS]))
    distill_base = {
        "teacher": [str(member_dirs[m]) for m in MEMBERS], "teacher_weights": "dev", "temperature": args.temperature,
        "alpha": args.alpha, "loss": "kl", "cache_dir": str(Path(args.work) / "cache"),
    }
    record("distill.labeled", lambda: summary(train_cell(run_config(task, "textcnn.v1", n_train, args, distill_base), work / "distill.labeled")))
    if augment_available():
        aug = {**distill_base, "use_augment": True}
        record("distill.augmented", lambda: summary(train_cell(augment_config(run_config(task, "textcnn.v1", n_train, args, aug), args), work / "distill.augmented")))
    unl = {**distill_base, "unlabeled": [str(task.unlabeled)], "max_unlabeled": args.max_unlabeled, "min_confidence": args.min_confidence}
    n_transfer = n_train + args.max_unlabeled
    record(
        "distill.unlabeled",
        lambda: summary(train_cell(run_config(task, "textcnn.v1", n_train, args, unl, n_transfer=n_transfer), work / "distill.unlabeled")),
    )
    if augment_available():
        both = augment_config(run_config(task, "textcnn.v1", n_train, args, unl, n_transfer=n_transfer), args)
        record("distill.augmented_unlabeled", lambda: summary(train_cell(both, work / "distill.augmented_unlabeled")))
    # the same, with ensemble weights fitted on dev (a grid on the simplex) instead of proportional to dev scores
    record("teacher.fit", lambda: teacher_cell(task, [member_dirs[m] for m in MEMBERS], "fit"))
    unl_fit = {**unl, "teacher_weights": "fit"}
    record(
        "distill.unlabeled.fit",
        lambda: summary(train_cell(run_config(task, "textcnn.v1", n_train, args, unl_fit, n_transfer=n_transfer), work / "distill.unlabeled.fit")),
    )


def git_dirty() -> bool:
    """Uncommitted changes under src/: the code measured is not the commit recorded."""
    return bool(h.git("status", "--porcelain", "--", "src"))


def augment_available() -> bool:
    import importlib.util

    from zhcls.config import RunConfig

    return importlib.util.find_spec("zhcls.augment") is not None and "augment" in RunConfig.model_fields


def augment_config(cfg: dict, args: argparse.Namespace) -> dict:
    return {**cfg, "augment": json.loads(args.augment)}


# -- results -----------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    import platform

    import torch

    return {**h.machine(), "python": platform.python_version(), "torch": torch.__version__, "torch_threads": 1, "nice": 19}


def save(results: dict) -> None:
    results["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    h.write_results(RESULTS / "distill.json", results, markdown)


pct = h.pct


ROWS = [
    ("student", "TextCNN alone"),
    ("member.fasttext.v1", "fastText-style (teacher member)"),
    ("member.tfidf.v1", "TF-IDF + LR, C tuned on dev (teacher member)"),
    ("teacher", "teacher: ensemble of the three, weighted by dev macro-F1"),
    ("distill.labeled", "TextCNN distilled, labeled texts only"),
    ("distill.augmented", "TextCNN distilled, + augmented"),
    ("distill.unlabeled", "TextCNN distilled, + unlabeled"),
    ("distill.augmented_unlabeled", "TextCNN distilled, + augmented + unlabeled"),
    ("teacher.fit", "teacher': the same ensemble, weights fitted on dev"),
    ("distill.unlabeled.fit", "TextCNN distilled from teacher', + unlabeled"),
]


def markdown(results: dict) -> str:
    m = results.get("machine", {})
    lines = [
        "# Distillation benchmark", "",
        f"- command: `{results.get('command', '')}`",
        f"- machine: {m.get('cpu_model', '?')}, os.cpu_count() = {m.get('os_cpu_count', '?')} (shared with other jobs), "
        f"torch {m.get('torch', '?')} with 1 thread, nice 19; Python {m.get('python', '?')}",
        f"- started {results.get('started', '?')}, last updated {results.get('updated', '?')}; zhcls commit {results.get('git_commit', '?')}"
        + (" plus uncommitted changes in the working tree (the code measured was not yet committed)" if results.get("git_dirty") else ""),
        f"- settings: {json.dumps(results.get('settings', {}), ensure_ascii=False)}",
        "- every model is selected on dev (early stopping on dev macro-F1, TF-IDF's C on dev); test is scored once. "
        "The student in every distilled row is the same TextCNN as in 'TextCNN alone' (same size, so the same latency).",
        f"- [[augment]] for the augmented rows: {json.dumps(results.get('augment'), ensure_ascii=False)}; unlabeled texts capped at "
        "max_unlabeled (a seeded sample), after dropping those equal (normalized) to a train, dev or test text.",
        "- teacher' picks its ensemble weights on dev, so its dev score is the one it was chosen on (optimistic); its test score is not.",
        "",
    ]
    missing = []
    for task, cells in results.get("tasks", {}).items():
        lines += [f"## {task}", "", "| model | test accuracy | test macro-F1 | dev macro-F1 | transfer set | seconds (train; teacher: predict dev+test) |", "|---|---|---|---|---|---|"]
        for key, title in ROWS:
            c = cells.get(key)
            if c is None or "error" in c:
                missing.append(f"{task} {key}" + (f" ({c['error'][:120]})" if c else ""))
                lines.append(f"| {title} | not run | | | | |")
                continue
            transfer = c.get("distill", {}).get("transfer")
            tr = ", ".join(f"{k} {v}" for k, v in transfer.items() if v) if transfer else ""
            if "weights" in c:
                tr = "weights (textcnn, fasttext, tfidf) " + ", ".join(f"{w:.2f}" for w in c["weights"])
            secs = c.get("train_seconds", c.get("predict_seconds", ""))
            lines.append(f"| {title} | {pct(c.get('test_accuracy'))} | {pct(c.get('test_macro_f1'))} | {pct(c.get('dev_macro_f1'))} | {tr} | {secs} |")
        lines += ["", *targets(cells), ""]
    for task in results.get("planned", []):
        if task not in results.get("tasks", {}):
            missing.append(f"{task} (all cells)")
    lines += ["## Missing", "", *(f"- {x}" for x in missing or ["nothing"]), ""]
    return "\n".join(lines)


def targets(cells: dict) -> list[str]:
    def acc(key: str) -> float | None:
        c = cells.get(key)
        return None if c is None or "error" in c else c.get("test_accuracy")

    alone, tfidf = acc("student"), acc("member.tfidf.v1")
    distilled = ("distill.labeled", "distill.augmented", "distill.unlabeled", "distill.augmented_unlabeled", "distill.unlabeled.fit")
    best_key = max((k for k in distilled if acc(k) is not None), key=lambda k: cells[k]["dev_macro_f1"], default=None)
    if best_key is None or alone is None:
        return ["Targets: not measurable yet."]
    best = acc(best_key)
    teacher = acc("teacher.fit" if best_key.endswith(".fit") else "teacher")
    out = [f"Targets (test accuracy, points; the distilled row is the one with the best **dev** macro-F1: {best_key}):"]
    out.append(f"- distilled ≥ TextCNN alone + 2: {100 * (best - alone):+.2f} → {'met' if best - alone >= 0.02 else 'NOT met'}")
    if teacher is not None:
        out.append(f"- distilled within 1 point of the teacher: {100 * (best - teacher):+.2f} → {'met' if best - teacher >= -0.01 else 'NOT met'}")
    if tfidf is not None:
        out.append(f"- distilled above tuned TF-IDF: {100 * (best - tfidf):+.2f} → {'met' if best > tfidf else 'NOT met'}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="eprstmt,tnews,online_shopping_cat")
    p.add_argument("--data-dir", default=str(h.default_data_dir()))
    p.add_argument("--work", default=str(REPO / "runs" / "bench-distill"))
    p.add_argument("--steps", type=int, default=600, help="optimizer-step budget per run (sets the epochs)")
    p.add_argument("--max-epochs", type=int, default=30)
    p.add_argument("--max-unlabeled", type=int, default=20000)
    p.add_argument("--min-confidence", type=float, default=0.0)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--shopping-labeled", type=int, default=2000)
    p.add_argument(
        "--augment", default='[{"name": "swap.v1", "n": 2}, {"name": "delete.v1", "n": 2}]', help="[[augment]] sections (JSON) for the augmented cells"
    )
    p.add_argument("--force", action="store_true")
    p.add_argument("--report", action="store_true", help="only rewrite the Markdown from the JSON")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    results = h.load_results(RESULTS / "distill.json")  # resume: finished cells are skipped
    if args.report:
        save(results)
        return
    import torch

    from zhcls.training.run import git_commit

    torch.set_num_threads(1)
    data = Path(args.data_dir)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    sources = [h.online_shopping("cat") if name == "online_shopping_cat" else h.fewclue(name) for name in names]
    results.setdefault("data_sha256", {}).update(h.verify_data(data, [f for t in sources for f in t.files()]))
    results.setdefault("started", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    results.update(
        command=h.command_line("benchmarks/distill.py", sys.argv[1:], prefix="nice -n 19 .venv/bin/python"), machine=machine(), git_commit=git_commit(REPO),
        settings={k: getattr(args, k) for k in ("steps", "max_epochs", "max_unlabeled", "min_confidence", "temperature", "alpha", "shopping_labeled")},
        planned=sorted(set(results.get("planned", [])) | set(names), key=["eprstmt", "tnews", "online_shopping_cat"].index),
    )
    results["git_dirty"] = git_dirty()
    results["augment_available"] = augment_available()
    results["augment"] = json.loads(args.augment)
    for name in names:
        if name == "online_shopping_cat":
            task = online_shopping(data, Path(args.work), args.shopping_labeled)
        else:
            task = fewclue(name, data)
        run_task(task, args, results)
    save(results)


if __name__ == "__main__":
    main()
