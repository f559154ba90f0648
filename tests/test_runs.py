"""`zhcls runs list / compare`: a table of finished runs, deltas against the first, a trend plot by date."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_corpus, run_cli, write_config, write_jsonl

DATES = {"c-small": "2025-03-01T10:00:00+00:00", "c-mid": "2025-01-01T10:00:00+00:00", "c-auto": "2025-02-01T10:00:00+00:00"}


@pytest.fixture()
def cli():
    """The real `zhcls` app, run in-process through zhcls.cli.main (same exit-code mapping)."""
    return run_cli


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """Three real tfidf runs, one trained on rotated labels (so it is worse), dated out of name order, two with a git commit."""
    from zhcls import load_config, train

    root = tmp_path_factory.mktemp("runs_cmp")
    tr = write_jsonl(root / "train.json", make_corpus(12, seed=1))
    dev = write_jsonl(root / "dev.json", make_corpus(4, seed=2))
    test = write_jsonl(root / "test.json", make_corpus(4, seed=3))
    bad = make_corpus(12, seed=1)
    rotate = dict(zip(sorted(set(bad.labels)), sorted(set(bad.labels))[1:] + sorted(set(bad.labels))[:1]))
    bad.labels = [rotate[label] if i % 2 else label for i, label in enumerate(bad.labels)]
    noisy = write_jsonl(root / "noisy.json", bad)
    for name, c in (("c-small", "1e-4"), ("c-mid", "0.3"), ("c-auto", '"auto"')):
        cfg = write_config(root / f"{name}.toml", noisy if name == "c-small" else tr, dev, model="tfidf.v1", extra="")
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("[data]\n", f'[data]\ntest = "{test}"\n'), encoding="utf-8")
        run = train(load_config(cfg, [f"model.C={c}"]), root / "runs" / name).run_dir
        meta = json.loads((run / "model-best" / "zhcls.json").read_text(encoding="utf-8"))
        meta["created"] = DATES[name]
        (run / "model-best" / "zhcls.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        # fixed commits for the assertions; c-mid stands for a run recorded outside a git checkout
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        metrics["git_commit"] = None if name == "c-mid" else f"{name.encode().hex():0<40}"
        (run / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False), encoding="utf-8")
    (root / "runs" / "unfinished").mkdir()  # no metrics.json: not listed
    return root / "runs"


def test_runs_list(runs_dir, cli, capsys):
    code, out, err = cli(["runs", "list", runs_dir, "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["c-mid", "c-auto", "c-small"]  # by date
    train_sha = rows[0]["data"]
    assert len(train_sha) == 12 and rows[1]["data"] == train_sha and rows[2]["data"] != train_sha  # c-small: other data
    assert all(r["model"] == "tfidf.v1" for r in rows)
    assert rows[0]["git_commit"] is None and rows[2]["git_commit"].startswith("632d736d616c6c")
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["dev_macro_f1"] is not None for r in rows)

    code, out, _ = cli(["runs", "list", runs_dir], capsys)
    assert code == 0
    for text in ("c-small", "c-mid", "c-auto", "tfidf.v1", train_sha, "632d736d61", "test macro_f1", "2025-03-01"):
        assert text in out, text
    assert "unfinished" not in out
    code, _, err = cli(["runs", "list", runs_dir / "nope"], capsys)
    assert code == 2 and "no such directory" in err


def test_runs_compare_three_runs_with_trend_plot(runs_dir, tmp_path, cli, capsys):
    from PIL import Image

    order = ["c-small", "c-mid", "c-auto"]
    plot = tmp_path / "trend.png"
    args = ["runs", "compare", *(runs_dir / n for n in order), "--metric", "accuracy", "--plot", plot]
    code, out, err = cli([*args, "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    rows = result["rows"]
    assert [r["name"] for r in rows] == order  # the order given; the first is the reference
    acc = [json.loads((runs_dir / n / "metrics.json").read_text(encoding="utf-8"))["test"]["accuracy"] for n in order]
    assert [r["test_accuracy"] for r in rows] == acc
    assert [r["delta"] for r in rows] == pytest.approx([0.0, acc[1] - acc[0], acc[2] - acc[0]], abs=1e-12)
    assert acc[2] > acc[0]  # the runs differ, so the comparison shows something
    assert [p["name"] for p in result["trend"]] == ["c-mid", "c-auto", "c-small"]  # by date, for the plot

    image = Image.open(io.BytesIO(plot.read_bytes()))
    image.verify()
    pixels = np.asarray(Image.open(plot).convert("L"))
    assert pixels.shape[1] > 300 and pixels.min() < 100

    code, out, _ = cli(args[:-2], capsys)  # the table
    assert code == 0 and "Δ vs first" in out and "test accuracy" in out
    assert f"{acc[2] - acc[0]:+.4f}" in out

    code, _, err = cli(["runs", "compare", runs_dir / "c-mid", "--metric", "f9"], capsys)
    assert code == 2 and "unknown metric 'f9'" in err
    code, _, err = cli(["runs", "compare", runs_dir / "unfinished"], capsys)
    assert code == 2 and "not a finished run" in err
