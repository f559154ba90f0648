"""What joint.v1's class bag (class_bag_dim) costs a bundle in latency and size.

    .venv/bin/python benchmarks/joint_bag_cost.py RUN [--work-dir DIR] [--data-dir DIR] [--rounds 4]

RUN: a trained joint.v1 run with a class bag (e.g. benchmarks/joint.py's joint_p2_mw2_cb64). Its model is
exported as it is and again with the bag cut out (class_bag_dim 0, the bag's columns of the output layer
dropped): the same encoder, heads and graph but for the bag, so the difference is the bag's alone. That
copy predicts differently; only latency and size are compared. Both bundles answer online_shopping test
reviews one at a time (predict_scored, 1 thread: features, the ONNX call, Viterbi, softmax), in rounds
that alternate which goes first; the median of the rounds' p50s is reported.

Results: benchmarks/results/joint_bag_cost.{json,md}; each run is added to the earlier ones.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import Any

import _harness as h


def without_bag(run: Path, out: Path) -> Path:
    """RUN's model with the class bag cut out, saved under `out`."""
    from zhcls import load_model

    model = load_model(run / "model-best")
    own = model.params.class_bag
    if not own:
        sys.exit(f"{run}: its model has no class bag (class_bag_dim 0), so there is nothing to compare")
    state = {k: v for k, v in model.module_.state_dict().items() if not k.startswith(("net.class_chars.", "net.class_grams."))}
    state["net.out.weight"] = state["net.out.weight"][:, :-own]
    model.params = type(model.params).model_validate({**model.params.model_dump(), "class_bag_dim": 0})
    model.module_ = model._build_module()
    model.module_.load_state_dict(state)
    model.module_.eval()
    model.meta = {}
    return model.save(out)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/zhcls-bench/joint-bag-cost"))
    ap.add_argument("--data-dir", type=Path, default=h.default_data_dir())
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--texts", type=int, default=1000)
    args = ap.parse_args(argv)
    from zhcls.data.example import Example
    from zhcls.export.onnx import export_bundle
    from zhcls.serve.predictor import Predictor

    task = h.online_shopping("cat")
    h.verify_data(args.data_dir, task.files())
    with open(args.data_dir / task.test, encoding="utf-8", newline="") as f:
        texts = [row[task.text_field] for row in csv.DictReader(f)][: args.texts]
    env = h.environment("benchmarks/joint_bag_cost.py", argv, "torch", "onnxruntime")
    work = args.work_dir
    models = {"with bag": args.run / "model-best", "without bag": without_bag(args.run, work / "no-bag-model")}
    bundles = {}
    for name, model_dir in models.items():
        bundle = work / name.replace(" ", "-")
        export_bundle(model_dir, bundle, data=[Example(t) for t in texts[:500]], latency_texts=100)
        bundles[name] = bundle
    predictors = {name: Predictor(b, threads=1) for name, b in bundles.items()}
    for p in predictors.values():
        p.predict_scored(texts[:50])  # warm up
    rounds: dict[str, list[float]] = {name: [] for name in predictors}
    for r in range(args.rounds):
        for name in (list(predictors) if r % 2 == 0 else list(predictors)[::-1]):
            rounds[name].append(round(h.p50_us(lambda t, p=predictors[name]: p.predict_scored([t]), texts), 1))
    p50 = {name: statistics.median(v) for name, v in rounds.items()}
    run = {**env, "parent": str(args.run), "texts": len(texts), "rounds_p50_us": rounds, "p50_us": p50,
           "bytes": {name: p.manifest["total_bytes"] for name, p in predictors.items()},
           "latency_ratio": round(p50["with bag"] / p50["without bag"], 3)}
    results = h.add_run(h.RESULTS / "joint_bag_cost.json", run, render)
    print(render(results))


def render(results: dict[str, Any]) -> str:
    lines = ["# What joint.v1's class bag costs (benchmarks/joint_bag_cost.py)", "",
             "online_shopping test reviews one at a time, 1 thread, predict_scored (features, ONNX, Viterbi, softmax); "
             "the bag's bundle against the same model with the bag cut out; rounds alternate which goes first; median of the rounds' p50s.", ""]
    rows = []
    for i, run in enumerate(results["runs"], 1):
        lines.append(f"{i}. `{run['command']}` on {run['machine']['cpu_model']} (load {run['machine']['loadavg_at_start']} at the start), "
                     f"{run['started']}, git {run['git']['commit'][:12]}{' + uncommitted changes' if run['git']['dirty_tracked_files'] else ''}")
        mb = {k: v / 1e6 for k, v in run["bytes"].items()}
        rows.append([i, f"{run['p50_us']['with bag'] / 1000:.4f}", f"{run['p50_us']['without bag'] / 1000:.4f}", f"{run['latency_ratio']:.3f}x",
                     f"{mb['with bag']:.1f}", f"{mb['without bag']:.1f}", f"{mb['with bag'] / mb['without bag']:.2f}x"])
    lines += ["", *h.md_table(["run", "p50 ms with bag", "p50 ms without", "latency ratio", "MB with bag", "MB without", "size ratio"], rows), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
