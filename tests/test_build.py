"""`zhcls build` end to end on a tiny corpus: every stage, budget, resume after SIGKILL, determinism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from conftest import make_corpus, write_jsonl
from zhcls.build import select

ZHCLS = [sys.executable, "-m", "zhcls"]


def write_build_config(root: Path) -> Path:
    write_jsonl(root / "train.json", make_corpus(12, seed=1))
    write_jsonl(root / "dev.json", make_corpus(6, seed=2))
    write_jsonl(root / "test.json", make_corpus(4, seed=3))
    (root / "unlabeled.txt").write_text("\n".join(make_corpus(8, seed=4).texts) + "\n", encoding="utf-8")
    cfg = root / "build.toml"
    cfg.write_text(
        f'[data]\ntrain = "{root / "train.json"}"\ndev = "{root / "dev.json"}"\ntest = "{root / "test.json"}"\n\n'
        '[model]\nname = "textcnn.v1"\nembed_dim = 16\nnum_filters = 16\nbuckets = 1000\nbag_dim = 8\n\n'
        "[training]\nbatch_size = 8\nmetric = \"accuracy\"\n\n"
        f'[build]\ncandidates = ["tfidf.v1", "fasttext.v1", "textcnn.v1"]\nepochs = 6\npatience = 2\nint8 = false\nunlabeled = ["{root / "unlabeled.txt"}"]\n',
        encoding="utf-8",
    )
    return cfg


def run(args, **kw):
    return subprocess.run([*ZHCLS, *args], capture_output=True, text=True, timeout=300, **kw)


def scores(out: Path) -> dict:
    summary = json.loads((out / "build.json").read_text())
    return {"chosen": summary["chosen"], "rows": {r["name"]: (r["dev"], r["test"], r["size_mb"]) for r in summary["candidates"]}}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    cfg = write_build_config(root)
    done = run(["build", str(cfg), "-o", str(root / "out"), "--quiet"])
    assert done.returncode == 0, done.stdout + done.stderr
    return root, cfg, done


def test_every_stage_runs_and_the_choice_is_served(built):
    from zhcls.serve.predictor import Predictor

    root, _, done = built
    out = root / "out"
    summary = json.loads((out / "build.json").read_text())
    names = {r["name"] for r in summary["candidates"]}
    assert names == {"tfidf.v1", "fasttext.v1", "textcnn.v1", "ensemble", "distill-textcnn.v1", "distill-fasttext.v1"}
    assert (out / "check.json").is_file() and (out / "build.md").is_file()
    metrics = json.loads((out / "runs" / "distill-textcnn.v1" / "metrics.json").read_text())
    unlabeled = len((root / "unlabeled.txt").read_text().splitlines())
    assert metrics["distill"]["transfer"]["unlabeled"] == unlabeled  # the student saw the unlabeled texts
    assert [f["path"] for f in metrics["distill"]["unlabeled_files"]] == [str(root / "unlabeled.txt")]  # and a rerun checks them
    chosen = next(r for r in summary["candidates"] if r["chosen"])
    assert chosen["name"] == summary["chosen"] and chosen["dev"] == max(r["dev"] for r in summary["candidates"])
    for r in summary["candidates"]:  # each ranked by the cross-fitted score of the choices its run made on dev
        fit = json.loads((Path(r["run"]) / "metrics.json").read_text())["fit"]
        assert r["dev"] == round(fit["dev_cross_fitted"]["accuracy"], 6), r["name"]
    assert "(cross-fitted)" in (out / "build.md").read_text()
    assert Predictor(out / "bundle").manifest["model"] == chosen["model"]
    assert "chosen:" in done.stdout and summary["chosen"] in done.stdout
    # char vectors from unlabeled + train start the char.v1 neural models (textcnn here, embed_dim 16), no other
    [vectors_file] = (out / "vectors").glob("char-16-*.txt")
    vectors = str(vectors_file)
    for name, expect in (("textcnn.v1", vectors), ("distill-textcnn.v1", vectors), ("fasttext.v1", None), ("distill-fasttext.v1", None), ("tfidf.v1", None)):
        assert tomllib.loads((out / "runs" / name / "config.toml").read_text())["model"].get("vectors") == expect, name


def test_the_report_says_how_far_the_choice_leads_the_next_runs_on_dev(built):
    from zhcls.serve.predictor import Predictor

    root, _, _ = built
    out = root / "out"
    summary = json.loads((out / "build.json").read_text())
    rows = {r["name"]: r for r in summary["candidates"]}
    chosen = rows[summary["chosen"]]
    margins = summary["dev_margins"]
    assert 1 <= len(margins) <= 3
    assert len({rows[m["name"]]["run"] for m in margins}) == len(margins) and all(rows[m["name"]]["run"] != chosen["run"] for m in margins)
    dev = [json.loads(line) for line in (root / "dev.json").read_text().splitlines()]

    def accuracy(bundle):
        p = Predictor(bundle)
        pred = np.argmax(p.predict_proba([d["sentence"] for d in dev]), axis=1)
        return np.mean([p.labels[i] == d["label_desc"] for i, d in zip(pred, dev)])

    for m in margins:  # the lead is the bundles' own dev accuracies apart
        assert m["n"] == len(dev)
        assert m["lead"] == pytest.approx(accuracy(chosen["bundle"]) - accuracy(rows[m["name"]]["bundle"]), abs=1e-6)
    report = (out / "build.md").read_text()
    assert "## How sure the choice is" in report and all(f"| {m['name']} |" in report for m in margins)
    toss_up = margins[0]["lead"] <= 2 * margins[0]["se"]  # six dev texts: likely, and then the reason says so
    assert (f"dev cannot tell it from {margins[0]['name']}" in summary["reason"]) == toss_up


def test_a_candidate_over_budget_is_never_chosen(built):
    root, cfg, _ = built
    [vectors] = (root / "out" / "vectors").glob("char-16-*.txt")
    before = (vectors.stat().st_mtime_ns, vectors.read_bytes())
    rows = json.loads((root / "out" / "build.json").read_text())["candidates"]
    best = max(rows, key=lambda r: r["dev"])
    budget = min(r["p50_ms"] for r in rows)  # only the fastest candidate fits
    chosen, reason = select(rows, budget, None)
    assert chosen["p50_ms"] <= budget and "within budget" in reason
    if best["p50_ms"] > budget:
        assert chosen is not best
    done = run(["build", str(cfg), "-o", str(root / "out"), "--quiet", "--budget-mb", "0.000001"])  # cached: only selection reruns
    assert done.returncode == 0, done.stderr
    summary = json.loads((root / "out" / "build.json").read_text())
    assert summary["budget_mb"] == 0.000001 and not any(r["within_budget"] for r in summary["candidates"])
    assert "no candidate meets the budget" in summary["reason"]
    assert (vectors.stat().st_mtime_ns, vectors.read_bytes()) == before  # reused, not trained again


def test_select_prefers_dev_then_size_and_ignores_test():
    rows = [
        {"name": "a", "dev": 0.8, "test": 0.99, "p50_ms": 0.05, "size_mb": 1.0},
        {"name": "b", "dev": 0.9, "test": 0.10, "p50_ms": 0.50, "size_mb": 9.0},
        {"name": "c", "dev": 0.9, "test": 0.10, "p50_ms": 0.40, "size_mb": 3.0},
    ]
    assert select(rows, None, None)[0]["name"] == "c"
    assert select(rows, 0.1, None)[0]["name"] == "a"
    assert select(rows, None, 2.0)[0]["name"] == "a"


def test_select_keeps_the_ensemble_when_the_leader_is_within_its_standard_error():
    # 400 dev texts at 0.5: one standard error is 0.025
    rows = [
        {"name": "bigru.v1", "model": "bigru.v1", "dev": 0.52, "n_dev": 400, "p50_ms": 0.5, "size_mb": 7.0},
        {"name": "ensemble", "model": "ensemble.v1", "dev": 0.50, "n_dev": 400, "p50_ms": 1.5, "size_mb": 50.0},
        {"name": "tfidf.v1", "model": "tfidf.v1", "dev": 0.40, "n_dev": 400, "p50_ms": 0.1, "size_mb": 1.0},
    ]
    chosen, reason = select(rows, None, None, 1.0)
    assert chosen["name"] == "ensemble" and "within 1 standard error" in reason and "bigru.v1" in reason
    assert select(rows, None, None, 0.0)[0]["name"] == "bigru.v1"  # the plain rule
    assert select(rows, None, None, 0.5)[0]["name"] == "bigru.v1"  # 0.02 > 0.5 x 0.025
    assert select(rows, 1.0, None, 1.0)[0]["name"] == "bigru.v1"  # the ensemble is over budget
    wide = [{**r, "n_dev": 10_000} for r in rows]  # one standard error is 0.005: the lead is real
    assert select(wide, None, None, 1.0)[0]["name"] == "bigru.v1"
    unknown = [{k: v for k, v in r.items() if k != "n_dev"} for r in rows]  # no dev size recorded: no preference
    assert select(unknown, None, None, 1.0)[0]["name"] == "bigru.v1"


def test_sigkill_mid_build_resumes_to_the_same_result(built, tmp_path):
    root, cfg, _ = built
    out = tmp_path / "out"
    proc = subprocess.Popen([*ZHCLS, "build", str(cfg), "-o", str(out), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "runs" / "fasttext.v1" / "checkpoint").exists() and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "build.json").exists(), "killed before the end"
    done = run(["build", str(cfg), "-o", str(out), "--quiet"])
    assert done.returncode == 0, done.stdout + done.stderr
    # same seed, same data: the same scores, and the choice they give without a budget (root's build.json may be
    # that of test_a_candidate_over_budget_is_never_chosen's budgeted rebuild, whose rows are the same)
    assert scores(out)["rows"] == scores(root / "out")["rows"]
    assert scores(out)["chosen"] == select(json.loads((root / "out" / "build.json").read_text())["candidates"], None, None)[0]["name"]


def test_data_errors_stop_the_build_unless_forced(tmp_path):
    cfg = write_build_config(tmp_path)
    write_jsonl(tmp_path / "dev.json", make_corpus(12, seed=1))  # dev = train: leakage
    done = run(["build", str(cfg), "-o", str(tmp_path / "out"), "--quiet"])
    assert done.returncode == 2 and "data check" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "runs").exists()


def test_when_nothing_meets_the_budget_build_compresses_the_best_neural_run(tmp_path):
    """Size is the budget here (latency would make the test depend on the machine's load)."""
    from zhcls.build import build
    from zhcls.config import config_from_dict, load_config, resolved_dict

    cfg = load_config(write_build_config(tmp_path))
    raw = resolved_dict(cfg)
    cfg = config_from_dict({**raw, "build": {**raw["build"], "candidates": ["textcnn.v1"], "students": [], "unlabeled": []}})
    first = build(cfg, tmp_path / "out", budget_mb=1e-6)  # nothing can meet it, compressed or not
    assert "compress found no variant within budget" in first.reason and not first.chosen["within_budget"]
    search = json.loads((tmp_path / "out" / "compressed" / "textcnn.v1" / "compress" / "search.json").read_text())
    smallest = min(r["size_mb"] for r in search["candidates"])
    parent = next(r for r in first.candidates if r["name"] == "textcnn.v1")
    assert smallest < parent["size_mb"]

    second = build(cfg, tmp_path / "out", budget_mb=smallest * 1.05)  # only a pruned variant fits
    chosen = second.chosen
    assert chosen["name"] == "textcnn.v1+compressed" and chosen["within_budget"] and chosen["size_mb"] <= smallest * 1.05
    assert chosen["compressed"]["parent"] == "textcnn.v1" and chosen["compressed"]["width"] < 1
    from zhcls.serve.predictor import Predictor

    assert Predictor(tmp_path / "out" / "bundle").predict(["很好"])  # what build copied is a working bundle


def test_vectors_only_with_unlabeled_texts_unless_turned_off_or_set(tmp_path):
    """Which configs the vectors stage touches, without training any model: train_vectors is fast."""
    import contextlib

    from zhcls.build import _vectors_stage, candidate_config, student_config
    from zhcls.config import config_from_dict, load_config, resolved_dict

    cfg = load_config(write_build_config(tmp_path))
    raw = resolved_dict(cfg)

    def configured(build: dict, model: dict | None = None) -> dict:
        c = config_from_dict({**raw, "model": model or raw["model"], "build": {**raw["build"], **build}})
        stage = _vectors_stage(c, tmp_path / "out", lambda name: contextlib.nullcontext(None))
        runs = {n: stage(candidate_config(c, n)) for n in ("tfidf.v1", "fasttext.v1", "textcnn.v1", "bigru.v1")}
        runs["distill-textcnn.v1"] = stage(student_config(c, "textcnn.v1", tmp_path / "teacher"))
        return {n: r.model.options().get("vectors") for n, r in runs.items()}

    assert set(configured({"unlabeled": []}).values()) == {None}
    assert set(configured({"vectors": False}).values()) == {None}
    got = configured({})
    small, default = got["textcnn.v1"], got["bigru.v1"]
    assert Path(small).name.startswith("char-16-") and Path(default).name.startswith("char-128-")
    assert got == {"tfidf.v1": None, "fasttext.v1": None, "textcnn.v1": small, "bigru.v1": default, "distill-textcnn.v1": small}
    first = {p: (Path(p).stat().st_mtime_ns, Path(p).read_bytes()) for p in (small, default)}
    assert int(first[small][1].split()[1]) == 16  # the model's embed_dim
    assert configured({}) == got  # rerun: the same files, reused
    assert {p: (Path(p).stat().st_mtime_ns, Path(p).read_bytes()) for p in first} == first
    assert not [p for p in (tmp_path / "out" / "vectors").iterdir() if p.name.startswith(".")]  # no temporary file left behind
    # the user's own vectors, or a tokenizer other than char.v1, are left alone
    own = configured({}, {**raw["model"], "vectors": str(tmp_path / "mine.txt")})
    assert own["textcnn.v1"] == own["distill-textcnn.v1"] == str(tmp_path / "mine.txt") and own["bigru.v1"] == default
    words = configured({}, {**raw["model"], "tokenizer": "jieba.v1"})
    assert words["textcnn.v1"] is None and words["bigru.v1"] == default


def test_a_finished_stage_is_reused_only_for_its_config_and_data(tmp_path):
    from zhcls.build import _reusable
    from zhcls.config import config_from_dict, dump_config, load_config, resolved_dict
    from zhcls.data.readers import fingerprint
    from zhcls.errors import RunError

    cfg = load_config(write_build_config(tmp_path))
    run_dir = tmp_path / "out" / "runs" / "textcnn.v1"
    (run_dir / "model-best").mkdir(parents=True)
    (run_dir / "config.toml").write_text(dump_config(cfg), encoding="utf-8")
    train = tmp_path / "train.json"
    (run_dir / "model-best" / "zhcls.json").write_text(json.dumps({"data": {"train": {"path": str(train), "sha256": fingerprint(train)}}}))
    _reusable(cfg, run_dir)  # the same inputs: reused
    other = config_from_dict({**resolved_dict(cfg), "training": {**resolved_dict(cfg)["training"], "seed": 7}})
    with pytest.raises(RunError, match="another config"):
        _reusable(other, run_dir)
    train.write_text(train.read_text(encoding="utf-8") + train.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    with pytest.raises(RunError, match="another version of"):
        _reusable(cfg, run_dir)
    # a student: also the unlabeled texts it learned from
    (run_dir / "model-best" / "zhcls.json").write_text(json.dumps({"data": {"train": {"path": str(train), "sha256": fingerprint(train)}}}))
    unlabeled = tmp_path / "unlabeled.txt"
    (run_dir / "metrics.json").write_text(json.dumps({"distill": {"unlabeled_files": [{"path": str(unlabeled), "sha256": fingerprint(unlabeled)}]}}))
    _reusable(cfg, run_dir)
    unlabeled.write_text("新的一行\n" + unlabeled.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(RunError, match=r"another version of .*unlabeled\.txt \(unlabeled changed"):
        _reusable(cfg, run_dir)


def test_int8_candidates_are_scored_as_int8(tmp_path):
    """An int8 bundle's dev score is the run's plus what export measured int8 changes on dev; its test score
    comes from the bundle itself, not from the fp32 run."""
    from zhcls.data.readers import read_examples
    from zhcls.serve.predictor import Predictor

    cfg = write_build_config(tmp_path)
    text = cfg.read_text(encoding="utf-8").replace('candidates = ["tfidf.v1", "fasttext.v1", "textcnn.v1"]', 'candidates = ["tfidf.v1"]\nstudents = []')
    cfg.write_text(text.replace("int8 = false", "int8 = true"), encoding="utf-8")
    done = run(["build", str(cfg), "-o", str(tmp_path / "out"), "--quiet"])
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["name"]: r for r in json.loads((tmp_path / "out" / "build.json").read_text())["candidates"]}
    assert set(rows) == {"tfidf.v1", "tfidf.v1+int8"}
    q = rows["tfidf.v1+int8"]
    change = json.loads((Path(q["bundle"]) / "manifest.json").read_text())["parity"]["int8"]["accuracy_change"]
    assert q["dev"] == pytest.approx(rows["tfidf.v1"]["dev"] + change, abs=1e-6)
    test = read_examples(tmp_path / "test.json")
    predictor = Predictor(q["bundle"])
    assert q["test_accuracy"] == pytest.approx(sum(p == e.label for p, e in zip(predictor.predict([e.text for e in test]), test)) / len(test), abs=1e-6)


def test_student_augment_adds_copies_to_the_students_transfer_set_only(tmp_path):
    from zhcls.augment.pipeline import DEFAULT_RECIPE
    from zhcls.build import candidate_config, student_config
    from zhcls.config import config_from_dict, load_config, resolved_dict

    raw = resolved_dict(load_config(write_build_config(tmp_path)))

    def augment(build: dict, entries: list | None = None) -> dict:
        c = config_from_dict({**raw, "build": {**raw["build"], **build}, "augment": entries or []})
        runs = {n: candidate_config(c, n) for n in c.build.candidates} | {"student": student_config(c, "textcnn.v1", tmp_path / "teacher")}
        return {n: [(e.name, e.rate) for e in r.augment] for n, r in runs.items()}

    assert set(map(tuple, augment({}).values())) == {()}
    on = augment({"student_augment": True})
    assert on.pop("student") == list(DEFAULT_RECIPE.items()) and set(map(tuple, on.values())) == {()}
    own = augment({"student_augment": True}, [{"name": "delete.v1", "rate": 0.3}])  # the config's own entries, for every run
    assert set(map(tuple, own.values())) == {(("delete.v1", 0.3),)}


def test_a_stage_made_from_another_version_of_a_run_is_made_again(tmp_path):
    """Deleting a run to train it again (what a config-change error tells users to do) must not leave the
    ensemble, the students and the bundles made from the old one in place."""
    from safetensors.numpy import load_file, save_file

    from zhcls.artifact import dir_digest, write_checksums
    from zhcls.build import build
    from zhcls.config import config_from_dict, load_config, resolved_dict

    raw = resolved_dict(load_config(write_build_config(tmp_path)))
    cfg = config_from_dict({**raw, "build": {**raw["build"], "candidates": ["tfidf.v1", "fasttext.v1"], "students": ["fasttext.v1"], "unlabeled": []}})
    out = tmp_path / "out"
    first = build(cfg, out)
    bundles = {p.name: (p / "manifest.json").stat().st_mtime_ns for p in (out / "bundles").iterdir()}
    tfidf = out / "runs" / "tfidf.v1" / "model-best"  # another version of it: the same config, other weights
    arrays = load_file(str(tfidf / "weights.safetensors"))
    arrays["intercept"] = arrays["intercept"] + np.arange(len(arrays["intercept"]), dtype=np.float32)
    save_file(arrays, str(tfidf / "weights.safetensors"))
    write_checksums(tfidf)

    second = build(cfg, out)
    ensemble = out / "runs" / "ensemble" / "model-best"
    member = load_file(str(ensemble / "members" / "0" / "weights.safetensors"))["intercept"]
    np.testing.assert_array_equal(member, arrays["intercept"], err_msg="the ensemble holds the new tfidf.v1")
    stages = json.loads((out / "stages.json").read_text())
    assert stages["runs/distill-fasttext.v1"] == {"runs/ensemble": dir_digest(ensemble)}
    again = {p.name: (p / "manifest.json").stat().st_mtime_ns for p in (out / "bundles").iterdir()}
    assert sorted(n for n in again if again[n] != bundles[n]) == ["distill-fasttext.v1", "ensemble", "tfidf.v1"], "unchanged runs keep their bundles"
    assert {r["name"] for r in second.candidates} == {r["name"] for r in first.candidates}
