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
    env = h.environment("benchmarks/x.py", ["--quick"], "numpy")
    assert env["command"].endswith("benchmarks/x.py --quick") and "numpy" in env["versions"] and "commit" in env["git"]
