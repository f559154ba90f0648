"""fasttext.v1's pooling: fastText's mean of embeddings against TF-IDF weights (sublinear tf, idf, L2 norm).

    .venv/bin/python benchmarks/fasttext_weighting.py             # eprstmt and tnews few_all, resumable
    .venv/bin/python benchmarks/fasttext_weighting.py --report    # the Markdown again from the JSON

Each cell is `zhcls train` of fasttext.v1 (embed_dim 100, 200,000 buckets, batch 16) with `weighting`,
`ngrams` and the learning rate of the grid, up to 60 epochs with early stopping on dev accuracy (patience 5).
The weighting to keep is read off dev; test is shown for the record. Results: results/fasttext_weighting.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import _harness as h
from _harness import REPO, RESULTS

TASKS = ("eprstmt/few_all", "tnews/few_all")
GRID = {"weighting": ("mean", "tfidf"), "ngrams": (2, 3), "lr": (0.01, 0.03, 0.1)}


def cell_config(task: h.Task, data_dir: Path, work: Path) -> Path:
    cfg = work / f"{task.name.replace('/', '-')}.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        "schema_version = 1\n[data]\n"
        + "".join(f'{k} = "{data_dir / v}"\n' for k, v in (("train", task.train), ("dev", task.dev), ("test", task.test)))
        + f'text_field = "{task.text_field}"\nlabel_field = "{task.label_field}"\n'
        + '[model]\nname = "fasttext.v1"\nembed_dim = 100\nbuckets = 200000\n'
        + '[training]\nbatch_size = 16\nmetric = "accuracy"\nepochs = 60\npatience = 5\nthreads = 2\n',
        encoding="utf-8",
    )
    return cfg


def run_cell(cfg: Path, out: Path, weighting: str, ngrams: int, lr: float) -> dict[str, Any]:
    if not (out / "metrics.json").is_file():
        sets = [f"model.weighting={weighting}", f"model.ngrams={ngrams}", f"training.lr={lr}"]
        cmd = [str(REPO / ".venv" / "bin" / "zhcls"), "train", str(cfg), "-o", str(out), "--force", *[a for s in sets for a in ("--set", s)]]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    fit = m.get("fit", {})
    return {"dev": m["dev"]["accuracy"], "test": m["test"]["accuracy"], "epochs": fit.get("epochs"), "stopped": fit.get("stopped"),
            "train_seconds": m.get("train_seconds")}


def render(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = ["# fasttext.v1: mean pooling against TF-IDF weighting", "",
             f"- command: `{env['command']}`", f"- machine: {env['machine']['cpu_model']}, {env['machine']['os_cpu_count']} cores, load {env['machine']['loadavg_at_start']} at the start; date {env['started']}",
             f"- git: {env['git']['commit'][:12]}", "",
             "Accuracy (%). Every cell trains to early stopping on dev (patience 5, at most 60 epochs); `stopped` says why it ended.", ""]
    for task, cells in results["tasks"].items():
        rows = [(k.split("|")[0], k.split("|")[1], k.split("|")[2], h.pct(c["dev"]), h.pct(c["test"]), c["epochs"], c["stopped"])
                for k, c in cells.items()]
        best = {w: max((c["dev"] for k, c in cells.items() if k.startswith(w + "|")), default=None) for w in GRID["weighting"]}
        lines += [f"## {task}", "", *h.md_table(("weighting", "ngrams", "lr", "dev acc", "test acc", "epochs", "stopped"), rows), "",
                  "Best dev: " + ", ".join(f"{w} {h.pct(v)}" for w, v in best.items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=h.default_data_dir())
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/zhcls-bench/fasttext-weighting"))
    p.add_argument("--report", action="store_true")
    args = p.parse_args(argv)
    path = RESULTS / "fasttext_weighting.json"
    results = h.load_results(path)
    if not args.report:
        tasks = [h.task(name) for name in TASKS]
        h.verify_data(args.data_dir, [f for t in tasks for f in (t.train, t.dev, t.test)])
        results["environment"] = h.environment("benchmarks/fasttext_weighting.py", sys.argv[1:] if argv is None else argv)
        for task in tasks:
            cfg = cell_config(task, args.data_dir, args.work_dir)
            cells = results.setdefault("tasks", {}).setdefault(task.name, {})
            for weighting, ngrams, lr in itertools.product(*GRID.values()):
                key = f"{weighting}|{ngrams}|{lr}"
                out = args.work_dir / task.name.replace("/", "-") / key.replace("|", "-")
                cells[key] = run_cell(cfg, out, weighting, ngrams, lr)
                h.write_results(path, results, render)
    h.atomic_write(RESULTS / "fasttext_weighting.md", render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
