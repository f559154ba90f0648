"""Where a classifier bundle's single-text time goes, for two or more bundles side by side.

    .venv/bin/python benchmarks/latency_parts.py PARENT_BUNDLE PRUNED_BUNDLE [--data-dir DIR]

For each bundle, on FewCLUE tnews test titles one at a time, 1 thread: the p50 end to end (predict_proba:
normalize, tokenize, ids, hashed n-grams, the ONNX Runtime call, softmax), of the features alone, and of
the graph alone with its inputs ready; and the floor of one ONNX Runtime call from Python (a graph of one
Identity node). Rounds are interleaved across the bundles (every bundle sees the same load) and the median
of the rounds is reported, so the ratios hold whatever the machine's speed that minute. It answers why a
pruned TextCNN's graph can be 0.7x its parent's while the bundle is barely faster (docs/compression.md).

Results: benchmarks/results/latency_parts.{json,md}. Each run is added to the earlier ones for the same
bundles (another list of bundles starts afresh): on a shared machine one run's ratio can be off by 0.2,
so the table ends with the median over the runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import _harness as h

TASK = h.fewclue("tnews", "few_all")


def floor_session() -> Any:
    """An ONNX Runtime session of one Identity node over `ids`: what any call costs before a graph runs."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["ids"], ["logits"])], "floor",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, None]), helper.make_tensor_value_info("lengths", TensorProto.INT64, [1])],
                              [helper.make_tensor_value_info("logits", TensorProto.INT64, [1, None])])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = 1, 1, 3
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def measure(bundles: list[Path], texts: list[str], rounds: int) -> dict[str, Any]:
    import numpy as np

    from zhcls.serve.predictor import Predictor

    predictors = {b.name: Predictor(b, threads=1) for b in bundles}
    feeds = {}
    for name, p in predictors.items():
        f, rows = p.featurizer, []
        for text in texts:
            seq = f.encode_tokens(f.full_tokens(text)[: f.max_len])
            n = len(seq)
            rows.append({"ids": np.array([seq + [0] * max(0, p.min_len - n)], dtype=np.int64), "lengths": np.array([n], dtype=np.int64)})
        feeds[name] = rows
    floor = floor_session()
    parts: dict[str, dict[str, list[float]]] = {name: {} for name in predictors}
    floor_us = []
    for _ in range(rounds):
        for name, p in predictors.items():
            f = p.featurizer
            parts[name].setdefault("end_to_end", []).append(h.p50_us(lambda t, p=p: p.predict_proba([t]), texts))
            parts[name].setdefault("features", []).append(h.p50_us(lambda t, f=f: f.encode_tokens(f.full_tokens(t)[: f.max_len]), texts))
            parts[name].setdefault("graph", []).append(h.p50_us(lambda x, p=p: p._session.run(p._outputs, x), feeds[name]))
        floor_us.append(h.p50_us(lambda x: floor.run(None, x), feeds[next(iter(feeds))]))
    median = {name: {k: round(statistics.median(v), 1) for k, v in d.items()} for name, d in parts.items()}
    first = next(iter(median))
    ratio = {name: {k: round(v / median[first][k], 3) for k, v in d.items()} for name, d in median.items()}
    return {"p50_us": median, "ratio_to_first": ratio, "rounds_p50_us": parts, "session_floor_us": round(statistics.median(floor_us), 1),
            "manifests": {name: {k: p.manifest.get(k) for k in ("model", "precision", "total_bytes")} for name, p in predictors.items()}}


def render(results: dict[str, Any]) -> str:
    runs = results["runs"]
    names = list(runs[0]["p50_us"])
    lines = ["# Where a bundle's single-text time goes (benchmarks/latency_parts.py)", "",
             f"- texts: {runs[0]['n_texts']} FewCLUE tnews test titles, one at a time, 1 thread; per run {runs[0]['rounds']} rounds interleaved across the "
             "bundles, median of the rounds' p50s; ratios are to the first bundle", "- runs:",
             *(f"  {i + 1}. `{r['environment']['command']}` on {r['environment']['machine']['cpu_model']}, {r['environment']['started']}, git "
               f"{r['environment']['git']['commit'][:12]}" for i, r in enumerate(runs)), "",
             "| run | bundle | size MB | end to end us | features us | graph us (inputs ready) | ONNX Runtime call floor us | end to end ratio | graph ratio |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(runs):
        for name in names:
            p, q, m = r["p50_us"][name], r["ratio_to_first"][name], r["manifests"][name]
            lines.append(f"| {i + 1} | {name} | {m['total_bytes'] / 2**20:.2f} | {p['end_to_end']} | {p['features']} | {p['graph']} | {r['session_floor_us']} | "
                         f"{q['end_to_end']:.2f}x | {q['graph']:.2f}x |")
    for name in names[1:]:
        e2e = statistics.median(r["ratio_to_first"][name]["end_to_end"] for r in runs)
        graph = statistics.median(r["ratio_to_first"][name]["graph"] for r in runs)
        lines.append(f"| median of {len(runs)} | {name} | | | | | | {e2e:.2f}x | {graph:.2f}x |")
    lines += ["", "The floor is one ONNX Runtime call from Python on a graph of one Identity node. What is left of the end-to-end time after "
              "features and graph is the rest of the call (building the inputs, softmax, the Python around them), and the cache the graph's tables "
              "lose to it."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--data-dir", type=Path, default=h.default_data_dir())
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    h.verify_data(args.data_dir, [TASK.test])
    texts = [e.text for e in TASK.read(args.data_dir)[2][: args.texts]]
    run = {"environment": h.environment("benchmarks/latency_parts.py", argv, "onnxruntime"), "n_texts": len(texts), "rounds": args.rounds,
           **measure(args.bundles, texts, args.rounds)}
    other_bundles = lambda results, run: [list(r["p50_us"]) for r in results["runs"][:1]] not in ([], [list(run["p50_us"])])  # noqa: E731
    results = h.add_run(h.RESULTS / "latency_parts.json", run, render, restart=other_bundles)
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
