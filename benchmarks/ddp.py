"""Scale-out benchmark: DistributedDataParallel training and sharded teacher labelling on this machine.

    .venv/bin/python benchmarks/ddp.py                        # FewCLUE tnews, minutes; results/ddp.{json,md}
    .venv/bin/python benchmarks/ddp.py --report               # rewrite the Markdown from the JSON
    .venv/bin/python benchmarks/ddp.py --quick                # smoke run into /tmp/zhcls-bench/ddp-quick

Training (TextCNN on tnews train_few_all, scored on test_public; the same global batch everywhere, a fixed
number of epochs with no early stopping, so every run takes the same steps):
  1p x 1t   `zhcls train` in one process, 1 thread
  1p x 2t   one process, 2 threads (what one process makes of both cores)
  2p x 1t   `zhcls train --nproc 2`: two DDP processes (gloo), 1 thread each
  and the same 1p x 1t / 2p x 1t pair with dropout 0, where the two must give the same weights (DDP
  averages gradients; dropout masks are each rank's own, so with dropout the runs differ as seeds do).
Per epoch: the time between two end-of-epoch evaluations in log.jsonl (training only; process start,
data loading and the final test evaluation are in `wall_s`).

Teacher labelling (a BiGRU run trained here as the teacher, tnews unlabeled.json, `zhcls teacher label
--no-cache`): one process with 1 and with 2 threads, and two processes (`--shard 0/2`, `--shard 1/2`,
1 thread each) started together; texts/s over the command's wall time, the fixed cost of a command (the
same command on 8 texts) and the max abs difference of the merged file from the single-process one.

Every command is run as a user runs it (a subprocess of `python -m zhcls`). Work: /tmp/zhcls-bench/ddp.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _harness import cpu_model, default_data_dir, dist_versions, git_state, verify_data

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TASK = "tnews"
FILES = {k: f"fewclue/{TASK}/{v}" for k, v in
         {"train": "train_few_all.json", "dev": "dev_few_all.json", "test": "test_public.json", "unlabeled": "unlabeled.json"}.items()}


LOAD_NOTE = ("a shared machine (other sessions' tests and another benchmark run on it), so these are timings on a loaded machine; "
             "the load averages below include this benchmark's own processes")


def verify_files(data_dir: Path) -> dict[str, str]:
    return verify_data(data_dir, list(FILES.values()))


def zhcls(*args: str, threads: int = 1, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """Run `python -m zhcls ARGS` with `threads` intra-op threads; (wall seconds, the finished process)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "zhcls", *args, "--quiet"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if check and proc.returncode != 0:
        sys.exit(f"error: zhcls {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return wall, proc


def write_config(path: Path, data_dir: Path, model: dict[str, Any], training: dict[str, Any]) -> Path:
    import tomli_w

    raw = {
        "data": {"train": str(data_dir / FILES["train"]), "dev": str(data_dir / FILES["dev"]), "test": str(data_dir / FILES["test"]),
                 "text_field": "sentence", "label_field": "label_desc"},
        "model": model, "training": training,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def train_cell(name: str, cfg: Path, run: Path, procs: int, threads: int) -> dict[str, Any]:
    args = ["train", str(cfg), "-o", str(run), "--force", "--set", f"training.threads={threads}"]
    if procs > 1:
        args += ["--nproc", str(procs)]
    wall, _ = zhcls(*args, threads=threads)
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    ends = [0.0] + [r["seconds"] for r in log]
    epochs = [round(b - a, 3) for a, b in zip(ends, ends[1:])]
    return {
        "processes": procs, "threads_per_process": threads, "wall_s": round(wall, 2), "train_seconds": metrics["train_seconds"],
        # the median of epochs 2..N: the first warms up, and a burst of the machine's other load moves a mean
        "epoch_seconds": epochs, "median_epoch_s": round(statistics.median(epochs[1:] or epochs), 3),
        "steps": metrics["steps"], "world_size": metrics.get("world_size"), "device": metrics.get("device"),
        "test_accuracy": metrics["test"]["accuracy"], "test_macro_f1": metrics["test"]["macro_f1"], "run": str(run),
    }


def max_weight_diff(a: Path, b: Path) -> float:
    import numpy as np
    from safetensors.numpy import load_file

    wa, wb = load_file(str(a / "model-last" / "weights.safetensors")), load_file(str(b / "model-last" / "weights.safetensors"))
    return float(max(np.abs(wa[k] - wb[k]).max() for k in wa))


def label_cell(teacher: Path, data: Path, out: Path, shards: int, threads: int) -> dict[str, Any]:
    """One labelling: `shards` processes started together, each labelling its shard with `threads` threads."""
    for stale in out.parent.glob(out.name + "*"):
        stale.unlink()
    base = [sys.executable, "-m", "zhcls", "teacher", "label", str(teacher), str(data), "-o", str(out), "--no-cache", "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    procs = [subprocess.Popen(base + ([] if shards == 1 else ["--shard", f"{k}/{shards}"]), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(shards)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"error: teacher label exited {p.returncode}:\n{err[-3000:]}")
    return {"processes": shards, "threads_per_process": threads, "wall_s": round(time.perf_counter() - started, 2)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from zhcls.distill.soft import read_soft_targets

    data_dir = args.data_dir.resolve()
    sums = verify_files(data_dir)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "invocation": {
            "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/ddp.py", *sys.argv[1:]]),
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": {"cpu_model": cpu_model(), "os_cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                        "note": LOAD_NOTE},
            "versions": {"python": platform.python_version(), **dist_versions("zhcls", "torch", "numpy")},
            "git": git_state(),
        },
        "data": {"data_dir": str(data_dir), "sha256": sums},
    }
    epochs = 2 if args.quick else args.epochs
    args.repeats = 1 if args.quick else args.repeats
    training = {"epochs": epochs, "batch_size": args.batch_size, "patience": 0, "metric": "accuracy", "seed": 42, "device": "cpu"}
    model = {"name": "textcnn.v1", "max_len": 64}
    cells: dict[str, Any] = {}
    # (name, processes, threads, dropout, seed, timed): the timed cells run `repeats` times; the seed-43 pair
    # shows how far another seed moves test accuracy, the yardstick for the DDP run with dropout
    plan = [("1p x 1t", 1, 1, None, 42, True), ("1p x 2t", 1, 2, None, 42, True), ("2p x 1t", 2, 1, None, 42, True),
            ("1p x 1t, seed 43", 1, 1, None, 43, False), ("2p x 1t, seed 43", 2, 1, None, 43, False),
            ("1p x 1t, dropout 0", 1, 1, 0.0, 42, False), ("2p x 1t, dropout 0", 2, 1, 0.0, 42, False)]
    for name, procs, threads, dropout, seed, timed in plan:
        m = {**model, **({} if dropout is None else {"dropout": dropout})}
        slug = name.replace(" ", "").replace(",", "-")
        cfg = write_config(work / f"{slug}.toml", data_dir, m, {**training, "seed": seed})
        reps = []
        for rep in range(args.repeats if timed else 1):  # the same run again: same weights, another sample of the machine's load
            print(f"train {name} ({rep + 1}) ...", file=sys.stderr, flush=True)
            reps.append(train_cell(name, cfg, work / "runs" / slug, procs, threads))
            print(f"  {reps[-1]['wall_s']} s, test accuracy {reps[-1]['test_accuracy']:.4f}", file=sys.stderr, flush=True)
        cells[name] = {**reps[0], "median_epoch_s": min(r["median_epoch_s"] for r in reps), "wall_s": min(r["wall_s"] for r in reps),
                       "repeats": [{k: r[k] for k in ("wall_s", "median_epoch_s", "epoch_seconds", "test_accuracy")} for r in reps]}
    base, ddp = cells["1p x 1t"], cells["2p x 1t"]
    results["training"] = {
        "task": f"{TASK}/few_all", "model": model, "training": training, "repeats": args.repeats, "cells": cells,
        "accuracy_points_2p_minus_1p": round(100 * (ddp["test_accuracy"] - base["test_accuracy"]), 2),
        "accuracy_points_2p_minus_1p_mean_of_seeds_42_43": round(50 * (ddp["test_accuracy"] + cells["2p x 1t, seed 43"]["test_accuracy"]
                                                                      - base["test_accuracy"] - cells["1p x 1t, seed 43"]["test_accuracy"]), 2),
        "accuracy_points_seed_43_minus_42_1p": round(100 * (cells["1p x 1t, seed 43"]["test_accuracy"] - base["test_accuracy"]), 2),
        "accuracy_points_2p_minus_1p_dropout0": round(100 * (cells["2p x 1t, dropout 0"]["test_accuracy"] - cells["1p x 1t, dropout 0"]["test_accuracy"]), 2),
        "max_abs_weight_diff_dropout0": max_weight_diff(Path(cells["1p x 1t, dropout 0"]["run"]), Path(cells["2p x 1t, dropout 0"]["run"])),
        "epoch_speedup_2p_vs_1p1t": round(base["median_epoch_s"] / ddp["median_epoch_s"], 2),
        "epoch_speedup_2p_vs_1p2t": round(cells["1p x 2t"]["median_epoch_s"] / ddp["median_epoch_s"], 2),
        "wall_speedup_2p_vs_1p1t": round(base["wall_s"] / ddp["wall_s"], 2),
    }

    # -- teacher labelling ------------------------------------------------------------------------------
    teacher_cfg = write_config(work / "teacher.toml", data_dir, {"name": "bigru.v1", "max_len": 64},
                               {**training, "epochs": 1 if args.quick else 3})
    print("train the BiGRU teacher ...", file=sys.stderr, flush=True)
    teacher = work / "runs" / "teacher"
    zhcls("train", str(teacher_cfg), "-o", str(teacher), "--force", threads=2)
    unlabeled = data_dir / FILES["unlabeled"]
    if args.quick:
        lines = unlabeled.read_text(encoding="utf-8").splitlines()[:2000]
        unlabeled = work / "unlabeled-quick.json"
        unlabeled.write_text("\n".join(lines) + "\n", encoding="utf-8")
    n_texts = sum(1 for line in unlabeled.read_text(encoding="utf-8").splitlines() if line.strip())
    tiny = work / "tiny.json"
    tiny.write_text("\n".join(unlabeled.read_text(encoding="utf-8").splitlines()[:8]) + "\n", encoding="utf-8")
    overhead = label_cell(teacher, tiny, work / "tiny.jsonl", 1, 1)["wall_s"]
    label_cells: dict[str, Any] = {}
    for name, shards, threads in [("1p x 1t", 1, 1), ("1p x 2t", 1, 2), ("2p x 1t (--shard)", 2, 1)]:
        reps = []
        for rep in range(args.repeats):
            print(f"label {name} ({rep + 1}/{args.repeats}) ...", file=sys.stderr, flush=True)
            reps.append(label_cell(teacher, unlabeled, work / f"soft-{shards}p{threads}t.jsonl", shards, threads))
        cell = {**reps[0], "wall_s": min(r["wall_s"] for r in reps), "repeats_wall_s": [r["wall_s"] for r in reps]}
        cell["texts_per_s"] = round(n_texts / cell["wall_s"], 1)
        cell["texts_per_s_net_of_startup"] = round(n_texts / max(1e-9, cell["wall_s"] - overhead), 1)
        label_cells[name] = cell
    one = read_soft_targets(work / "soft-1p1t.jsonl")
    merged = read_soft_targets(work / "soft-2p1t.jsonl")
    same_order = one.texts == merged.texts
    diff = float(np.abs(one.probs - merged.probs).max())
    logit_diff = float(np.abs(one.logits - merged.logits).max()) if one.logits is not None and merged.logits is not None else None
    results["labelling"] = {
        "teacher": "bigru.v1 (max_len 64) trained on tnews train_few_all", "texts": n_texts, "data": str(unlabeled),
        "command_overhead_s": overhead, "cells": label_cells,
        "speedup_2p_vs_1p1t": round(label_cells["1p x 1t"]["wall_s"] / label_cells["2p x 1t (--shard)"]["wall_s"], 2),
        "speedup_2p_vs_1p2t": round(label_cells["1p x 2t"]["wall_s"] / label_cells["2p x 1t (--shard)"]["wall_s"], 2),
        "merged_same_order": same_order, "merged_max_abs_diff_probs": diff, "merged_max_abs_diff_logits": logit_diff,
        "merged_file_identical": (work / "soft-1p1t.jsonl").read_bytes() == (work / "soft-2p1t.jsonl").read_bytes(),
    }
    results["invocation"]["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    results["invocation"]["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def render(r: dict[str, Any]) -> str:
    inv, tr, lb = r["invocation"], r["training"], r["labelling"]
    m = inv["machine"]
    out = [
        "# Scale-out benchmark: DDP training and sharded teacher labelling", "",
        f"- command: `{inv['command']}`",
        f"- machine: {m['cpu_model']}, os.cpu_count() = {m['os_cpu_count']}, {m['platform']}; {m['note']} "
        f"(load average {m['loadavg_at_start']} at the start, {m.get('loadavg_at_end')} at the end)",
        f"- date: {inv['started']} to {inv.get('finished')}; zhcls commit {inv['git']['commit']}"
        f"{' plus uncommitted changes' if inv['git'].get('dirty_tracked_files') else ''}; "
        f"torch {inv['versions'].get('torch')}, Python {inv['versions']['python']}",
        f"- data: {r['data']['data_dir']} (every file checked against SHA256SUMS)", "",
        f"## Training: {tr['model']['name']} on {tr['task']}, test_public", "",
        f"Global batch {tr['training']['batch_size']} in every run, {tr['training']['epochs']} epochs, no early stopping, device cpu. "
        "Epoch time: between end-of-epoch evaluations, the median over epochs 2..N; wall: the whole command (start-up, data, "
        f"test, saving). The first three runs were each done {tr.get('repeats', 1)} times (the same weights each time) and show the "
        "fastest; the seed-43 and dropout-0 runs once.", "",
        "| run | processes x threads | epoch (s) | wall (s) | steps | test accuracy | test macro-F1 |", "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in tr["cells"].items():
        out.append(f"| {name} | {c['processes']} x {c['threads_per_process']} | {c['median_epoch_s']:.2f} | {c['wall_s']:.1f} | {c['steps']} | "
                   f"{100 * c['test_accuracy']:.2f} | {100 * c['test_macro_f1']:.2f} |")
    out += [
        "",
        f"- test accuracy, 2 processes minus 1 (default dropout 0.3), seed 42: {tr['accuracy_points_2p_minus_1p']:+.2f} points; "
        f"mean of seeds 42 and 43: {tr['accuracy_points_2p_minus_1p_mean_of_seeds_42_43']:+.2f} points. Each rank draws its own dropout "
        f"masks, so with dropout a DDP run differs as another seed does: one process, seed 43 minus seed 42: "
        f"{tr['accuracy_points_seed_43_minus_42_1p']:+.2f} points",
        f"- with dropout 0: {tr['accuracy_points_2p_minus_1p_dropout0']:+.2f} points; max abs difference of the final weights "
        f"{tr['max_abs_weight_diff_dropout0']:.2e} (float summation order)",
        f"- speed-up per epoch, 2 DDP processes vs 1 process with 1 thread: x{tr['epoch_speedup_2p_vs_1p1t']}; "
        f"vs 1 process with 2 threads: x{tr['epoch_speedup_2p_vs_1p2t']}; whole command vs 1 x 1: x{tr['wall_speedup_2p_vs_1p1t']}",
        "",
        f"## Teacher labelling: {lb['teacher']}, {lb['texts']} texts", "",
        f"`zhcls teacher label --no-cache`; a command's fixed cost (start-up, loading the teacher, on 8 texts): {lb['command_overhead_s']:.1f} s.", "",
        "| labelling | processes x threads | wall (s) | texts/s | texts/s net of start-up |", "|---|---:|---:|---:|---:|",
    ]
    for name, c in lb["cells"].items():
        out.append(f"| {name} | {c['processes']} x {c['threads_per_process']} | {c['wall_s']:.1f} | {c['texts_per_s']:.0f} | {c['texts_per_s_net_of_startup']:.0f} |")
    out += [
        "",
        f"- speed-up, 2 shards vs 1 process with 1 thread: x{lb['speedup_2p_vs_1p1t']}; vs 1 process with 2 threads: x{lb['speedup_2p_vs_1p2t']}",
        f"- merged file vs one process: same order {lb['merged_same_order']}, max abs difference of probabilities "
        f"{lb['merged_max_abs_diff_probs']:.1e}, of logits {lb['merged_max_abs_diff_logits']}; byte-identical file: {lb['merged_file_identical']}",
        "",
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=default_data_dir(), help="shared data (default $ZHCLS_DATA_DIR, else ../shared/data beside the repository)")
    ap.add_argument("--work", type=Path, default=None, help="run directories (default /tmp/zhcls-bench/ddp)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each cell; times are the fastest (default 2)")
    ap.add_argument("--quick", action="store_true", help="2 epochs, 2000 texts to label, results to the work directory only")
    ap.add_argument("--report", action="store_true", help="only rewrite ddp.md from ddp.json")
    args = ap.parse_args()
    args.work = args.work or Path("/tmp/zhcls-bench/ddp-quick" if args.quick else "/tmp/zhcls-bench/ddp")
    target = (args.work if args.quick else RESULTS) / "ddp.json"
    if args.report:
        results = json.loads(target.read_text(encoding="utf-8"))
    else:
        results = run(args)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    target.with_suffix(".md").write_text(render(results), encoding="utf-8")
    print(target.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
