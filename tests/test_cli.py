"""The command line end to end on a tiny corpus: train -> evaluate -> predict, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_corpus, run_cli, write_config


def test_train_evaluate_predict(tiny_files, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], tiny_files["dev"], extra="")
    cfg.write_text(cfg.read_text().replace("[data]\n", f'[data]\ntest = "{tiny_files["test"]}"\n'), encoding="utf-8")
    run = tmp_path / "run"
    code, out, err = run_cli(["train", cfg, "-o", run, "--set", "training.epochs=8", "--set", "model.embed_dim=16", "--quiet"], capsys)
    assert code == 0, err
    assert "test: accuracy" in out and str(run / "model-best") in out
    for name in ("config.toml", "metrics.json", "log.jsonl", "model-best/weights.safetensors", "model-best/tokenizer.json",
                 "model-best/zhcls.json", "model-last/weights.safetensors"):
        assert (run / name).is_file(), name
    assert not (run / "checkpoint").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"accuracy", "macro_f1"} <= set(metrics["dev"]) and {"accuracy", "macro_f1"} <= set(metrics["test"])
    assert "epochs = 8" in (run / "config.toml").read_text()  # the override is in the resolved config
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, len(log) + 1))

    code, out, _ = run_cli(["evaluate", run, tiny_files["test"], "--json"], capsys)
    assert code == 0
    m = json.loads(out)
    assert {"accuracy", "macro_f1", "micro_f1", "weighted_f1", "per_class", "confusion_matrix"} <= set(m)
    assert m["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    code, out, _ = run_cli(["evaluate", run, tiny_files["test"]], capsys)
    assert code == 0 and "confusion matrix" in out and "macro" in out

    texts = tmp_path / "texts.txt"
    texts.write_text("足球比赛冠军\n股票基金投资\n", encoding="utf-8")
    code, out, _ = run_cli(["predict", run, texts, "--top-k", "2"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 2
    assert set(rows[0]) == {"text", "label", "score", "scores"} and len(rows[0]["scores"]) == 2
    assert rows[0]["label"] == "体育" and rows[1]["label"] == "财经"
    code, out, _ = run_cli(["predict", run, tiny_files["test"]], capsys)  # a data file: its text field is read
    assert code == 0 and len(out.splitlines()) == 12

    code, _, err = run_cli(["train", cfg, "-o", run], capsys)  # a finished run is not silently retrained
    assert code == 2 and "already complete" in err


@pytest.mark.parametrize("model", ["tfidf.v1", "fasttext.v1"])
def test_train_other_models(model, tiny_files, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], tiny_files["dev"], model=model)
    code, out, err = run_cli(["train", cfg, "-o", tmp_path / "run", "--quiet"], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "model-best" / "weights.safetensors").is_file()


def test_tsv_csv_and_paddle_dir(tmp_path, capsys):
    c = make_corpus(6)
    (tmp_path / "a.tsv").write_text("".join(f"{l}\t{t}\n" for t, l in zip(c.texts, c.labels)), encoding="utf-8")
    (tmp_path / "b.csv").write_text("cat,review\n" + "".join(f"{l},\"{t}\"\n" for t, l in zip(c.texts, c.labels)), encoding="utf-8")
    paddle = tmp_path / "paddle"
    paddle.mkdir()
    for split in ("train", "dev", "test"):
        (paddle / f"{split}.txt").write_text("".join(f"{t}\t{l}\n" for t, l in zip(c.texts, c.labels)), encoding="utf-8")
    (paddle / "label.txt").write_text("\n".join(sorted(set(c.labels))) + "\n", encoding="utf-8")
    for train, extra in ((tmp_path / "a.tsv", ""), (tmp_path / "b.csv", 'label_field = "cat"\n'), (paddle, "")):
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[data]\ntrain = "{train}"\n{extra}[model]\nname = "tfidf.v1"\n', encoding="utf-8")
        code, _, err = run_cli(["train", cfg, "-o", tmp_path / f"run-{train.name}", "--quiet"], capsys)
        assert code == 0, err
    metrics = json.loads((tmp_path / "run-paddle" / "metrics.json").read_text())
    assert "dev" in metrics and "test" in metrics  # dev.txt / test.txt found beside train.txt


def test_config_init_is_valid(tmp_path, capsys):
    for model in ("textcnn.v1", "bigru.v1", "fasttext.v1", "tfidf.v1"):
        code, out, _ = run_cli(["config", "init", "--model", model], capsys)
        assert code == 0
        path = tmp_path / f"{model}.toml"
        path.write_text(out, encoding="utf-8")
        code, out, err = run_cli(["config", "validate", path], capsys)
        assert code == 0, err


# -- bad input: one short error + hint naming file/line/field, exit 2, no traceback ------------------------

def _bad(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and "\nhint: " in err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def test_malformed_json_line(tmp_path, capsys):
    bad = _bad(tmp_path, "train.json", '{"sentence": "好", "label": "a"}\n{"sentence": "坏", "label": \n')
    code, _, err = run_cli(["train", write_config(tmp_path / "c.toml", bad, None), "-o", tmp_path / "r"], capsys)
    _assert_user_error(code, err, f"{bad}:2", "malformed JSON")
    assert not (tmp_path / "r" / "model-best").exists()


def test_csv_wrong_columns(tmp_path, capsys):
    bad = _bad(tmp_path, "train.csv", "foo,bar\n1,2\n")
    code, _, err = run_cli(["train", write_config(tmp_path / "c.toml", bad, None), "-o", tmp_path / "r"], capsys)
    _assert_user_error(code, err, f"{bad}:1", "foo")


def test_csv_missing_named_label_column(tmp_path, capsys):
    bad = _bad(tmp_path, "train.csv", "review,label\n好,1\n")
    cfg = write_config(tmp_path / "c.toml", bad, None)
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "r", "--set", "data.label_field=cat"], capsys)
    _assert_user_error(code, err, "'cat'")


def test_non_utf8_file(tmp_path, capsys):
    bad = _bad(tmp_path, "train.tsv", "好的\tpos\n".encode("utf-8") + "质量差\tneg\n".encode("gbk"))
    code, _, err = run_cli(["train", write_config(tmp_path / "c.toml", bad, None), "-o", tmp_path / "r"], capsys)
    _assert_user_error(code, err, f"{bad}:2", "UTF-8", "iconv")


def test_empty_text(tmp_path, capsys):
    bad = _bad(tmp_path, "train.json", '{"sentence": "好", "label": "a"}\n{"sentence": "  ", "label": "b"}\n')
    code, _, err = run_cli(["train", write_config(tmp_path / "c.toml", bad, None), "-o", tmp_path / "r"], capsys)
    _assert_user_error(code, err, f"{bad}:2", "empty text")


def test_unknown_model_name(tiny_files, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None, model="textcnn.v9")
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "r"], capsys)
    _assert_user_error(code, err, "textcnn.v9", "did you mean 'textcnn.v1'", "tfidf.v1")


def test_config_typo(tiny_files, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None, extra="learning_rate = 0.1\n")
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "r"], capsys)
    _assert_user_error(code, err, "training.learning_rate", "unknown key")


def test_model_key_typo(tiny_files, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None)
    code, _, err = run_cli(["config", "validate", cfg, "--set", "model.kernel_size=[2,3]"], capsys)
    _assert_user_error(code, err, "model.kernel_size", "kernel_sizes")


def test_bad_value_type(tiny_files, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None)
    code, _, err = run_cli(["config", "validate", cfg, "--set", "training.epochs=many"], capsys)
    _assert_user_error(code, err, "training.epochs")


def test_invalid_toml(tmp_path, capsys):
    cfg = _bad(tmp_path, "c.toml", "[data\ntrain = 1\n")
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "r"], capsys)
    _assert_user_error(code, err, str(cfg), "TOML")


@pytest.mark.parametrize("what", ["config", "data", "run"])
def test_missing_files(what, tiny_files, tmp_path, capsys):
    if what == "config":
        code, _, err = run_cli(["train", tmp_path / "nope.toml", "-o", tmp_path / "r"], capsys)
    elif what == "data":
        code, _, err = run_cli(["train", write_config(tmp_path / "c.toml", tmp_path / "nope.json", None), "-o", tmp_path / "r"], capsys)
    else:
        code, _, err = run_cli(["evaluate", tmp_path / "no-run", tiny_files["test"]], capsys)
    _assert_user_error(code, err, "nope" if what != "run" else "no-run")


def test_debug_shows_traceback(tmp_path, capsys):
    code, _, err = run_cli(["--debug", "train", tmp_path / "nope.toml", "-o", tmp_path / "r"], capsys)
    assert code == 2 and "Traceback" in err


def test_usage_error_exit_code(capsys):
    code, _, _ = run_cli(["train"], capsys)
    assert code == 2


def test_predict_from_stdin(tiny_files, tmp_path, capsys, monkeypatch):
    import io

    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None, model="tfidf.v1")
    assert run_cli(["train", cfg, "-o", tmp_path / "run", "--quiet"], capsys)[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("足球冠军\n\n芯片电脑软件\n"))
    code, out, _ = run_cli(["predict", tmp_path / "run", "-", "--top-k", "1"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["label"] for r in rows] == ["体育", "科技"] and all(len(r["scores"]) == 1 for r in rows)
