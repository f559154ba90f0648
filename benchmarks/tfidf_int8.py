"""int8 TF-IDF bundles against fp32: size, test accuracy, dev change and p50, on FewCLUE few_all tasks.

    .venv/bin/python benchmarks/tfidf_int8.py --tasks tnews,iflytek

Per task: tfidf.v1 trained on train_few_all with its loss/C chosen on dev_few_all, exported twice (fp32 and
`--quantize int8`: int8 weights, one scale per block of 64), both scored on test_public in the same run.
Results: benchmarks/results/tfidf_int8.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import _harness as h
import numpy as np


def run_task(task: str, data_dir: Path, work: Path) -> dict[str, Any]:
    from zhcls.config import TrainingConfig
    from zhcls.data.example import Example
    from zhcls.export.onnx import export_bundle
    from zhcls.models.base import build_model
    from zhcls.serve.predictor import Predictor

    root = data_dir / "fewclue" / task

    def read(name: str) -> tuple[list[str], list[str]]:
        rows = [json.loads(line) for line in (root / name).read_text(encoding="utf-8").split("\n") if line.strip()]  # not splitlines: texts hold U+2028
        key = "sentence" if "sentence" in rows[0] else "content"
        return [r[key] for r in rows], [str(r["label"]) for r in rows]

    train, dev, test = read("train_few_all.json"), read("dev_few_all.json"), read("test_public.json")
    model = build_model("tfidf.v1", {}, TrainingConfig(metric="accuracy")).fit(*train, eval_set=dev)
    model.meta = {}
    model.save(work / task / "model")
    cell: dict[str, Any] = {"classes": len(model.labels_), "n_grams": len(model.vocab_)}
    for precision in ("none", "int8"):
        manifest = export_bundle(work / task / "model", work / task / precision, data=[Example(t, l) for t, l in zip(*dev)], quantize=precision, latency_texts=300)
        predicted = Predictor(work / task / precision).predict(test[0])
        cell["fp32" if precision == "none" else "int8"] = {
            "test_accuracy": float(np.mean([p == t for p, t in zip(predicted, test[1])])),
            "size_mb": round(manifest["total_bytes"] / 2**20, 2), "p50_ms": manifest["latency"]["p50_ms"],
            **({"dev": manifest["parity"]["int8"]} if precision == "int8" else {}),
        }
    return cell


def render(results: dict[str, Any]) -> str:
    env = results["invocations"][-1]
    lines = ["# int8 TF-IDF bundles (benchmarks/tfidf_int8.py)", "", f"Command: `{env['command']}`  ",
             f"Machine: {env['machine']['cpu_model']}, 1 thread for latency  ", f"Date: {env['started']}  ",
             f"Commit: {env['git']['commit']}", "",
             "tfidf.v1 on train_few_all (loss and C chosen on dev_few_all), exported as fp32 and int8 (one scale per block of 64 "
             "weights); both bundles scored on test_public in the same run. Dev change: the int8 bundle's dev accuracy minus fp32's, "
             "as export records it.", ""]
    rows = []
    for task, c in results["tasks"].items():
        f, q = c["fp32"], c["int8"]
        rows.append([task, c["classes"], c["n_grams"], f["size_mb"], q["size_mb"], f"{q['size_mb'] / f['size_mb']:.2f}", h.pct(f["test_accuracy"]),
                     h.pct(q["test_accuracy"]), f"{100 * q['dev']['accuracy_change']:+.2f}", f"{100 * q['dev']['label_agreement']:.2f}", f["p50_ms"], q["p50_ms"]])
    lines += h.md_table(["task", "classes", "n-grams", "fp32 MB", "int8 MB", "ratio", "test fp32", "test int8", "dev change (points)",
                         "dev labels agreeing %", "p50 fp32 ms", "p50 int8 ms"], rows)
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=h.default_data_dir())
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/zhcls-tfidf-int8"))
    ap.add_argument("--tasks", default="tnews,iflytek")
    args = ap.parse_args(argv)
    tasks = args.tasks.split(",")
    h.verify_data(args.data_dir, [f"fewclue/{t}/{f}" for t in tasks for f in ("train_few_all.json", "dev_few_all.json", "test_public.json")])
    path = h.RESULTS / "tfidf_int8.json"
    results = {"invocations": [h.environment("benchmarks/tfidf_int8.py", argv, "scikit-learn", "onnxruntime")], "tasks": {}}
    for task in tasks:
        results["tasks"][task] = run_task(task, args.data_dir, args.work_dir)
        h.write_results(path, results, render)
    print(path.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
