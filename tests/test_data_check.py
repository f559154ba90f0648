"""`zhcls data check`: every problem is found at the right file:line; exit 0 clean, 1 errors, 2 bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zhcls.cli import main
from zhcls.data.checks import check_data
from zhcls.data.example import Example
from zhcls.data.readers import read_examples

CLEAN_TRAIN = [
    ("今天的足球比赛很精彩", "体育"),
    ("篮球冠军昨晚诞生", "体育"),
    ("球员在比赛中进球", "体育"),
    ("股票市场今天上涨", "财经"),
    ("银行调整了存款利率", "财经"),
    ("基金投资需要谨慎", "财经"),
]
CLEAN_DEV = [("足球队赢得了冠军", "体育"), ("央行宣布降低利率", "财经")]
CLEAN_TEST = [("篮球球员受伤了", "体育"), ("投资者关注股票走势", "财经")]


def write_jsonl(path: Path, rows: list[tuple[str, str | None]]) -> Path:
    records = [{"sentence": t} if l is None else {"sentence": t, "label": l} for t, l in rows]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture()
def clean(tmp_path: Path) -> dict[str, Path]:
    return {
        "train": write_jsonl(tmp_path / "train.json", CLEAN_TRAIN),
        "dev": write_jsonl(tmp_path / "dev.json", CLEAN_DEV),
        "test": write_jsonl(tmp_path / "test.json", CLEAN_TEST),
    }


def check_files(files: dict[str, Path], **kwargs):
    return check_data({name: read_examples(path) for name, path in files.items()}, **kwargs)


def only(report, code: str):
    found = [p for p in report.problems if p.code == code]
    assert len(found) == 1, [p.code for p in report.problems]
    return found[0]


def test_clean_corpus_has_no_errors_or_warnings(clean):
    report = check_files(clean)
    assert report.errors == [] and report.warnings == []
    train = report.stats["train"]
    assert (train.n, train.labeled, train.labels) == (6, 6, {"体育": 3, "财经": 3})
    assert train.chars["min"] == 8 and train.chars["max"] == 10
    assert train.tokens == train.chars  # char.v1: one token per Chinese character
    assert train.file == str(clean["train"]) and train.truncated == 0


def test_empty_text_and_missing_label(tmp_path):
    train = write_jsonl(tmp_path / "train.json", CLEAN_TRAIN + [("  ", "体育"), ("\u200b", "财经"), ("没有标签的句子", "")])
    report = check_files({"train": train})
    empty = only(report, "empty-text")
    assert empty.severity == "error" and empty.count == 2
    assert empty.locations == [f"{train}:7", f"{train}:8"]  # white space only, and invisible only
    missing = only(report, "missing-label")
    assert missing.severity == "error" and missing.locations == [f"{train}:9"]


def test_duplicates_and_conflicting_labels(tmp_path):
    rows = CLEAN_TRAIN + [("今天的足球比赛很精彩", "体育"), ("股票市场今天上涨", "体育"), ("股票市场今天上涨 ", "财经")]
    train = write_jsonl(tmp_path / "train.json", rows)
    report = check_files({"train": train})
    dup = only(report, "duplicate")
    assert dup.severity == "warning" and dup.count == 1
    assert dup.locations == [f"{train}:7 (same text as line 1)"]
    conflict = only(report, "conflicting-labels")
    assert conflict.severity == "error" and conflict.count == 1
    assert conflict.locations == [f"{train}:4 [财经], also line 8 [体育], line 9 [财经]"]  # trailing space ignored


def test_leakage_unseen_labels_and_dev_test_overlap(tmp_path):
    train = write_jsonl(tmp_path / "train.json", CLEAN_TRAIN)
    dev = write_jsonl(tmp_path / "dev.json", CLEAN_DEV + [("ＢＡＮＫ银行调整了存款利率", "财经"), ("银行调整了存款利率", "体育"), ("新上映的电影", "娱乐")])
    test = write_jsonl(tmp_path / "test.json", CLEAN_TEST + [("足球队赢得了冠军", "体育")])
    report = check_files({"train": train, "dev": dev, "test": test})
    leak = only(report, "leakage")
    assert leak.severity == "error" and leak.split == "dev" and leak.count == 1
    assert leak.locations == [f"{dev}:4 (= {train}:5, labels '体育' vs '财经')"]
    unseen = only(report, "unseen-label")
    assert unseen.severity == "error" and unseen.locations == [f"{dev}:5 [娱乐]"] and "'娱乐'" in unseen.message
    overlap = only(report, "overlap")
    assert overlap.severity == "warning" and overlap.locations == [f"{test}:3 (= {dev}:1)"]


def test_fullwidth_and_invisible_characters(tmp_path):
    rows = CLEAN_TRAIN + [("买了ｉＰｈｏｎｅ１３很满意", "财经"), ("今天\u200b天气\ufeff不错", "体育"), ("中文标点，没问题！", "体育")]
    train = write_jsonl(tmp_path / "train.json", rows)
    report = check_files({"train": train})
    full = only(report, "fullwidth")
    assert full.severity == "warning" and full.locations == [f"{train}:7 (ｉＰｈｏｎｅ１３)"]
    inv = only(report, "invisible")
    assert inv.severity == "warning" and inv.locations == [f"{train}:8 (U+200B ZERO WIDTH SPACE)"]
    assert "U+FEFF" in inv.message
    punct = only(report, "fullwidth-punct")  # ordinary Chinese punctuation is not a warning
    assert punct.severity == "info" and punct.count == 1


def test_truncation_counts_tokens_and_caps_locations(tmp_path):
    rows = CLEAN_TRAIN + [("很" * 20 + "abc123", "体育")] + [(f"第{i}条" + "长" * 30, "财经") for i in range(8)]
    train = write_jsonl(tmp_path / "train.json", rows)
    report = check_files({"train": train}, max_len=21, max_locations=3)
    trunc = only(report, "truncated")
    # "很"*20 + "abc123" is 26 characters but 21 char.v1 tokens: not truncated at max_len 21.
    assert trunc.count == 8 and trunc.locations == [f"{train}:{i} (33 tokens)" for i in (8, 9, 10)]
    assert report.stats["train"].truncated == 8
    assert report.stats["train"].tokens["max"] == 33


def test_imbalance_and_unlabeled_splits(tmp_path):
    train = write_jsonl(tmp_path / "train.json", [(f"体育新闻第{i}条", "体育") for i in range(22)] + [("股票新闻", "财经"), ("基金新闻", "财经")])
    test = write_jsonl(tmp_path / "test.json", [("没有标签", None)])
    report = check_files({"train": train, "test": test})
    assert only(report, "imbalance").severity == "warning"
    assert only(report, "unlabeled").severity == "info"  # an unlabeled test split is fine
    unlabeled_train = check_files({"train": test})
    assert only(unlabeled_train, "unlabeled").severity == "error"


def test_library_accepts_examples_without_files():
    report = check_data({"train": [Example("好", "a", "x", 1), Example("坏", "b", "x", 2)], "dev": []})
    assert only(report, "no-examples").split == "dev"
    assert report.to_dict()["errors"] == 1


def test_cli_clean_exits_0(clean, capsys):
    code, out, _ = run(["data", "check", clean["train"], "--dev", clean["dev"], "--test", clean["test"]], capsys)
    assert code == 0
    assert "labels" in out and "p95" in out
    assert out.strip().splitlines()[-1].startswith("no errors, 0 warnings: exit 0")


def test_cli_errors_exit_1_and_name_the_line(clean, tmp_path, capsys):
    dev = write_jsonl(tmp_path / "dev_bad.json", CLEAN_DEV + [("股票市场今天上涨", "财经")])
    code, out, _ = run(["data", "check", clean["train"], "--dev", dev], capsys)
    assert code == 1
    assert f"{dev}:3 (= {clean['train']}:4)" in out
    assert "exit 1" in out.strip().splitlines()[-1]


def test_cli_json(clean, tmp_path, capsys):
    train = write_jsonl(tmp_path / "t.json", CLEAN_TRAIN + [("", "体育")])
    code, out, _ = run(["data", "check", train, "--dev", clean["dev"], "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["exit_code"] == 1 and report["errors"] == 1
    assert report["problems"][0]["code"] == "empty-text" and report["problems"][0]["locations"] == [f"{train}:7"]
    assert report["splits"]["dev"]["n"] == 2 and report["max_len"] == 256


def test_cli_missing_file_exits_2(tmp_path, capsys):
    code, out, err = run(["data", "check", tmp_path / "missing.json"], capsys)
    assert code == 2 and out == ""
    assert "error:" in err and "missing.json" in err


def test_cli_malformed_data_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"sentence": "好", "label": "a"}\n{"sentence": \n', encoding="utf-8")
    code, _, err = run(["data", "check", bad], capsys)
    assert code == 2 and f"{bad}:2" in err


def test_cli_config_uses_model_settings_and_overrides(clean, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[data]\ntrain = "{clean["train"]}"\ndev = "{clean["dev"]}"\n[model]\nname = "textcnn.v1"\nmax_len = 64\n', encoding="utf-8"
    )
    code, out, _ = run(["data", "check", cfg, "--json", "--set", "model.max_len=8"], capsys)
    report = json.loads(out)
    assert code == 0 and report["max_len"] == 8 and set(report["splits"]) == {"train", "dev"}
    assert [p["code"] for p in report["problems"] if p["severity"] == "warning"] == ["truncated"]
    code, out, _ = run(["data", "check", cfg, "--json", "--max-len", "100", "--test", clean["test"]], capsys)
    report = json.loads(out)
    assert code == 0 and report["max_len"] == 100 and "test" in report["splits"]

    tfidf = tmp_path / "tfidf.toml"
    tfidf.write_text(f'[data]\ntrain = "{clean["train"]}"\n[model]\nname = "tfidf.v1"\n', encoding="utf-8")
    code, out, _ = run(["data", "check", tfidf], capsys)
    assert code == 0 and "tokenizer char.v1, max_len 256" in out and "tfidf.v1 has no max_len" in out


def test_cli_bad_options_exit_2(clean, tmp_path, capsys):
    code, _, err = run(["data", "check", clean["train"], "--set", "model.max_len=3"], capsys)
    assert code == 2 and "--set needs a run config" in err
    code, _, err = run(["data", "check", clean["train"], "--format", "xml"], capsys)
    assert code == 2 and "format" in err
    code, _, err = run(["data", "check", tmp_path / "missing.toml"], capsys)
    assert code == 2 and "missing.toml" in err
