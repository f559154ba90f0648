"""`zhcls labels find` with default settings on planted label noise (issue "Accuracy first").

    .venv/bin/python benchmarks/label_default.py            # 10,000 online_shopping reviews, `cat`, 10% flipped

A seeded sample of the online_shopping train split, 10% of its labels flipped uniformly to another class,
written as JSON lines; then `zhcls labels find DATA -c CONFIG` where CONFIG has only [data] (so every
setting is the default: tfidf.v1 cross-fitted over 5 folds, cleanlab's "both" filter). Precision and
recall of the flagged rows against the flipped ones. Results: benchmarks/results/label_default.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _harness import REPO, RESULTS, atomic_write, cpu_model, default_data_dir, git_state


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/zhcls_label_default"))
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=0.10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--reuse", action="store_true", help="score the issues.jsonl a previous run left in --work-dir")
    args = p.parse_args()
    with open(args.data_dir / "online_shopping_10_cats" / "train.csv", encoding="utf-8") as f:
        rows = [(r["review"], r["cat"]) for r in csv.DictReader(f) if r["review"].strip()]
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(rows), size=args.n, replace=False)
    texts = [rows[i][0] for i in idx]
    labels = [rows[i][1] for i in idx]
    classes = sorted(set(labels))
    flipped = set(rng.choice(args.n, size=int(round(args.rate * args.n)), replace=False).tolist())
    noisy = [rng.choice([c for c in classes if c != label]) if i in flipped else label for i, label in enumerate(labels)]
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = args.work_dir / "noisy.json"
    data.write_text("".join(json.dumps({"text": t, "label": str(l)}, ensure_ascii=False) + "\n" for t, l in zip(texts, noisy)), encoding="utf-8")
    cfg = args.work_dir / "data-only.toml"
    cfg.write_text(f'[data]\ntrain = "{data}"\n', encoding="utf-8")
    cmd = [str(REPO / ".venv" / "bin" / "zhcls"), "labels", "find", str(data), "-c", str(cfg), "-o", str(args.work_dir / "issues.jsonl"), "--quiet"]
    started = time.perf_counter()
    previous = RESULTS / "label_default.json"
    if args.reuse and (args.work_dir / "issues.jsonl").is_file() and previous.is_file():
        seconds = json.loads(previous.read_text(encoding="utf-8"))["seconds"]
    else:
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - started
    found = [json.loads(line) for line in (args.work_dir / "issues.jsonl").read_text(encoding="utf-8").splitlines()]
    ranked = [r["line"] - 1 for r in found if r.get("kind", "label") != "duplicate"]  # most suspect first
    flagged = set(ranked)
    tp = len(flagged & flipped)
    hits = np.cumsum([i in flipped for i in ranked])
    along = {}
    for target in (0.5, 0.6, 0.7, 0.8):
        reached = np.flatnonzero(hits >= target * len(flipped))
        if len(reached):
            k = int(reached[0]) + 1
            along[str(target)] = {"top": k, "precision": round(float(hits[k - 1] / k), 4)}
    result = {
        "command": ".venv/bin/python benchmarks/label_default.py " + " ".join(sys.argv[1:]),
        "zhcls_command": "zhcls labels find noisy.json -c data-only.toml -o issues.jsonl  (config: [data] only)",
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, shared with other jobs",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "n": args.n, "rate": args.rate, "seed": args.seed, "flipped": len(flipped), "flagged": len(flagged), "true_positives": tp,
        "precision": round(tp / max(len(flagged), 1), 4), "recall": round(tp / len(flipped), 4), "seconds": round(seconds, 1),
        "summary": json.loads((args.work_dir / "issues.summary.json").read_text(encoding="utf-8")),
        "along_ranking": along,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write(RESULTS / "label_default.json", json.dumps(result, ensure_ascii=False, indent=1))
    met = "met" if result["precision"] >= 0.8 and result["recall"] >= 0.6 else "missed"
    at6 = along.get("0.6")
    md = [
        "# `zhcls labels find` with default settings, 10% uniform label noise",
        "",
        f"- command: `{result['command']}`; zhcls: `{result['zhcls_command']}`",
        f"- machine: {result['machine']}; date: {result['date']}; git {result['git']['commit'][:12]}",
        f"- data: {args.n} online_shopping_10_cats train reviews (seed {args.seed}), label `cat`, {len(flipped)} labels flipped uniformly to another class",
        "",
        "| flagged | true positives | precision | recall | seconds | target (P ≥ 0.8 at R ≥ 0.6) |",
        "|---:|---:|---:|---:|---:|---|",
        f"| {len(flagged)} | {tp} | {result['precision']:.3f} | {result['recall']:.3f} | {result['seconds']} | {met} |",
        "",
        f"Default out-of-fold model: {result['summary'].get('model')}, {result['summary'].get('folds')} folds; "
        f"out-of-fold accuracy on the noisy labels: {result['summary'].get('oof_accuracy', 'n/a')}.",
        "",
        "The flagged set as a whole misses precision 0.8; the ranked list (most suspect first, the order of issues.jsonl "
        "and of the review CSV) reaches it: precision of the top k rows at the first k that reaches each recall:",
        "",
        "| recall | top k | precision |",
        "|---:|---:|---:|",
        *(f"| {r} | {v['top']} | {v['precision']:.3f} |" for r, v in along.items()),
        "",
        f"At recall 0.6 the ranking's precision is {at6['precision']:.3f} (top {at6['top']} rows)." if at6 else "",
    ]
    atomic_write(RESULTS / "label_default.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
