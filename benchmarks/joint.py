"""Span tagging and joint models: MSRA NER with a char BiGRU-CRF tagger.v1, and joint.v1 on MSRA NER plus
online_shopping_10_cats `cat` (one encoder, each batch from one dataset), against the single-task models.

    nice -n 19 .venv/bin/python benchmarks/joint.py                 # the committed measurement
    nice -n 19 .venv/bin/python benchmarks/joint.py --quick         # smoke run on small subsets; numbers mean nothing

MSRA NER (`msra_ner/dh_msra.zip`, one `char<TAB>tag` per line) is read with zhcls's CoNLL reader and split
by the sha256 of each sentence's text (a fixed 80/10/10 train/dev/test; identical sentences never cross
splits), written as canonical JSON lines with `entities` under --work-dir. Cells, each trained through
`zhcls.training.run.train` from a config, on the CPU with 1 torch thread:

  tagger      tagger.v1 on MSRA: entity-level micro F1 on test (target >= 88), then exported; the bundle's
              p50 latency on 50-character texts, 1 thread, tokenization and Viterbi decoding included
              (target <= 0.3 ms); every tagger cell gets such a latency cell (latency, latency_hN, latency_pN),
              which also times the same bundle decoding every position with Viterbi instead of best_path
  classifier  joint.v1 on online_shopping cat alone (the class head; no entities)
  joint       joint.v1 on online_shopping cat + [[datasets]] MSRA, the same encoder and settings: each task
              within 1 point of its single-task model (tagger for entities, classifier for cat)
  tagger_hN   with --tagger-hidden N: the tagger with N GRU units per direction instead of 128, its F1 and
              its bundle's latency (latency_hN), to show what a narrower encoder costs and saves
  tagger_hHeEgG
              with --tagger-shape H:E:G: the tagger with H GRU units per direction, character embeddings of E
              dimensions and n-gram embeddings of G (instead of 128/128/64): the narrower input the GRU projects
  tagger_hHeEgG_sS
              with --tagger-seed S as well: each such tagger trained again with seed S (its latency cell too)
  tagger_hHeEgG[_sS]_pN
              with --tagger-patience N as well: each such tagger (and seed) trained again with patience N
  tagger_cnnL with --tagger-cnn L: the tagger with a CNN encoder (L layers of 128 kernel-3 filters) instead
              of the BiGRU, its F1 and latency (latency_cnnL): what the faster encoder costs in F1
  student_hN  with --student-hidden N: a tagger of N GRU units distilled ([distill], T = 2, alpha = 0.5) from
              the --teacher cell's run on MSRA train; compare it with tagger_hN, the same tagger without a teacher
  joint_pN    with --joint-patience N: the joint cell with early-stopping patience N instead of 2 (the
              single-task cells keep 2; the verdict records both)
  joint_pN_twW, joint_pN_mwW
              with --joint-tag-weight W / --joint-msra-weight W: the joint cell (at each --joint-patience, or 2)
              with the tagging loss weighted W (class loss 1), or with MSRA drawn W times as often per epoch
              ([[datasets]] weight W); its dev scores are what choose among the joint cells
  classifier_cbD, joint_cbD, joint_pN_mwW_cbD
              with --class-bag-dim D: the classifier and the joint cells (at MSRA weight 1 and each
              --joint-msra-weight W) with a D-dimensional bag of characters and n-grams that only the class
              head reads (joint.v1 class_bag_dim); a joint_..._cbD cell's cat accuracy is compared with
              classifier_cbD, the single-task model of the same architecture
  classifier_sS, classifier_cbD_sS
              with --classifier-seed S: the classifier cells trained again with seed S
  tagger_pN, classifier_pN
              with --single-patience N: the two single-task cells at patience N; a joint_pN cell's verdict then
              compares it with them, the same patience on both sides
  latency_compare
              with --compare-latency A,B,...: the bundles of those latency cells timed again in one process,
              rounds interleaved (median of 5), so their ratios hold whatever the machine's speed that day
  pruned_wW   with --compress-width W (e.g. 1/2): `zhcls compress` of the --teacher cell's run to width W
              (GRU units and n-gram dimensions), recovered by tagging distillation from it for up to
              --recover-epochs epochs (early-stopped on dev); its F1, and the p50 of its bundle and of the
              parent's timed side by side in the same process (interleaved rounds), so the ratio holds
              whatever the machine's speed that day

Results: benchmarks/results/joint.json and joint.md; a rerun skips finished cells (--force CELL redoes one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import multiprocessing
import shutil
import statistics
import sys
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Sequence

import _harness as h
from _harness import REPO

log = logging.getLogger("joint")

MSRA = "msra_ner/dh_msra.zip"
TARGETS = {"tagger_f1": 0.88, "joint_gap": 0.01, "p50_ms": 0.3}
# The decoding that side-by-side timings since this commit measured (best_path's per-tag bound, about
# 0.95x the whole predict_spans call of the one before: benchmarks/results/decode_ab.md). The verdict on a
# bundle's p50 takes the timings made with it where there are any; the older ones stay in the table.
DECODER = "05e73ca"
ENCODER = {"encoder": "bigru", "head": "crf", "scheme": "bio", "embed_dim": 128, "ngrams": 2, "buckets": 200_000, "gram_dim": 64,
           "hidden_size": 128, "max_len": 256, "dropout": 0.2}
TRAINING = {"epochs": 40, "batch_size": 32, "lr": 2e-3, "patience": 2, "threads": 1, "device": "cpu", "seed": 42}


def split_of(text: str) -> str:
    bucket = int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def prepare_msra(data_dir: Path, work: Path, limit: int | None) -> tuple[dict[str, Path], int]:
    """The MSRA splits as JSON lines with entities (written once; --quick keeps `limit` sentences per split)
    and the number of tags repair_orphans rewrote."""
    from zhcls.data.conll import read_conll
    from zhcls.data.readers import lines

    out = {name: work / f"msra_{name}{'_quick' if limit else ''}.json" for name in ("train", "dev", "test")}
    meta = work / "msra_repaired.json"
    if all(p.is_file() for p in [*out.values(), meta]):
        return out, json.loads(meta.read_text())["repaired"]
    with zipfile.ZipFile(data_dir / MSRA) as z:
        text, repaired = repair_orphans(z.read("dh_msra.txt").decode("utf-8"))
    log.info("MSRA: %d I- tags that continue no entity read as B- (as conlleval reads them)", repaired)
    examples = read_conll(Path(MSRA), text, lines(text))
    splits: dict[str, list[str]] = {name: [] for name in out}
    for ex in examples:
        rows = splits[split_of(ex.text)]
        if limit is None or len(rows) < limit:
            rows.append(json.dumps({"text": ex.text, "entities": [e.to_json() for e in ex.entities]}, ensure_ascii=False) + "\n")
    work.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        h.atomic_write(out[name], "".join(rows))
    h.atomic_write(meta, json.dumps({"repaired": repaired}))
    return out, repaired


def repair_orphans(text: str) -> tuple[str, int]:
    """The file has 17 sentences cut inside a name (an I-PER right after a blank line); zhcls's reader
    rightly refuses them, so the benchmark rewrites such an I-X to B-X, the reading conlleval gives it."""
    out, prev, repaired = [], "O", 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if not body.strip():
            prev = "O"
        else:
            char, _, tag = body.rpartition("\t")
            if tag.startswith("I-") and prev[2:] != tag[2:]:
                line, tag, repaired = f"{char}\tB-{tag[2:]}{line[len(body):]}", f"B-{tag[2:]}", repaired + 1
            prev = tag
        out.append(line)
    return "".join(out), repaired


def shopping_subset(data_dir: Path, work: Path, limit: int | None) -> dict[str, str]:
    """online_shopping cat files (CSV); --quick: `limit` reviews of each, evenly spaced."""
    task = h.online_shopping("cat")
    files = {"train": task.train, "dev": task.dev, "test": task.test}
    if limit is None:
        return {k: str(data_dir / v) for k, v in files.items()}
    out = {}
    for k, v in files.items():
        rows = (data_dir / v).read_text(encoding="utf-8").splitlines(keepends=True)
        path = work / f"shopping_{k}_quick.csv"
        step = max(1, (len(rows) - 1) // limit)  # the files are sorted by class: take every step-th review
        h.atomic_write(path, "".join([rows[0], *rows[1::step][:limit]]))
        out[k] = str(path)
    return out


def train_cell(name: str, cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    """Train one cell's run, or finish it: a run killed before (this script stopped, the machine went away)
    resumes from its checkpoint, and a finished run whose cell was not recorded is read as it is. A run
    of another config in the cell's directory is an error (zhcls train's own check)."""
    from zhcls.artifact import read_json
    from zhcls.config import config_from_dict
    from zhcls.training.run import train

    run_dir = work / name
    if not (run_dir / "metrics.json").is_file():
        train(config_from_dict(cfg, source=name), run_dir, check=False)
    m = read_json(run_dir / "metrics.json")
    # train_seconds: all of the run's training, a resumed run's earlier invocations included (run.py adds what its checkpoint carried)
    return {"run": str(run_dir), "train_seconds": m.get("train_seconds"), "resumed_from": m.get("resumed_from"), "config": cfg,
            "best_step": m.get("best_step"), "epochs": m.get("fit", {}).get("epochs"), "stopped": m.get("fit", {}).get("stopped"),
            "dev": _scores(m.get("dev", {})), "test": _scores(m.get("test", {})),
            "datasets": [{k: _scores(d.get(k, {})) for k in ("dev", "test")} for d in m.get("datasets", [])],
            "test_span_errors": m.get("test", {}).get("entities", {}).get("span_errors", [])[:10] or
            next((d["test"]["entities"]["span_errors"][:10] for d in m.get("datasets", []) if "entities" in d.get("test", {})), [])}


def _scores(m: dict[str, Any]) -> dict[str, Any]:
    out = {k: m[k] for k in ("n", "accuracy", "macro_f1") if k in m}
    if "entities" in m:
        e = m["entities"]
        out["entities"] = {k: e[k] for k in ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "n_gold", "n_pred")}
        out["entities"]["per_type"] = e["per_type"]
    return out


def latency(run_dir: Path, texts: list[str], work: Path) -> dict[str, Any]:
    """Export the run and time its bundle on 50-character texts, one at a time, 1 thread."""
    from zhcls.export.onnx import export_bundle
    from zhcls.export.onnx import measure_latency as measure
    from zhcls.serve.predictor import Predictor
    from zhcls.tagging import decode

    bundle = work / (run_dir.name + "_bundle")
    manifest = export_bundle(run_dir, bundle, latency_texts=200)
    predictor = Predictor(bundle, threads=1)
    rounds, full = [], []
    for _ in range(3):  # interleaved with the same bundle decoding by a Viterbi over every position, as before best_path
        rounds.append(measure(predictor, texts, warmup=100))
        fast, decode.best_path = decode.best_path, lambda em, crf, outside: decode.viterbi(em, crf)
        try:
            full.append(measure(predictor, texts, warmup=100)["p50_ms"])
        finally:
            decode.best_path = fast
    best = min(rounds, key=lambda r: r["p50_ms"])
    return {"bundle": str(bundle), "machine": h.cpu_model(), "parity": manifest["parity"], "total_bytes": manifest["total_bytes"], "n_texts": len(texts),
            "text_chars": 50, "rounds_p50_ms": [r["p50_ms"] for r in rounds], "p50_ms": best["p50_ms"], "p99_ms": best["p99_ms"],
            "full_viterbi_rounds_p50_ms": full, "full_viterbi_p50_ms": min(full)}


def compare_latency(bundles: dict[str, Path], texts: list[str], rounds: int = 5) -> dict[str, Any]:
    """p50 of each bundle, 1 thread, rounds interleaved (every bundle sees the same load), median of the rounds."""
    from zhcls.export.onnx import measure_latency as measure
    from zhcls.serve.predictor import Predictor

    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    predictors = {name: Predictor(b, threads=1) for name, b in bundles.items()}
    p50s: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(rounds):
        for name, predictor in predictors.items():
            p50s[name].append(measure(predictor, texts, warmup=100)["p50_ms"])
    median = {name: sorted(v)[len(v) // 2] for name, v in p50s.items()}
    first = next(iter(median.values()))
    return {"started": started, "machine": h.cpu_model(), "git": h.git_state()["commit"], "decoder": DECODER, "n_texts": len(texts), "text_chars": 50,
            "rounds_p50_ms": p50s, "p50_ms": median, "ratio": {name: round(v / first, 4) for name, v in median.items()}}


def compress_cell(parent: Path, out: Path, width: str, epochs: int, texts: list[str]) -> dict[str, Any]:
    """Compress `parent` (a finished tagger run) to `width`, or finish a compression a kill interrupted, and
    time the parent's and the pruned bundle side by side."""
    from zhcls.artifact import read_json
    from zhcls.compress import compress
    from zhcls.compress.run import parse_width

    if not (out / "metrics.json").is_file():
        compress(parent, out, width=parse_width(width), recover_epochs=epochs)
    m = read_json(out / "metrics.json")
    c = m["compress"]
    timed = compare_latency({"parent": out / "compress" / "parent-bundle", "pruned": out / "bundle"}, texts)
    rounds, p50 = timed["rounds_p50_ms"], timed["p50_ms"]
    return {"run": str(out), "parent": str(parent), "width": width, "recover_epochs": epochs, "machine": h.cpu_model(),
            "train_seconds": m.get("train_seconds"), "epochs": m.get("fit", {}).get("epochs"), "stopped": m.get("fit", {}).get("stopped"),
            "dev": _scores(m.get("dev", {})), "test": _scores(m.get("test", {})), "pruned": c["pruned"], "kept": c.get("recovery", {}).get("kept"),
            "pruned_only_dev_f1": c.get("pruned_only", {}).get("dev", {}).get("entity_f1"), "before": c["before"], "change": c["change"],
            "bytes": [c["before"]["bundle"]["total_bytes"], c["after"]["bundle"]["total_bytes"]], "p50_rounds_ms": rounds, "p50_ms": p50,
            "p50_ratio": round(p50["pruned"] / p50["parent"], 4), "n_texts": len(texts), "text_chars": 50}


def fifty_char_texts(test_file: Path, n: int) -> list[str]:
    """Test sentences joined and cut into 50-character texts."""
    joined = "".join(json.loads(line)["text"] for line in test_file.read_text(encoding="utf-8").splitlines())
    return [joined[i : i + 50] for i in range(0, min(len(joined), 50 * n) - 49, 50)]


def tagger_shape(value: str) -> tuple[int, int, int]:
    """--tagger-shape H:E:G as three positive integers, or argparse's usage error naming the value."""
    try:
        shape = tuple(int(x) for x in value.split(":"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not H:E:G (GRU units, character and n-gram embedding sizes), e.g. 64:64:32")
    return shape  # type: ignore[return-value]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=h.default_data_dir())
    ap.add_argument("--work-dir", type=Path, default=REPO / "runs" / "bench_joint")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    ap.add_argument("--jobs", type=int, default=1, help="cells trained at once (tagger and classifier are independent)")
    ap.add_argument("--tagger-hidden", type=int, action="append", default=[], help="also train the tagger with this GRU width (cell tagger_hN)")
    ap.add_argument("--tagger-shape", type=tagger_shape, action="append", default=[], metavar="H:E:G",
                    help="also train the tagger with H GRU units, E-dimensional character and G-dimensional n-gram embeddings (cell tagger_hHeEgG)")
    ap.add_argument("--tagger-seed", type=int, action="append", default=[], metavar="S",
                    help="also train each --tagger-shape cell with seed S instead of %d (cell tagger_hHeEgG_sS): how much of a difference is the seed's" % TRAINING["seed"])
    ap.add_argument("--tagger-patience", type=int, action="append", default=[], metavar="N",
                    help="also train each --tagger-shape cell (and each of its seeds) with early-stopping patience N instead of %d (cell ..._pN)" % TRAINING["patience"])
    ap.add_argument("--tagger-cnn", type=int, action="append", default=[], metavar="LAYERS",
                    help="also train the tagger with a CNN encoder of LAYERS kernel-3 layers, 128 filters (cell tagger_cnnLAYERS)")
    ap.add_argument("--student-hidden", type=int, action="append", default=[], metavar="N",
                    help="also distill a tagger of N GRU units from the --teacher cell's run (cell student_hN; compare tagger_hN)")
    ap.add_argument("--teacher", default="tagger_h64", help="the tagger cell that teaches the students (default tagger_h64)")
    ap.add_argument("--joint-patience", type=int, action="append", default=[],
                    help="also train the joint cell with this early-stopping patience (cell joint_pN; the others keep %d)" % TRAINING["patience"])
    ap.add_argument("--joint-tag-weight", type=float, action="append", default=[], metavar="W",
                    help="also train the joint cell with tag_weight W (cell joint_pN_twW, for each --joint-patience N, or 2)")
    ap.add_argument("--joint-msra-weight", type=float, action="append", default=[], metavar="W",
                    help="also train the joint cell with MSRA's share of the batches W times [data]'s (cell joint_pN_mwW)")
    ap.add_argument("--class-bag-dim", type=int, action="append", default=[], metavar="D",
                    help="also train the classifier and joint cells with the class head's own D-dimensional bag (cells classifier_cbD, joint_cbD, joint_p2_mwW_cbD)")
    ap.add_argument("--classifier-seed", type=int, action="append", default=[], metavar="S",
                    help="also train the classifier cell (and each classifier_cbD) with seed S (cells classifier_sS, classifier_cbD_sS): what the seed alone moves")
    ap.add_argument("--single-patience", type=int, action="append", default=[],
                    help="also train the single-task cells with this patience (tagger_pN, classifier_pN), for joint_pN to be compared with")
    ap.add_argument("--compress-width", action="append", default=[], metavar="W",
                    help="also compress the --teacher cell's run to width W, e.g. 1/2 (cell pruned_wW; zhcls compress, tagging distillation)")
    ap.add_argument("--recover-epochs", type=int, default=10, help="the most recovery epochs of a pruned_wW cell (early-stopped on dev)")
    ap.add_argument("--compare-latency", metavar="A,B,...", help="time these latency cells' bundles again, interleaved in one process (cell latency_compare)")
    ap.add_argument("--force", action="append", default=[], help="redo a cell: tagger, latency, classifier, joint, tagger_hN, latency_hN, joint_pN, pruned_wW")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(1)
    limit = 300 if args.quick else None
    shopping = h.online_shopping("cat")
    h.verify_data(args.data_dir, [MSRA, *shopping.files()])
    path = h.RESULTS / ("joint_quick.json" if args.quick else "joint.json")
    results = h.load_results(path, {"invocations": [], "cells": {}})
    results["invocations"].append(h.environment("benchmarks/joint.py", argv, "torch", "onnxruntime", "pytorch-crf", "seqeval"))
    results["split"] = "sha256(sentence text) % 10: 0 test, 1 dev, else train"
    cells = results["cells"]
    work = args.work_dir
    for name in args.force:  # redo: its recorded cell and its run (finished or not) go
        cells.pop(name, None)
        shutil.rmtree(work / name, ignore_errors=True)
    msra, results["msra_repaired_tags"] = prepare_msra(args.data_dir, work, limit)
    shop = shopping_subset(args.data_dir, work, limit)
    training = {**TRAINING, "epochs": 2 if args.quick else args.epochs}
    shop_data = {**shop, "format": "csv", "text_field": "review", "label_field": "cat"}
    msra_data = {k: str(v) for k, v in msra.items()} | {"format": "jsonl"}
    plans = {
        "tagger": {"data": msra_data, "model": {"name": "tagger.v1", **ENCODER}, "training": training},
        # class_bag_dim 0: these cells ran before joint.v1 had the bag (default 64 since); --class-bag-dim adds it
        "classifier": {"data": shop_data, "model": {"name": "joint.v1", **ENCODER, "class_bag_dim": 0}, "training": training},
        "joint": {"data": shop_data, "datasets": [msra_data], "model": {"name": "joint.v1", **ENCODER, "class_bag_dim": 0}, "training": training},
    }
    for width in args.tagger_hidden:
        plans[f"tagger_h{width}"] = {"data": msra_data, "model": {"name": "tagger.v1", **ENCODER, "hidden_size": width}, "training": training}
    for hidden, embed, gram in args.tagger_shape:
        shape = {"name": "tagger.v1", **ENCODER, "hidden_size": hidden, "embed_dim": embed, "gram_dim": gram}
        base = f"tagger_h{hidden}e{embed}g{gram}"
        for seed in [TRAINING["seed"], *args.tagger_seed]:
            name, trained = base if seed == TRAINING["seed"] else f"{base}_s{seed}", {**training, "seed": seed}
            plans[name] = {"data": msra_data, "training": trained, "model": shape}
            for patience in args.tagger_patience:
                plans[f"{name}_p{patience}"] = {"data": msra_data, "training": {**trained, "patience": patience}, "model": shape}
    for layers in args.tagger_cnn:
        cnn = {**ENCODER, "encoder": "cnn", "num_layers": layers, "kernel_size": 3}
        plans[f"tagger_cnn{layers}"] = {"data": msra_data, "model": {"name": "tagger.v1", **cnn}, "training": training}
    for width in args.student_hidden:  # trained after the teacher: it reads the teacher's run
        teacher_run = str(work / args.teacher)
        plans[f"student_h{width}"] = {"data": msra_data, "model": {"name": "tagger.v1", **ENCODER, "hidden_size": width}, "training": training,
                                      "distill": {"teacher": teacher_run, "temperature": 2.0, "alpha": 0.5}}
    for patience in args.joint_patience:
        plans[f"joint_p{patience}"] = {**plans["joint"], "training": {**training, "patience": patience}}
    for patience in args.joint_patience or [TRAINING["patience"]]:
        base = {**plans["joint"], "training": {**training, "patience": patience}}
        for w in args.joint_tag_weight:
            plans[f"joint_p{patience}_tw{w:g}"] = {**base, "model": {**base["model"], "tag_weight": w}}
        for w in args.joint_msra_weight:
            plans[f"joint_p{patience}_mw{w:g}"] = {**base, "datasets": [{**msra_data, "weight": w}]}
    for dim in args.class_bag_dim:
        own = lambda plan, dim=dim: {**plan, "model": {**plan["model"], "class_bag_dim": dim}}  # noqa: E731
        plans[f"classifier_cb{dim}"] = own(plans["classifier"])
        plans[f"joint_cb{dim}"] = own(plans["joint"])
        for w in args.joint_msra_weight:
            plans[f"joint_p{TRAINING['patience']}_mw{w:g}_cb{dim}"] = own({**plans["joint"], "datasets": [{**msra_data, "weight": w}]})
    for seed in args.classifier_seed:
        for name in ["classifier", *(f"classifier_cb{d}" for d in args.class_bag_dim)]:
            plans[f"{name}_s{seed}"] = {**plans[name], "training": {**plans[name]["training"], "seed": seed}}
    for patience in args.single_patience:
        for single in ("tagger", "classifier"):
            plans[f"{single}_p{patience}"] = {**plans[single], "training": {**training, "patience": patience}}
    for name in plans:
        if name in cells:
            log.info("%s: done, skipped (--force %s to redo)", name, name)
    # Cells are independent but for the students, which read their teacher's run: with --jobs N, N train side
    # by side, one thread each, and the students after the rest.
    todo = [name for name in plans if name not in cells]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for group in ([n for n in todo if not n.startswith("student")], [n for n in todo if n.startswith("student")]):
            futures = {pool.submit(train_cell, name, plans[name], work): name for name in group}
            log.info("training %s", ", ".join(futures.values()) or "nothing")
            for future in as_completed(futures):
                cells[futures[future]] = future.result()
                h.write_results(path, results, render)
    for tagger in [n for n in cells if n.startswith("tagger")]:
        timing = tagger.replace("tagger", "latency")
        if timing not in cells:
            cells[timing] = latency(Path(cells[tagger]["run"]), fifty_char_texts(msra["test"], 1000), work)
            h.write_results(path, results, render)
    compared = args.compare_latency.split(",") if args.compare_latency else []
    if compared:  # timed anew on every call (the machine's speed drifts by tens of percent); earlier ones are kept
        unknown = [n for n in compared if n not in cells or "bundle" not in cells[n]]
        if unknown:
            sys.exit(f"--compare-latency: {', '.join(unknown)} is no latency cell of {path}; those are: "
                     f"{', '.join(n for n in cells if 'bundle' in cells[n]) or 'none yet'}")
        if "latency_compare" in cells:
            results.setdefault("latency_compare_earlier", []).append(cells["latency_compare"])
        cells["latency_compare"] = compare_latency({n: Path(cells[n]["bundle"]) for n in compared}, fifty_char_texts(msra["test"], 1000))
        h.write_results(path, results, render)
    for width in args.compress_width:
        name = f"pruned_w{width.replace('/', '_')}"
        if name not in cells:
            log.info("compressing %s to width %s", args.teacher, width)
            cells[name] = compress_cell(work / args.teacher, work / name, width, args.recover_epochs, fifty_char_texts(msra["test"], 1000))
            h.write_results(path, results, render)
    results["verdict"] = verdict(cells, results.get("latency_compare_earlier", []))
    h.write_results(path, results, render)
    print(path.with_suffix(".md").read_text(encoding="utf-8"))


def verdict(cells: dict[str, Any], earlier: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tagger_f1 = cells.get("tagger", {}).get("test", {}).get("entities", {}).get("micro_f1")
    if tagger_f1 is not None:
        out["tagger_f1"] = {"value": tagger_f1, "target": f">= {TARGETS['tagger_f1']}", "met": tagger_f1 >= TARGETS["tagger_f1"]}
    for name in sorted(n for n in cells if n.startswith("latency") and n != "latency_compare"):
        p50, suffix = cells[name]["p50_ms"], name[len("latency"):]
        # the latency target is the BiGRU-CRF tagger's; a CNN cell's verdict says which encoder it is
        encoder = cells.get(f"tagger{suffix}", {}).get("config", {}).get("model", {}).get("encoder", "bigru")
        out[f"p50_ms{suffix}"] = {"value": p50, "target": f"<= {TARGETS['p50_ms']}", "encoder": encoder, "met": p50 <= TARGETS["p50_ms"]}
        f1 = cells.get(f"tagger{suffix}", {}).get("test", {}).get("entities", {}).get("micro_f1")
        if suffix and f1 is not None:
            out[f"tagger_f1{suffix}"] = {"value": f1, "target": f">= {TARGETS['tagger_f1']}", "met": f1 >= TARGETS["tagger_f1"]}
    # judged by the median of every side-by-side timing of the bundle with the current decoding (all of them
    # where none is), not by the luckiest or the latest
    timings = [*earlier, *([cells["latency_compare"]] if "latency_compare" in cells else [])]
    for name in dict.fromkeys(n for t in timings for n in t["p50_ms"]):
        current = [t["p50_ms"][name] for t in timings if name in t["p50_ms"] and t.get("decoder") == DECODER]
        seen = current or [t["p50_ms"][name] for t in timings if name in t["p50_ms"]]
        p50 = statistics.median(seen)
        out[f"p50_ms_compared{name[len('latency'):]}"] = {"value": round(p50, 4), "timings": seen, "decoder": DECODER if current else f"before {DECODER}",
                                                          "target": f"<= {TARGETS['p50_ms']}", "met": p50 <= TARGETS["p50_ms"]}
    for name in sorted(n for n in cells if n.startswith("pruned_")):
        c, suffix = cells[name], name[len("pruned"):]
        f1 = c["test"].get("entities", {}).get("micro_f1")
        out[f"tagger_f1{suffix}"] = {"value": f1, "target": f">= {TARGETS['tagger_f1']}", "met": f1 is not None and f1 >= TARGETS["tagger_f1"]}
        out[f"p50_ms{suffix}"] = {"value": c["p50_ms"]["pruned"], "parent": c["p50_ms"]["parent"], "target": f"<= {TARGETS['p50_ms']}", "encoder": "bigru",
                                  "met": c["p50_ms"]["pruned"] <= TARGETS["p50_ms"]}
    # A joint cell is compared with the single-task cells of its own patience where they ran
    # (--single-patience), else with the patience-2 ones; the verdict records both patiences.
    for name in sorted(n for n in cells if n.startswith("joint")):
        joint, suffix = cells[name], name[len("joint"):]
        if "classifier" not in cells or "tagger" not in cells or not joint["datasets"]:
            continue
        patience = joint["config"]["training"]["patience"]
        same = f"_p{patience}" if patience != TRAINING["patience"] else ""
        bag = joint["config"]["model"].get("class_bag_dim", 0)
        tagger_cell = cells.get(f"tagger{same}", cells["tagger"])
        classifier_cell = cells.get(f"classifier_cb{bag}") if bag else cells.get(f"classifier{same}", cells["classifier"])
        if classifier_cell is None:
            continue
        single_f1 = tagger_cell["test"]["entities"]["micro_f1"]
        joint_f1 = joint["datasets"][0]["test"]["entities"]["micro_f1"]
        joint_acc, single_acc = joint["test"]["accuracy"], classifier_cell["test"]["accuracy"]
        extra = {"patience": patience, "single_patience": tagger_cell["config"]["training"]["patience"]} if suffix else {}
        out[f"joint_entity_gap{suffix}"] = {"joint": joint_f1, "single": single_f1, "gap": joint_f1 - single_f1, **extra, "met": joint_f1 >= single_f1 - TARGETS["joint_gap"]}
        extra = {**extra, "single_patience": classifier_cell["config"]["training"]["patience"]} if suffix else {}
        if bag:
            extra["single_cell"] = f"classifier_cb{bag}"
        out[f"joint_cat_gap{suffix}"] = {"joint": joint_acc, "single": single_acc, "gap": joint_acc - single_acc, **extra, "met": joint_acc >= single_acc - TARGETS["joint_gap"]}
    return out


def render(results: dict[str, Any]) -> str:
    cells = results["cells"]
    last = results["invocations"][-1]
    lines = ["# Span tagging and joint models (benchmarks/joint.py)", "",
             f"Command: `{last['command']}`  ", f"Machine: {last['machine']['cpu_model']}, {last['machine']['affinity_cpus']} CPUs, "
             f"1 torch thread, CPU only  ", f"Date: {last['started']}  ", f"Commit: {last['git']['commit']} (dirty tracked files: {last['git']['dirty_tracked_files']})",
             "", f"MSRA NER split: {results['split']}; {results.get('msra_repaired_tags')} I- tags that continue no entity "
             "(sentences cut inside a name) read as B-, as conlleval reads them. online_shopping_10_cats `cat`: the fixed train/dev/test files.", ""]
    rows = []
    for name in ["tagger", *sorted(n for n in cells if n.startswith(("tagger_", "student_"))), "classifier", *sorted(n for n in cells if n.startswith("classifier_")),
                 *sorted(n for n in cells if n.startswith("joint"))]:
        c = cells.get(name)
        if not c:
            continue
        ent = c["test"].get("entities") or (c["datasets"][0]["test"].get("entities") if c["datasets"] else None)
        rows.append([name, c["config"]["model"]["name"], h.pct(ent["micro_f1"]) if ent else "—", h.pct(ent["macro_f1"]) if ent else "—",
                     h.pct(c["test"].get("accuracy")), h.pct(c["test"].get("macro_f1")), c["epochs"], c["train_seconds"]])
    lines += ["## Test scores", ""]
    lines += h.md_table(["cell", "model", "entity micro F1", "entity macro F1", "cat accuracy", "cat macro F1", "epochs", "train s"], rows)
    notes = [f"- {name}: {c['note']}" for name, c in cells.items() if c.get("note") and not name.startswith("latency")]
    if notes:
        lines += ["", *notes]
    joint_rows = [[name, c["config"]["training"]["patience"], c["config"]["model"].get("tag_weight", 1.0), c["config"]["datasets"][0].get("weight", 1.0),
                   c["config"]["model"].get("class_bag_dim", 0), h.pct(c["datasets"][0]["dev"]["entities"]["micro_f1"]), h.pct(c["dev"].get("accuracy"))]
                  for name, c in sorted(cells.items()) if name.startswith("joint") and c["datasets"]]
    if joint_rows:
        lines += ["", "Joint cells on dev (the scores that choose among them):", ""]
        lines += h.md_table(["cell", "patience", "tag_weight", "MSRA weight", "class bag", "dev entity micro F1", "dev cat accuracy"], joint_rows)
    for name in ("tagger", *sorted(n for n in cells if n.startswith("joint"))):
        c = cells.get(name)
        ent = c and (c["test"].get("entities") or (c["datasets"][0]["test"].get("entities") if c["datasets"] else None))
        if ent:
            lines += ["", f"Per type ({name}, MSRA test):", ""]
            lines += h.md_table(["type", "P", "R", "F1", "support"], [[t, h.pct(r["precision"]), h.pct(r["recall"]), h.pct(r["f1"]), r["support"]] for t, r in ent["per_type"].items()])
    for name in sorted(n for n in cells if n.startswith("latency") and n != "latency_compare"):
        lat, tagger = cells[name], name.replace("latency", "tagger")
        model = cells.get(tagger, {}).get("config", {}).get("model", {})
        encoder = (f"CNN, {model.get('num_layers')} layers of {model.get('hidden_size')} kernel-{model.get('kernel_size')} filters"
                   if model.get("encoder") == "cnn" else f"GRU {model.get('hidden_size', '?')} units per direction")
        lines += ["", f"## Bundle latency ({tagger}, {encoder})", "",
                  f"On {lat.get('machine', 'the machine of the invocation that trained it')}: {lat['n_texts']} texts of {lat['text_chars']} characters from MSRA test, one at a time, 1 thread, features, ONNX and numpy "
                  f"Viterbi included: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms (best of rounds {lat['rounds_p50_ms']}); bundle {lat['total_bytes'] / 1e6:.1f} MB; "
                  f"parity {json.dumps(lat['parity']['fp32'])}", *(["", lat["note"]] if lat.get("note") else [])]
        if "full_viterbi_p50_ms" in lat:
            lines += ["", f"Decoding every position with Viterbi instead of best_path (which proves most characters O and decodes only "
                          f"between them), same bundle and texts, rounds interleaved: p50 {lat['full_viterbi_p50_ms']} ms "
                          f"(rounds {lat['full_viterbi_rounds_p50_ms']}); best_path / Viterbi = {lat['p50_ms'] / lat['full_viterbi_p50_ms']:.2f}."]
    if "latency_compare" in cells:
        c = cells["latency_compare"]
        lines += ["", "## Bundles timed side by side", "",
                  f"On {c['machine']}: {c['n_texts']} texts of {c['text_chars']} characters from MSRA test, one at a time, 1 thread, features, ONNX and "
                  "decoding included; the bundles timed in one process, rounds interleaved, median of the rounds.", ""]
        rows = []
        for name, p50 in c["p50_ms"].items():
            tagger = cells.get(name.replace("latency", "tagger"), {})
            model = tagger.get("config", {}).get("model", {})
            f1 = tagger.get("test", {}).get("entities", {}).get("micro_f1")
            rows.append([name, f"GRU {model.get('hidden_size')}, embed {model.get('embed_dim')}, n-gram {model.get('gram_dim')}", h.pct(f1),
                         p50, f"{c['ratio'][name]:.2f}x", c["rounds_p50_ms"][name]])
        lines += h.md_table(["cell", "shape", "test entity F1", "p50 ms", "ratio", "rounds p50 ms"], rows)
        earlier = results.get("latency_compare_earlier", [])
        if earlier:
            names = list(dict.fromkeys(n for e in [*earlier, c] for n in e["p50_ms"]))
            lines += ["", "Every side-by-side timing, oldest first (p50 ms; the same bundles run up to 30% slower or faster from one timing to the next on this shared machine, "
                      f"their ratios much less). `decoding`: whether the timing used best_path's per-tag bound ({DECODER} on) or the older, looser one; "
                      "the verdict takes a bundle's timings with the current one where there are any:", ""]
            lines += h.md_table(["started", "decoding", *names], [[e.get("started", "?"), "current" if e.get("decoder") == DECODER else "older",
                                                                   *(e["p50_ms"].get(n, "—") for n in names)] for e in [*earlier, c]])
    pruned = sorted(n for n in cells if n.startswith("pruned_"))
    if pruned:
        lines += ["", "## Pruned taggers (`zhcls compress`, recovered by tagging distillation from the parent)", "",
                  "p50: 50-character MSRA test texts, one at a time, 1 thread, features, ONNX and Viterbi included; the parent's and the pruned "
                  "bundle timed in the same process, interleaved, median of the rounds.", ""]
        rows = []
        for name in pruned:
            c = cells[name]
            shape = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in c["pruned"].items() if k in ("hidden_size", "gram_dim", "vocab"))
            before = c["before"]["test"].get("entity_f1")
            rows.append([name, c["parent"].rsplit("/", 1)[-1], shape, h.pct(before), h.pct(c["test"]["entities"]["micro_f1"]),
                         h.pct(c["pruned_only_dev_f1"]), h.pct(c["dev"]["entities"]["micro_f1"]), c["kept"],
                         f"{c['p50_ms']['parent']} -> {c['p50_ms']['pruned']} ({c['p50_ratio']:.2f}x)", f"{c['bytes'][1] / c['bytes'][0]:.2f}x",
                         c["epochs"], c["train_seconds"], c["machine"]])
        lines += h.md_table(["cell", "parent", "pruned", "parent test F1", "test F1", "dev F1 pruned only", "dev F1 recovered", "kept",
                             "p50 ms parent -> pruned", "size", "recovery epochs", "recovery s", "machine"], rows)
    if cells.get("tagger", {}).get("test_span_errors"):
        lines += ["", "Most frequent span errors (tagger, MSRA test):", ""]
        lines += h.md_table(["error", "gold", "predicted", "count"], [[e["error"], e["gold"], e["pred"], e["count"]] for e in cells["tagger"]["test_span_errors"]], "lllr")
    v = results.get("verdict", {})
    if v:
        lines += ["", "## Targets", ""]
        for key, r in v.items():
            lines.append(f"- {key}: {json.dumps(r)} -> {'met' if r['met'] else 'MISSED'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
