"""`zhcls report`: every section, valid PNGs with Chinese drawn as glyphs, baseline deltas, the CI gate's exit codes."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import make_corpus, run_cli, write_config, write_jsonl

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402  (matplotlib brings pillow)

SECTIONS = ["Headline metrics", "Per class", "Confusion matrix", "Learning curves", "Most confused pairs", "Calibration",
            "Latency and size", "Data", "Config diff against the baseline"]


@pytest.fixture()
def cli():
    """The real `zhcls` app, run in-process through zhcls.cli.main (same exit-code mapping)."""
    return run_cli


def _train(root: Path, name: str, model: str, extra: str = "", overrides: tuple[str, ...] = ()) -> Path:
    from zhcls import load_config, train

    files = {s: root / f"{s}.json" for s in ("train", "dev", "test")}
    if not files["train"].exists():
        for path, seed, n in zip(files.values(), (1, 2, 3), (12, 4, 4)):
            write_jsonl(path, make_corpus(n, seed=seed))
    cfg = write_config(root / f"{name}.toml", files["train"], files["dev"], model=model, extra=extra)
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("[data]\n", f'[data]\ntest = "{files["test"]}"\n'), encoding="utf-8")
    return train(load_config(cfg, list(overrides)), root / name).run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report_runs")
    return {
        "cnn": _train(root, "cnn", "textcnn.v1", overrides=("model.embed_dim=16", "model.num_filters=16")),
        "tfidf": _train(root, "tfidf", "tfidf.v1"),
    }


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


def _assert_png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    Image.open(io.BytesIO(data)).verify()
    image = Image.open(io.BytesIO(data)).convert("L")
    assert image.width > 100 and image.height > 100
    assert np.asarray(image).min() < 100  # something dark was drawn, not a blank canvas
    return image


def test_markdown_report_has_every_section_and_valid_figures(runs, tmp_path, cli, capsys):
    out = tmp_path / "ci" / "report.md"
    code, stdout, err = cli(["report", runs["cnn"], "--baseline", runs["tfidf"], "--max-drop", "1", "-o", out], capsys)
    assert code == 0, err
    assert stdout.strip() == str(out)
    text = out.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"## {section}" in text, section
    assert "Quality gate passed" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(Path(i).name for i in images) == ["calibration.png", "confusion.png", "curves.png", "per_class.png"]
    for rel in images:
        _assert_png((out.parent / rel).read_bytes())
    assert "ECE = " in text and "体育" in text  # Chinese labels stay readable in the text too
    assert "model.name | 'tfidf.v1' | 'textcnn.v1'" in text  # config diff against the baseline run
    assert "| test | 12 |" in text and "same" in text  # data summary, fingerprints equal to the baseline's
    assert not list(out.parent.glob(".*tmp"))  # atomic writes leave no temporaries


def test_html_report_is_one_self_contained_file(runs, tmp_path, cli, capsys):
    out = tmp_path / "report.html"
    code, _, err = cli(["report", runs["cnn"], "-o", out, "--format", "html"], capsys)
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 4
    for uri in uris:
        _assert_png(base64.b64decode(uri))
    assert not re.search(r'src="(?!data:)', page)  # no external file referenced
    assert not (tmp_path / "report_figures").exists()
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page


def _has_cjk_font() -> bool:
    from zhcls.report.figures import cjk_font

    return cjk_font() is not None


def test_chinese_is_drawn_with_real_glyphs(runs, tmp_path):
    """Tofu boxes look the same for every character: two different hanzi must give different pixels."""
    from zhcls.report import build_report, write_report
    from zhcls.report.figures import text_png

    if not _has_cjk_font():
        pytest.skip("no CJK font for matplotlib, so Chinese cannot be drawn: apt-get install fonts-noto-cjk (.ci/run does)")
    a, b = (np.asarray(_assert_png(text_png(ch))) for ch in ("体", "财"))
    assert a.shape == b.shape and (a != b).mean() > 0.01

    # The negative control: with a Latin-only font the two characters are the same box, and matplotlib warns.
    import matplotlib
    from matplotlib.figure import Figure

    def latin_only(ch: str) -> np.ndarray:
        with matplotlib.rc_context({"font.family": "DejaVu Sans"}), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig = Figure(figsize=(1.5, 1.0))
            fig.text(0.5, 0.5, ch, ha="center", va="center", fontsize=40)
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
        assert any("missing from font" in str(w.message) for w in caught)
        return np.asarray(Image.open(buf).convert("L"))

    assert (latin_only("体") == latin_only("财")).all()

    # The report's own figures (Chinese tick labels and titles) drew without a missing-glyph warning.
    report = build_report(runs["cnn"])
    write_report(report, tmp_path / "r.md")
    assert report["figure_warnings"] == []
    assert "boxes" not in (tmp_path / "r.md").read_text(encoding="utf-8")


def test_without_a_cjk_font_the_report_says_so_once_at_the_end(runs, tmp_path, cli, capsys, monkeypatch):
    """No font means every hanzi is a box: one line saying so, not one warning per glyph, and not at the top."""
    import zhcls.report.figures as figures

    monkeypatch.setattr(figures, "cjk_font", lambda: None)
    out = tmp_path / "report.md"
    code, _, err = cli(["report", runs["cnn"], "-o", out], capsys)
    assert code == 0, err
    warned = [line for line in err.splitlines() if "glyph" in line.lower() or "font" in line.lower()]
    assert warned == [f"warning: {figures.NO_FONT}"]
    text = out.read_text(encoding="utf-8")
    assert text.count("fonts-noto-cjk") == 1 and "missing from font" not in text
    assert text.index("fonts-noto-cjk") > text.index("## Config diff against the baseline")


def test_a_few_missing_glyphs_make_one_line():
    from zhcls.report.figures import Renderer

    r, out = Renderer(), {}
    r.font = "Some Font"  # as if a CJK font were installed; DejaVu Sans lacks the characters below
    with r.figure(1.5, 1.0, out, "a.png") as fig:
        fig.text(0.5, 0.5, "体财体", fontfamily="DejaVu Sans")
    with r.figure(1.5, 1.0, out, "b.png") as fig:
        fig.text(0.5, 0.5, "科", fontfamily="DejaVu Sans")
    assert r.warnings == ["some characters are missing from font 'Some Font' and show as boxes (a.png: 体财; b.png: 科)"]


def test_pareto_front_and_its_figure(tmp_path):
    """build's and compress's accuracy-against-latency figure: one drawing, written atomically."""
    from zhcls.report.figures import pareto_front, write_pareto_figure

    rows = [
        {"name": "tfidf.v1", "p50_ms": 0.04, "dev": 0.80, "precision": "fp32", "within_budget": True},
        {"name": "fasttext.v1", "p50_ms": 0.04, "dev": 0.78, "precision": "fp32", "within_budget": True},  # as fast, worse
        {"name": "textcnn.v1+int8", "p50_ms": 0.10, "dev": 0.79, "precision": "int8", "within_budget": True},  # slower, worse
        {"name": "distill-textcnn.v1", "p50_ms": 0.12, "dev": 0.83, "precision": "fp32", "within_budget": True, "chosen": True},
        {"name": "ensemble", "p50_ms": 0.9, "dev": 0.85, "precision": "fp32", "within_budget": False},
    ]
    assert [r["name"] for r in pareto_front(rows)] == ["tfidf.v1", "distill-textcnn.v1", "ensemble"]
    path = tmp_path / "out" / "build.png"
    assert write_pareto_figure(path, rows, "accuracy", 0.5)
    _assert_png(path.read_bytes())
    assert sorted(p.name for p in path.parent.iterdir()) == ["build.png"]  # no temporary file left beside it


def test_deltas_against_a_hand_made_baseline(runs, tmp_path):
    from zhcls.report import build_report

    test = _metrics(runs["cnn"])["test"]
    base = copy.deepcopy(test)
    base.update(accuracy=0.25, macro_f1=0.75)
    label = next(iter(base["per_class"]))
    base["per_class"][label].update(precision=0.125, recall=1.0, f1=0.5)
    del base["per_class"][next(reversed(base["per_class"]))]  # a label the baseline never saw
    (tmp_path / "metrics.json").write_text(json.dumps({"test": base}, ensure_ascii=False), encoding="utf-8")

    report = build_report(runs["cnn"], baseline=tmp_path / "metrics.json", predict=False)
    rows = {r["metric"]: r for r in report["headline"]}
    assert rows["accuracy"]["baseline"] == 0.25 and rows["accuracy"]["delta"] == pytest.approx(test["accuracy"] - 0.25, abs=1e-12)
    assert rows["macro_f1"]["delta"] == pytest.approx(test["macro_f1"] - 0.75, abs=1e-12)
    assert rows["micro_f1"]["delta"] == pytest.approx(0.0, abs=1e-12)
    per = {r["label"]: r for r in report["per_class"]}
    mine = test["per_class"][label]
    assert per[label]["delta_precision"] == pytest.approx(mine["precision"] - 0.125, abs=1e-12)
    assert per[label]["delta_recall"] == pytest.approx(mine["recall"] - 1.0, abs=1e-12)
    assert per[label]["delta_f1"] == pytest.approx(mine["f1"] - 0.5, abs=1e-12)
    last = next(reversed(test["per_class"]))
    assert per[last]["new"] and per[last]["delta_f1"] is None
    assert report["config_diff"] is None  # a metrics file has no config

    # `zhcls evaluate --json` output (one split's metrics, no split key) works as a baseline too.
    (tmp_path / "eval.json").write_text(json.dumps(base, ensure_ascii=False), encoding="utf-8")
    again = build_report(runs["cnn"], baseline=tmp_path / "eval.json", predict=False)
    assert again["headline"] == report["headline"]


def _baseline_file(tmp_path: Path, run: Path, **shift: float) -> Path:
    m = _metrics(run)
    for key, d in shift.items():
        m["test"][key] = m["test"][key] + d
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(m, ensure_ascii=False), encoding="utf-8")
    return path


def test_gate_exit_codes(runs, tmp_path, cli, capsys):
    run, out = runs["cnn"], tmp_path / "r.json"  # the report data only: no figures to draw, faster
    same = _baseline_file(tmp_path, run)
    assert cli(["report", run, "--baseline", same, "-o", out], capsys)[0] == 0

    worse_f1 = _baseline_file(tmp_path, run, macro_f1=0.05)  # the baseline was 0.05 better: the run dropped 0.05
    code, _, err = cli(["report", run, "--baseline", worse_f1, "-o", tmp_path / "r.md"], capsys)
    assert code == 3
    assert "gate macro_f1" in err and "FAILED" in err and "quality gate failed on test: macro_f1" in err
    assert "Quality gate failed" in (tmp_path / "r.md").read_text(encoding="utf-8")  # still written, for CI to post
    code, _, err = cli(["report", run, "--baseline", worse_f1, "-o", out], capsys)
    assert code == 3 and json.loads(out.read_text(encoding="utf-8"))["gate"]["failed"] == ["macro_f1"]
    assert cli(["report", run, "--baseline", worse_f1, "--max-drop", "0.06", "-o", out], capsys)[0] == 0
    assert cli(["report", run, "--baseline", worse_f1, "--metric", "accuracy", "-o", out], capsys)[0] == 0

    exactly = _baseline_file(tmp_path, run, accuracy=0.01)  # a drop equal to --max-drop passes
    assert cli(["report", run, "--baseline", exactly, "--max-drop", "0.01", "-o", out], capsys)[0] == 0
    both = _baseline_file(tmp_path, run, accuracy=0.2, macro_f1=0.2)
    code, _, err = cli(["report", run, "--baseline", both, "-o", out], capsys)
    assert code == 3 and "macro_f1, accuracy" in err

    assert cli(["report", run, "-o", out], capsys)[0] == 0  # no baseline: nothing to gate
    code, _, err = cli(["report", run, "--split", "train", "-o", out], capsys)
    assert code == 2 and "no 'train' metrics" in err
    code, _, err = cli(["report", run, "--metric", "f2", "-o", out], capsys)
    assert code == 2 and "gated metric 'f2'" in err
    code, _, err = cli(["report", tmp_path / "nope", "-o", out], capsys)
    assert code == 2 and "not found" in err


def test_dev_gate_and_unreadable_data(runs, tmp_path, cli, capsys):
    run = tmp_path / "moved"
    shutil.copytree(runs["cnn"], run)
    cfg = (run / "config.toml").read_text(encoding="utf-8")
    (run / "config.toml").write_text(re.sub(r'test = ".*"', f'test = "{tmp_path / "gone.json"}"', cfg), encoding="utf-8")
    out = tmp_path / "r.md"
    code, _, err = cli(["report", run, "-o", out], capsys)
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert "the test data could not be read" in text and "gone.json" in text
    assert "No example texts" in text and "Not computed" in text
    assert "calibration.png" not in text and "confusion.png" in text  # what metrics.json holds is still shown

    code, _, err = cli(["report", run, "--split", "dev", "--baseline", _baseline_file(tmp_path, runs["cnn"]), "-o", out], capsys)
    assert code == 0, err
    assert "split dev" in out.read_text(encoding="utf-8")


def test_bundle_latency_and_size(runs, tmp_path, cli, capsys):
    from zhcls.export.onnx import export_bundle

    run = tmp_path / "tfidf"
    shutil.copytree(runs["tfidf"], run)
    export_bundle(run, run / "bundle", latency_texts=20)
    out = tmp_path / "r.md"
    code, _, err = cli(["report", run, "-o", out], capsys)
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert "p50 latency" in text and "linear.safetensors" in text and "KiB" in text

    (run / "bundle" / "tokenizer.json").write_text("{}", encoding="utf-8")  # tampered: reported, not trusted
    code, _, err = cli(["report", run, "--bundle", run / "bundle", "-o", out], capsys)
    assert code == 0, err
    assert "sha256 does not match" in out.read_text(encoding="utf-8")


def test_reliability_bins_and_ece():
    from zhcls.report.calibration import reliability

    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [1.0, 0.0]])
    y = np.array([0, 1, 0, 1, -1])  # the last label is unknown to the model: always wrong
    cal = reliability(proba, y, n_bins=5)
    counts = [b["count"] for b in cal["bins"]]
    assert counts == [0, 0, 1, 2, 2]  # 0.6 | 0.7, 0.8 | 0.9, 1.0
    # bins: {0.6: right} {0.7 right, 0.8 wrong} {0.9 right, 1.0 wrong}
    expected = (abs(1 - 0.6) * 1 + abs(0.5 - 0.75) * 2 + abs(0.5 - 0.95) * 2) / 5
    assert cal["ece"] == pytest.approx(expected)
    assert cal["mce"] == pytest.approx(0.45)
    assert cal["accuracy"] == pytest.approx(0.6)
