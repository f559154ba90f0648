"""Label issues (issue 6): k-fold splits, out-of-fold probabilities, cleanlab ranking, conflicting
near-duplicates, soft labels, and `labels clean` round trips that keep untouched rows byte-identical."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import make_corpus, run_cli
from zhcls.config import TrainingConfig
from zhcls.data.example import Example, LabelSet
from zhcls.data.readers import ReadOptions, read_examples
from zhcls.data.splits import stratified_kfold
from zhcls.errors import DataError
from zhcls.quality.clean import apply_changes, plan_changes
from zhcls.quality.label_issues import (
    build_issues,
    conflicting_duplicates,
    duplicate_key,
    find_label_issues,
    label_quality_scores,
    out_of_fold_proba,
)

pytest.importorskip("cleanlab")

TFIDF = {"C": 10.0}


@pytest.fixture(autouse=True, scope="module")
def _labels_cli():
    """`zhcls labels` as the CLI has it (registered here too, in case cli/__init__ does not yet)."""
    from zhcls.cli import app, labels_cmd

    if not any(g.name == "labels" for g in app.registered_groups):
        app.add_typer(labels_cmd.app, name="labels")


def separable(n_per_label: int = 30, seed: int = 0) -> tuple[list[str], list[str]]:
    """Three topic words and one filler word per text: a corpus any model separates."""
    import random

    from conftest import FILLER, TOPICS

    rng = random.Random(seed)
    texts, labels = [], []
    for label, words in TOPICS.items():
        for _ in range(n_per_label):
            parts = rng.sample(words, 3) + rng.sample(FILLER, 1)
            rng.shuffle(parts)
            texts.append("".join(parts))
            labels.append(label)
    return texts, labels


def planted(n_per_label: int = 30, flips: int = 6, seed: int = 0):
    texts, labels = separable(n_per_label, seed)
    classes = sorted(set(labels))
    rng = np.random.default_rng(seed)
    flipped = sorted(rng.choice(len(labels), flips, replace=False).tolist())
    for i in flipped:
        labels[i] = classes[(classes.index(labels[i]) + 1) % len(classes)]
    return texts, labels, flipped


def examples_of(texts, labels, path="train.json"):
    return [Example(t, l, str(path), i + 1) for i, (t, l) in enumerate(zip(texts, labels))]


# -- splits ------------------------------------------------------------------------------------------
def test_stratified_kfold_is_a_partition_stratified_and_deterministic():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 10
    folds = stratified_kfold(labels, 5, seed=7)
    assert len(folds) == 5
    assert sorted(np.concatenate(folds).tolist()) == list(range(90))
    for f in folds:
        assert Counter(labels[i] for i in f) == {"a": 10, "b": 6, "c": 2}
    again = stratified_kfold(labels, 5, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(folds, again))
    other = stratified_kfold(labels, 5, seed=8)
    assert not all(np.array_equal(x, y) for x, y in zip(folds, other))


def test_stratified_kfold_refuses_too_many_folds():
    with pytest.raises(DataError, match="folds"):
        stratified_kfold(["a", "a", "b"], 5, seed=0)
    with pytest.raises(DataError):
        stratified_kfold(["a"] * 10, 1, seed=0)


# -- pure functions ----------------------------------------------------------------------------------
def test_find_label_issues_on_a_six_row_array():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.95, 0.05], [0.05, 0.95], [0.1, 0.9], [0.2, 0.8], [0.9, 0.1]])
    ranked = find_label_issues(labels, probs)
    assert sorted(ranked.tolist()) == [2, 5]
    assert ranked[0] == 2  # p(given) 0.05 < 0.1
    q = label_quality_scores(labels, probs)
    assert q.shape == (6,) and q[2] == pytest.approx(0.05)


def test_the_default_filter_flags_the_head_of_the_ranking_as_many_rows_as_confident_learning_counts():
    from cleanlab.count import num_label_issues

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    probs = rng.dirichlet([1.0, 1.0, 1.0], 60)
    probs[np.arange(60), labels] += 1.5 * (np.arange(60) % 4 != 0)  # every 4th row does not favour its label
    probs /= probs.sum(axis=1, keepdims=True)
    ranked = find_label_issues(labels, probs)
    assert 0 < len(ranked) == num_label_issues(labels, probs)
    self_confidence = probs[np.arange(60), labels]
    assert ranked.tolist() == np.argsort(self_confidence, kind="stable")[: len(ranked)].tolist()
    assert set(ranked.tolist()) <= set(range(0, 60, 4))


def test_conflicting_duplicates_ignore_punctuation_space_and_width():
    texts = ["好评！", "好评 !!", "ＯＫ的", "ok的", "别的"]
    labels = ["pos", "neg", "pos", "pos", "neg"]
    assert duplicate_key("好评 ！!") == "好评"
    assert conflicting_duplicates(texts, labels) == [[0, 1]]


def test_out_of_fold_columns_follow_the_global_labels_when_a_fold_lacks_a_class():
    corpus = make_corpus(6, seed=3)
    texts, labels = corpus.texts, corpus.labels
    rare = [i for i, l in enumerate(labels) if l == "体育"]
    rest = [i for i in range(len(labels)) if i not in rare]
    folds = [np.array(sorted(rare + rest[:3])), np.array(sorted(rest[3:]))]  # fold 0's training part has no 体育
    proba = out_of_fold_proba(texts, labels, "tfidf.v1", TFIDF, TrainingConfig(), folds=folds, seed=0)
    classes = LabelSet.from_labels(labels)
    assert proba.shape == (len(texts), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(proba[rare, classes.index("体育")] == 0.0)
    assert np.all(proba[folds[1], classes.index("体育")] > 0.0)


def test_planted_flips_are_found():
    texts, labels, flipped = planted()
    events = []
    proba = out_of_fold_proba(texts, labels, "tfidf.v1", TFIDF, TrainingConfig(), folds=5, seed=0, progress=lambda k, i: events.append((k, i)))
    assert [i["fold"] for k, i in events if k == "fold"] == [1, 2, 3, 4, 5]
    issues = build_issues(examples_of(texts, labels), proba, LabelSet.from_labels(labels))
    found = {i.line - 1 for i in issues}
    assert len(found & set(flipped)) >= 5  # recall >= 5/6
    assert len(found - set(flipped)) <= 2  # precision
    both = build_issues(examples_of(texts, labels), proba, LabelSet.from_labels(labels), filter_by="both")
    more = build_issues(examples_of(texts, labels), proba, LabelSet.from_labels(labels), filter_by="prune_by_noise_rate")
    assert {i.line for i in both} <= {i.line for i in more}  # "both" also needs prune_by_class's vote
    top = issues[0]
    assert top.kind == "label_error" and top.given_prob < top.suggested_prob and top.suggested_label != top.given_label


def test_no_false_alarms_on_a_clean_corpus():
    texts, labels = separable(30, seed=5)
    proba = out_of_fold_proba(texts, labels, "tfidf.v1", TFIDF, TrainingConfig(), folds=5, seed=0)
    issues = build_issues(examples_of(texts, labels), proba, LabelSet.from_labels(labels))
    assert len(issues) <= 2  # of 90 clean rows


# -- the find command --------------------------------------------------------------------------------
def write_rows(path: Path, texts, labels, fmt: str) -> Path:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"sentence": t, "label_desc": l, "id": i}, ensure_ascii=False) + "\n" for i, (t, l) in enumerate(zip(texts, labels))), encoding="utf-8")
    elif fmt == "tsv":
        path.write_text("".join(f"{t}\t{l}\n" for t, l in zip(texts, labels)), encoding="utf-8")
    else:
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(["cat", "label", "review"])
        for i, (t, l) in enumerate(zip(texts, labels)):
            w.writerow([l, i % 2, t])
        path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return path


def config_for(tmp_path: Path, data: Path, extra_data: str = "") -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[data]\ntrain = "{data}"\n{extra_data}\n[model]\nname = "tfidf.v1"\nC = 10.0\n\n[training]\nseed = 1\n', encoding="utf-8")
    return cfg


def test_find_cli_writes_issues_summary_and_csv(tmp_path, capsys):
    texts, labels, flipped = planted()
    data = write_rows(tmp_path / "train.json", texts, labels, "jsonl")
    code, out, err = run_cli(["labels", "find", data, "--config", config_for(tmp_path, data), "-o", tmp_path / "issues.jsonl", "--csv", tmp_path / "issues.csv", "--quiet"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "issues.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["line"] - 1 for r in rows} & set(flipped)
    assert set(rows[0]) >= {"source", "file", "line", "text", "given_label", "suggested_label", "given_prob", "suggested_prob", "quality", "kind"}
    summary = json.loads((tmp_path / "issues.summary.json").read_text(encoding="utf-8"))
    assert summary["n_issues"] == len(rows) and summary["folds"] == 5 and summary["per_class"] and summary["confused_pairs"]
    header = (tmp_path / "issues.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.startswith("rank,accept,kind,line")
    assert "suspect rows" in out


def test_soft_labels_skip_cross_validation(tmp_path, capsys, monkeypatch):
    import zhcls.quality.label_issues as li

    monkeypatch.setattr(li, "out_of_fold_proba", lambda *a, **k: pytest.fail("cross-validation ran"))
    texts = ["足球比赛", "股票基金", "手机芯片", "篮球冠军"]
    labels = ["体育", "财经", "科技", "财经"]  # the last is wrong
    data = write_rows(tmp_path / "train.tsv", texts, labels, "tsv")
    teacher = [{"体育": 0.9, "财经": 0.05, "科技": 0.05}, {"体育": 0.05, "财经": 0.9, "科技": 0.05},
               {"体育": 0.05, "财经": 0.05, "科技": 0.9}, {"体育": 0.97, "财经": 0.02, "科技": 0.01, "娱乐": 0.0}]
    soft = tmp_path / "soft.jsonl"
    soft.write_text("".join(json.dumps({"line": i + 1, "probs": p}, ensure_ascii=False) + "\n" for i, p in enumerate(teacher)), encoding="utf-8")
    code, out, err = run_cli(["labels", "find", data, "-c", config_for(tmp_path, data), "--soft", soft, "-o", tmp_path / "issues.jsonl"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "issues.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["suggested_label"]) for r in rows] == [(4, "体育")]
    # rows in data order with no key, as `zhcls predict RUN DATA` prints them
    soft.write_text("".join(json.dumps({"text": t, "scores": p}, ensure_ascii=False) + "\n" for t, p in zip(texts, teacher)), encoding="utf-8")
    code, _, err = run_cli(["labels", "find", data, "-c", config_for(tmp_path, data), "--soft", soft, "-o", tmp_path / "issues2.jsonl"], capsys)
    assert code == 0, err
    # a row short
    soft.write_text("".join(json.dumps({"line": i + 1, "probs": p}, ensure_ascii=False) + "\n" for i, p in enumerate(teacher[:3])), encoding="utf-8")
    code, _, err = run_cli(["labels", "find", data, "-c", config_for(tmp_path, data), "--soft", soft, "-o", tmp_path / "issues3.jsonl"], capsys)
    assert code == 2 and "no probabilities for 1 record" in err and "train.tsv:4" in err


def test_find_cli_exit_codes_for_bad_input(tmp_path, capsys):
    texts, labels, _ = planted()
    data = write_rows(tmp_path / "train.json", texts, labels, "jsonl")
    cfg = config_for(tmp_path, data)
    code, _, err = run_cli(["labels", "find", tmp_path / "missing.json", "-c", cfg, "-o", tmp_path / "i.jsonl"], capsys)
    assert code == 2 and "file not found" in err and "hint:" in err
    code, _, err = run_cli(["labels", "find", data, "-c", cfg, "--folds", "200", "-o", tmp_path / "i.jsonl"], capsys)
    assert code == 2 and "folds" in err
    code, _, err = run_cli(["labels", "find", data, "-c", cfg, "--folds", "1", "-o", tmp_path / "i.jsonl"], capsys)
    assert code == 2
    code, _, err = run_cli(["labels", "find", data, "-c", cfg, "--filter-by", "nope", "-o", tmp_path / "i.jsonl"], capsys)
    assert code == 2 and "prune_by_noise_rate" in err
    bad = config_for(tmp_path, data, extra_data='label_field = "nope"\n')
    code, _, err = run_cli(["labels", "find", data, "-c", bad, "-o", tmp_path / "i.jsonl"], capsys)
    assert code == 2 and "nope" in err
    assert not (tmp_path / "i.jsonl").exists()


# -- clean round trips -------------------------------------------------------------------------------
CSV_TEXT = (
    "cat,label,review\r\n"
    "体育,1,足球比赛很精彩\r\n"
    '财经,0,"股票大跌,\n基金也跌"\r\n'
    "科技,1,手机芯片很快\r\n"
    '"体育",1,"篮球 ""冠军"""\r\n'
    "财经,1,银行利率\r\n"
)
JSONL_TEXT = (
    '{"sentence": "足球比赛很精彩", "label_desc": "体育", "label": 100}\n'
    '{"sentence":"股票大跌","label_desc":"财经","label":101}\n'
    '{"sentence": "手机芯片很快", "label_desc": "科技", "label": 102}\r\n'
    "\n"
    '{"sentence": "篮球冠军", "label_desc": "体育", "label": 100}\n'
    '{"sentence": "银行利率", "label_desc": "财经", "label": 101}'
)
TSV_TEXT = "足球比赛很精彩\t体育\n股票大跌\t财经\n手机芯片很快\t科技\r\n篮球冠军\t 体育 \n银行利率\t财经\n"


@pytest.mark.parametrize(
    "name,content,options,relabel_line,drop_line",
    [
        ("train.csv", CSV_TEXT, ReadOptions("csv", "review", "cat"), 3, 5),
        ("train.json", JSONL_TEXT, ReadOptions("jsonl", "sentence", "label_desc"), 2, 5),
        ("train.tsv", TSV_TEXT, ReadOptions("tsv"), 2, 4),
    ],
)
@pytest.mark.parametrize("mode", ["relabel", "drop"])
def test_clean_round_trip_keeps_untouched_records_byte_identical(tmp_path, name, content, options, relabel_line, drop_line, mode):
    data = tmp_path / name
    data.write_bytes(("\ufeff" + content).encode("utf-8"))
    examples = read_examples(data, options)
    by_line = {e.line: e for e in examples}
    target = relabel_line if mode == "relabel" else drop_line
    ex = by_line[target]
    issues = [{"line": target, "text": ex.text, "given_label": ex.label, "suggested_label": "科技", "quality": 0.01, "kind": "label_error"}]
    changes, skipped = plan_changes(examples, issues, mode=mode)
    assert skipped == 0 and len(changes) == 1
    out = tmp_path / f"clean.{name}"
    result = apply_changes(data, examples, changes, out, options)
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    after = read_examples(out, options)
    if mode == "relabel":
        assert [e.text for e in after] == [e.text for e in examples]
        assert [e.label for e in after] == ["科技" if e is ex else e.label for e in examples]
        assert result.relabeled == 1
    else:
        assert [e.text for e in after] == [e.text for e in examples if e is not ex]
        assert result.dropped == 1
    # every other record is byte-identical: remove the changed record from both and compare
    from zhcls.data.records import record_spans as _records

    fmt = options.format
    lines_in, spans_in = _records(data.read_bytes().decode("utf-8-sig"), fmt)
    s, e = spans_in[target]
    kept_in = "".join(lines_in[:s] + lines_in[e:])
    text_out = out.read_bytes().decode("utf-8-sig")
    if mode == "drop":
        assert text_out == kept_in
    else:
        lines_out, spans_out = _records(text_out, fmt)
        s2, e2 = spans_out[target]
        assert "".join(lines_out[:s2] + lines_out[e2:]) == kept_in
        assert lines_out[e2 - 1].endswith(lines_in[e - 1][len(lines_in[e - 1].rstrip("\r\n")):])  # same line ending
    log = [json.loads(line) for line in result.log.read_text(encoding="utf-8").splitlines()]
    assert log[0]["line"] == target and log[0]["action"] == mode and log[0]["old_label"] == ex.label


def test_relabel_keeps_jsonl_style_and_int_labels(tmp_path):
    data = tmp_path / "train.json"
    data.write_text('{"sentence": "股票大跌", "label": 100}\n{"sentence": "足球", "label": 101}\n', encoding="utf-8")
    examples = read_examples(data, ReadOptions("jsonl", "sentence", "label"))
    changes, _ = plan_changes(examples, [{"line": 1, "given_label": "100", "suggested_label": "101"}])
    apply_changes(data, examples, changes, tmp_path / "out.json", ReadOptions("jsonl", "sentence", "label"))
    assert (tmp_path / "out.json").read_text(encoding="utf-8").splitlines()[0] == '{"sentence": "股票大跌", "label": 101}'


def test_threshold_and_stale_issues(tmp_path):
    data = write_rows(tmp_path / "train.tsv", ["足球", "股票", "手机"], ["体育", "体育", "体育"], "tsv")
    examples = read_examples(data, ReadOptions("tsv"))
    issues = [{"line": 2, "given_label": "体育", "suggested_label": "财经", "quality": 0.1},
              {"line": 3, "given_label": "体育", "suggested_label": "体育", "quality": 0.5}]
    changes, skipped = plan_changes(examples, issues, threshold=0.2, mode="drop")
    assert [c.line for c in changes] == [2] and skipped == 1
    with pytest.raises(DataError, match="does not match"):
        plan_changes(examples, [{"line": 2, "given_label": "财经", "suggested_label": "体育"}])
    with pytest.raises(DataError, match="not the first line"):
        plan_changes(examples, [{"line": 9, "given_label": "体育", "suggested_label": "财经"}])


def test_reviewed_csv_is_applied_instead_of_a_threshold(tmp_path, capsys):
    texts, labels, flipped = planted()
    data = write_rows(tmp_path / "train.csv", texts, labels, "csv")
    cfg = config_for(tmp_path, data, extra_data='text_field = "review"\nlabel_field = "cat"\n')
    code, _, err = run_cli(["labels", "find", data, "-c", cfg, "-o", tmp_path / "issues.jsonl", "--csv", tmp_path / "issues.csv", "--quiet"], capsys)
    assert code == 0, err
    with open(tmp_path / "issues.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 2
    rows[0]["accept"] = "yes"
    rows[1]["accept"] = "no"
    if len(rows) > 2:
        rows[2]["accept"] = "1"
        rows[2]["suggested_label"] = "财经" if rows[2]["given_label"] != "财经" else "体育"  # the reviewer's own label
    reviewed = tmp_path / "reviewed.csv"
    with open(reviewed, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "clean.csv"
    # reviewed.csv has no summary sidecar: pass the field mapping (issues.csv would find issues.summary.json)
    code, stdout, err = run_cli(["labels", "clean", data, "--reviewed", reviewed, "--label-field", "cat", "--text-field", "review", "-o", out], capsys)
    assert code == 0, err
    changed = {json.loads(line)["line"]: json.loads(line) for line in (tmp_path / "clean.changes.jsonl").read_text(encoding="utf-8").splitlines()}
    expected = {int(rows[0]["line"])} | ({int(rows[2]["line"])} if len(rows) > 2 else set())
    assert set(changed) == expected
    if len(rows) > 2:
        assert changed[int(rows[2]["line"])]["new_label"] == rows[2]["suggested_label"]
    after = {e.line: e.label for e in read_examples(out, ReadOptions("csv", "review", "cat"))}
    assert after[int(rows[0]["line"])] == rows[0]["suggested_label"]
    assert after[int(rows[1]["line"])] == rows[1]["given_label"]
    # --issues with the recorded field mapping (issues.summary.json), and --drop
    code, _, err = run_cli(["labels", "clean", data, "--issues", tmp_path / "issues.jsonl", "--drop", "-o", tmp_path / "dropped.csv"], capsys)
    assert code == 0, err
    assert len(read_examples(tmp_path / "dropped.csv", ReadOptions("csv", "review", "cat"))) == len(texts) - len(rows)


def test_clean_cli_exit_codes_for_bad_input(tmp_path, capsys):
    data = write_rows(tmp_path / "train.tsv", ["足球", "股票"], ["体育", "体育"], "tsv")
    issues = tmp_path / "issues.jsonl"
    issues.write_text('{"line": 2, "given_label": "体育", "suggested_label": "财经", "quality": 0.1}\n', encoding="utf-8")
    reviewed = tmp_path / "reviewed.csv"
    reviewed.write_text("line,accept,given_label,suggested_label\n2,maybe,体育,财经\n", encoding="utf-8")
    cases = [
        (["--issues", issues, "--drop", "--relabel"], "exclude"),
        ([], "nothing to apply"),
        (["--reviewed", reviewed], "accept"),
        (["--issues", tmp_path / "missing.jsonl"], "file not found"),
        (["--issues", issues, "-o", data], "overwrite"),
    ]
    for args, message in cases:
        argv = ["labels", "clean", data, *args] + ([] if "-o" in args else ["-o", tmp_path / "out.tsv"])
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and message in err and "hint:" in err, (args, err)
    # relabel to a label the data does not have ("财经" is not in this two-row file)
    code, _, err = run_cli(["labels", "clean", data, "--issues", issues, "-o", tmp_path / "out.tsv"], capsys)
    assert code == 2 and "not a label of the data" in err
    assert not (tmp_path / "out.tsv").exists()


def test_a_config_without_a_model_cross_fits_tfidf(tmp_path, capsys):
    texts, labels, flipped = planted()
    data = write_rows(tmp_path / "train.json", texts, labels, "jsonl")
    cfg = tmp_path / "data-only.toml"
    cfg.write_text(f'[data]\ntrain = "{data}"\n', encoding="utf-8")
    code, _, err = run_cli(["labels", "find", data, "-c", cfg, "-o", tmp_path / "issues.jsonl", "--quiet"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "issues.summary.json").read_text(encoding="utf-8"))
    assert summary["model"] == "tfidf.v1" and summary["model_params"] == {"loss": "log", "solver": "newton-cg"}
    assert summary["filter_by"] == "low_self_confidence"
    rows = [json.loads(line) for line in (tmp_path / "issues.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len({r["line"] - 1 for r in rows} & set(flipped)) >= 5 and len(rows) <= len(flipped) + 2


def test_folds_train_for_training_epochs_not_a_models_early_stopping_budget(monkeypatch):
    """Folds have no dev set to stop on: an unset epochs is TrainingConfig's 10 even for textcnn.v1 (whose own
    budget, 40, assumes early stopping on dev); a set one is kept."""
    import zhcls.models.base as base

    seen = []

    class Stop(Exception):
        pass

    def spy(name, params=None, training=None):
        seen.append(base.models.get(name).factory(params, training).training.epochs)  # what the model makes of it
        raise Stop

    monkeypatch.setattr(base, "build_model", spy)
    corpus = make_corpus(6, seed=3)
    for training, epochs in ((None, 10), (TrainingConfig(), 10), (TrainingConfig(epochs=2), 2)):
        with pytest.raises(Stop):
            out_of_fold_proba(corpus.texts, corpus.labels, "textcnn.v1", None, training, folds=2, seed=0)
        assert seen[-1] == epochs
