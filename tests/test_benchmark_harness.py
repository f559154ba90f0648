"""benchmarks/_harness.py: the one SHA256SUMS check, results written atomically and resumed, Markdown tables."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _harness as h  # noqa: E402


def test_verify_data_names_every_problem(tmp_path):
    (tmp_path / "a.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "b.json").write_text("changed\n", encoding="utf-8")
    good = hashlib.sha256(b"{}\n").hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{good}  a.json\n{'0' * 64}  ./b.json\n", encoding="utf-8")
    assert h.verify_data(tmp_path, ["a.json"]) == {"a.json": good}
    with pytest.raises(SystemExit) as exc:
        h.verify_data(tmp_path, ["a.json", "b.json", "c.json"])
    assert "b.json: sha256" in str(exc.value) and "c.json: not listed" in str(exc.value)


def test_results_are_written_atomically_and_resumed(tmp_path):
    path = tmp_path / "x.json"
    results = h.load_results(path, {"cells": {}})
    results["cells"]["a"] = 1
    h.write_results(path, results, lambda r: "\n".join(h.md_table(("cell", "value"), list(r["cells"].items()))) + "\n")
    assert h.load_results(path, {"cells": {}}) == {"cells": {"a": 1}}
    assert path.with_suffix(".md").read_text(encoding="utf-8") == "| cell | value |\n|---|---:|\n| a | 1 |\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_tasks_and_environment():
    assert {t.name for t in h.TASKS} >= {"tnews/few_all", "eprstmt/0", "online_shopping/cat"}
    t = h.fewclue("tnews")
    assert t.files()[-1] == "fewclue/tnews/unlabeled.json" and t.under(Path("/d"), "tnews").train == "/d/fewclue/tnews/train_few_all.json"
    assert h.fewclue("iflytek").unlabeled is None  # no unlabeled.json ships for it
    env = h.environment("benchmarks/x.py", ["--quick"], "numpy")
    assert env["command"].endswith("benchmarks/x.py --quick") and "numpy" in env["versions"] and "commit" in env["git"]


def test_build_bench_applies_both_selection_rules_to_the_recorded_candidates():
    import build_bench

    candidates = [
        {"name": "bigru.v1", "model": "bigru.v1", "dev": 0.34, "test_accuracy": 0.29, "p50_ms": 0.5, "size_mb": 7.0},
        {"name": "ensemble", "model": "ensemble.v1", "dev": 0.33, "test_accuracy": 0.34, "p50_ms": 1.3, "size_mb": 52.0},
    ]
    cell = {"build": {"candidates": candidates, "n_dev": 240}, "baseline.svm": {"test": {"accuracy": 0.31}}}
    choices = build_bench.rule_choices(cell)
    assert choices["best dev"]["name"] == "bigru.v1" and choices["ensemble within 1 SE"]["name"] == "ensemble"
    assert build_bench.rule_choices({"build": {"candidates": candidates}}) is None  # no dev size recorded: no table row
    table = "\n".join(build_bench.rule_section({"tasks": {"tnews/0": cell}}))
    assert "| tnews/0 | 240 | 31.00 | bigru.v1 (34.00) | 29.00 | -2.00 | ensemble (33.00) | 34.00 | +3.00 |" in table


def test_build_bench_marks_only_builds_that_differ_from_the_default():
    import build_bench

    from zhcls.config import BuildConfig

    assert build_bench.narrowed(None) == "" and build_bench.narrowed({"students": list(BuildConfig().students)}) == ""
    assert build_bench.narrowed({"students": []}) == "students none"
    assert build_bench.narrowed({"candidates": ["tfidf.v1"], "students": list(BuildConfig().students)}) == "candidates tfidf.v1"


def test_runs_are_added_or_restarted_and_p50_is_the_median(tmp_path):
    path, render = tmp_path / "r.json", lambda r: f"{len(r['runs'])} runs\n"
    h.add_run(path, {"of": "a"}, render)
    assert h.add_run(path, {"of": "a"}, render) == {"runs": [{"of": "a"}, {"of": "a"}]}
    other = lambda results, run: results["runs"][0]["of"] != run["of"]  # noqa: E731
    assert h.add_run(path, {"of": "b"}, render, restart=other) == {"runs": [{"of": "b"}]}
    assert path.with_suffix(".md").read_text(encoding="utf-8") == "1 runs\n"
    calls = []
    assert h.p50_us(calls.append, [1, 2, 3]) >= 0 and calls == [1, 2, 3]
