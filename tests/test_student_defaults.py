"""benchmarks/student_defaults.py: the `vectors=unlabeled` setting (vectors trained once per task, reused)
and the finding its section renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _harness as h  # noqa: E402
import student_defaults as sd  # noqa: E402

pytest.importorskip("gensim")


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_task_vectors_are_trained_once_and_cover_the_model_vocabulary(tmp_path):
    texts = ["这个手机很好用", "物流很快，包装很好", "质量太差了，不推荐", "手机屏幕很清楚", "ABC 很好"]
    train = _jsonl(tmp_path / "train.json", [{"sentence": t, "label": str(i % 2)} for i, t in enumerate(texts)])
    unlabeled = _jsonl(tmp_path / "unlabeled.json", [{"sentence": t} for t in texts * 20])
    task = h.Task("toy/few_all", train, train, train, "sentence", "label", unlabeled=unlabeled)
    work = tmp_path / "work"
    first = sd.task_vectors(task, tmp_path, work)
    assert first["texts"] == {"unlabeled": 100, "train": 5} and first["dim"] == 128
    assert 0 < first["rows_covered"] <= first["vocab_rows"]  # "abc" is lowercased on both sides: "a", "b", "c" are covered too
    mtime = Path(first["path"]).stat().st_mtime_ns
    again = sd.task_vectors(task, tmp_path, work)
    assert again == first and Path(first["path"]).stat().st_mtime_ns == mtime  # reused, not trained again

    over = sd.cell_overrides(sd.SETTINGS["seed=43+vectors"][1], first)
    assert over == {"model": {"vectors": first["path"]}, "training": {"seed": 43}}
    assert sd.cell_overrides(sd.SETTINGS["seed=43"][1], None) == sd.SETTINGS["seed=43"][1]


def test_vectors_section_wires_in_on_a_paired_test_over_the_seeds():
    def results(vec_gains: list[float], scaled_gains: list[float] | None = None) -> dict:
        by = {}
        for i, b in enumerate(["base", "seed=43", "seed=44"]):
            runs = [("vectors=unlabeled" if i == 0 else f"seed={42 + i}+vectors", vec_gains[i])]
            if scaled_gains is not None:
                runs.append(("vectors=unlabeled,scaled" if i == 0 else f"seed={42 + i}+vectors,scaled", scaled_gains[i]))
            for t in sd.TASK_NAMES[:2]:
                acc = 0.5 + 0.01 * i  # base's mean moves 2 points over the seeds
                by.setdefault(b, {})[t] = {"dev": {"accuracy": acc}, "test": {"accuracy": acc}}
                for v, gain in runs:
                    by.setdefault(v, {})[t] = {"dev": {"accuracy": acc + gain}, "test": {"accuracy": acc}}
        return {"results": {"textcnn.v1": by}}

    # +1.00 on the mean, paired differences +3, -1, +1: standard error 1.15, so 2 SE is 2.31
    noisy = "\n".join(sd.vectors_section(results([0.03, -0.01, 0.01]), "textcnn.v1"))
    assert "+1.00 points (paired differences by seed +3.00, -1.00, +1.00: standard error 1.15" in noisy
    assert "not more than 2 standard errors (2.31), so not wired into `zhcls build`." in noisy
    # +1.50, below the 2-point seed range of base's mean (the old criterion) but steady across the seeds: wired
    steady = "\n".join(sd.vectors_section(results([0.01, 0.02, 0.015]), "textcnn.v1"))
    assert "more than 2 standard errors (0.58), so it is wired into `zhcls build` (under the old seed-range criterion, 2.00: not wired)" in steady
    assert "**Changed after the first render**" in steady and "not the uncertainty of a 3-seed mean" in steady
    assert "every seed above every `base` seed" in "\n".join(sd.vectors_section(results([0.03, 0.03, 0.03]), "textcnn.v1"))
    # as copied and rescaled side by side: a finding each, and the rescaled against the copied, pair by pair
    both = "\n".join(sd.vectors_section(results([0.03, -0.01, 0.01], [0.04, 0.02, 0.03]), "textcnn.v1"))
    assert "**Finding, `vectors=unlabeled`:** gain over `base`, mean over 3 seeds: +1.00 points" in both
    assert "**Finding, `vectors=unlabeled,scaled`:** gain over `base`, mean over 3 seeds: +3.00 points" in both
    assert "Rescaled against as copied: +2.00 points on the mean; higher in 6 of 6 (task, seed) pairs" in both


def test_paired_standard_error():
    assert sd.paired([1.0, 2.0, 3.0]) == (2.0, pytest.approx(1 / 3**0.5))
