"""Rough edges a newcomer hit (issue 12): the effective lr is visible, early stopping is said, data problems
are printed before training, example configs say where their data is, help and errors point at the right thing."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from conftest import make_corpus, run_cli, write_config, write_jsonl

ROOT = Path(__file__).parent.parent


def _config(tmp_path: Path, files: dict[str, Path], model: str = "textcnn.v1", extra: str = "") -> Path:
    return write_config(tmp_path / "c.toml", files["train"], files["dev"], model=model, extra=extra)


# -- lr: a per-model default, shown wherever the settings are ----------------------------------------------

@pytest.mark.parametrize("model", ["textcnn.v1", "bigru.v1", "fasttext.v1", "tfidf.v1"])
def test_config_init_spells_out_the_models_lr(model, capsys):
    from zhcls.registry import models

    code, out, err = run_cli(["config", "init", "--model", model], capsys)
    assert code == 0, err
    training = tomllib.loads(out)["training"]
    default = getattr(models.get(model).factory, "default_lr", None)
    if default is None:  # tfidf.v1 has no learning rate: it says so instead of inventing one
        assert "lr" not in training and f"# lr: not used by {model}" in out
    else:
        assert training["lr"] == default and f"{model}'s default" in out


def test_config_show_and_the_run_config_resolve_an_unset_lr(tiny_files, tmp_path, capsys):
    cfg = _config(tmp_path, tiny_files, model="fasttext.v1")
    code, out, _ = run_cli(["config", "show", cfg], capsys)
    assert code == 0 and tomllib.loads(out)["training"]["lr"] == 1e-2  # fasttext.v1's default, not textcnn's
    code, out, _ = run_cli(["config", "show", cfg, "--set", "training.lr=3e-4"], capsys)
    assert tomllib.loads(out)["training"]["lr"] == 3e-4
    code, out, _ = run_cli(["config", "show", cfg, "--set", "model.name=tfidf.v1"], capsys)
    assert code == 0 and "lr" not in tomllib.loads(out)["training"]


def test_the_resolved_lr_trains_the_same_weights(tiny_files, tmp_path, capsys):
    """Writing the default lr into the run's config.toml changes nothing: training that file again gives the
    same weights, bit for bit, as the config that left lr unset."""
    cfg = _config(tmp_path, tiny_files)
    overrides = ["--set", "training.epochs=2", "--set", "model.embed_dim=16", "--set", "model.num_filters=8", "--quiet"]
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "a", *overrides], capsys)
    assert code == 0, err
    resolved = tmp_path / "a" / "config.toml"
    assert tomllib.loads(resolved.read_text(encoding="utf-8"))["training"]["lr"] == 1e-3
    code, _, err = run_cli(["train", resolved, "-o", tmp_path / "b", "--quiet"], capsys)
    assert code == 0, err
    for name in ("model-best/weights.safetensors", "model-last/weights.safetensors", "config.toml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_textcnn_has_its_own_epoch_budget_and_patience_and_a_set_value_wins(capsys):
    """textcnn.v1 trains up to 40 epochs with patience 5 when [training] leaves them out (10 and 3 stopped it
    before it converged: benchmarks/results/student_defaults.md); other models keep TrainingConfig's."""
    from zhcls.config import TrainingConfig, config_from_dict, resolved_dict
    from zhcls.models.base import build_model

    resolved = resolved_dict(config_from_dict({"model": {"name": "textcnn.v1"}}))["training"]
    assert (resolved["epochs"], resolved["patience"]) == (40, 5)
    model = build_model("textcnn.v1", {}, TrainingConfig(epochs=10))
    assert (model.training.epochs, model.training.patience) == (10, 5)  # the config's value wins, the other is the model's
    other = build_model("bigru.v1", {}, TrainingConfig())
    assert (other.training.epochs, other.training.patience) == (10, 3)
    code, out, _ = run_cli(["config", "init", "--model", "textcnn.v1"], capsys)
    assert code == 0 and "epochs = 40  # textcnn.v1's default" in out and "patience = 5  # textcnn.v1's default" in out


# -- early stopping: the bar is finished and one line says where -------------------------------------------

def test_early_stopping_finishes_the_bar_and_says_where(tiny_files, tmp_path, capsys):
    cfg = _config(tmp_path, tiny_files, extra="patience = 1\n")
    run = tmp_path / "run"
    args = ["train", cfg, "-o", run, "--set", "training.epochs=60", "--set", "model.embed_dim=16", "--set", "model.num_filters=8"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    log = [json.loads(line) for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    last, best = log[-1], [r for r in log if r["best"]][-1]
    assert last["epoch"] < 60, "the tiny corpus should stop early with patience 1"
    assert f"stopped early at epoch {last['epoch']}, best epoch {best['epoch']} (step {last['step']} of " in err
    assert f"{last['step']}/{last['step']} stopped early" in err  # the bar ends full, not frozen at step/total


def test_early_stopping_in_steps_when_evaluations_are_not_per_epoch():
    from zhcls.cli._common import EarlyStop

    seen = EarlyStop()
    for step, epoch, best in ((3, 0, True), (6, 1, False)):  # eval_every = 3 steps, 5 steps an epoch
        seen.record("step", {"step": step, "total": 50, "loss": 1.0, "epoch": epoch})
        seen.record("eval", {"step": step, "epoch": epoch, "best": best})
    assert seen.summary() == "stopped early at step 6 of 50, best step 3"
    done = EarlyStop()
    done.record("step", {"step": 50, "total": 50, "loss": 1.0, "epoch": 9})
    done.record("eval", {"step": 50, "epoch": 10, "best": True})
    assert done.summary() is None  # ran to the end: nothing to say


# -- train prints what `data check` finds -------------------------------------------------------------------

def test_train_prints_the_data_problems_data_check_finds(tmp_path, capsys):
    train, dev = make_corpus(12, seed=1), make_corpus(4, seed=2)
    train.texts += [train.texts[0], dev.texts[0]]  # the same text under another label; a dev text in train
    train.labels += ["财经" if train.labels[0] != "财经" else "体育", dev.labels[0]]
    files = {"train": write_jsonl(tmp_path / "train.json", train), "dev": write_jsonl(tmp_path / "dev.json", dev)}
    cfg = _config(tmp_path, files, )
    code, out, _ = run_cli(["data", "check", cfg], capsys)
    assert code == 1 and "[conflicting-labels]" in out and "[leakage]" in out
    code, out, err = run_cli(["train", cfg, "-o", tmp_path / "run", "--set", "training.epochs=1", "--quiet"], capsys)
    assert code == 0, err  # the checks' errors are warnings here: training goes on
    assert "warning: data error [conflicting-labels]: train: 1 text with different labels" in err
    assert "warning: data error [leakage]: dev: 1 text also in train" in err
    assert "run:" in out


def test_a_caller_that_checked_the_data_can_turn_the_warnings_off(tmp_path, caplog):
    from zhcls import load_config, train

    data = make_corpus(12, seed=1)
    data.texts.append(data.texts[0])
    data.labels.append("财经" if data.labels[0] != "财经" else "体育")
    cfg = load_config(write_config(tmp_path / "c.toml", write_jsonl(tmp_path / "train.json", data), None, model="tfidf.v1"))
    with caplog.at_level("WARNING", logger="zhcls"):
        train(cfg, tmp_path / "checked", check=False)
    assert "conflicting-labels" not in caplog.text
    with caplog.at_level("WARNING", logger="zhcls"):
        train(cfg, tmp_path / "unchecked")
    assert "data error [conflicting-labels]" in caplog.text  # the library logs; the CLI decides how it looks


def test_train_on_clean_data_prints_no_data_warnings(tiny_files, tmp_path, capsys):
    code, _, err = run_cli(["train", _config(tmp_path, tiny_files, ), "-o", tmp_path / "run", "--set", "training.epochs=1", "--quiet"], capsys)
    assert code == 0, err
    assert "data error" not in err and "data warning" not in err


# -- example configs say where their data is ----------------------------------------------------------------

CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_config_header_says_what_data_it_needs_and_where(path):
    text = path.read_text(encoding="utf-8")
    header = text[: text.index("schema_version")]
    assert "# Data:" in header and "ZHCLS_DATA_DIR defaults to ../shared/data" in header and "Source: http" in header
    cfg = tomllib.loads(text)["data"]
    for split in ("train", "dev", "test"):
        folder, name = cfg[split].replace("${ZHCLS_DATA_DIR}/", "").rsplit("/", 1)
        assert f"${{ZHCLS_DATA_DIR}}/{folder}/" in header and name in header, (split, cfg[split])


@pytest.mark.parametrize("command", ["train", "data check"])
def test_a_missing_data_file_names_zhcls_data_dir(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZHCLS_DATA_DIR", str(tmp_path / "nowhere"))
    args = command.split() + [ROOT / "configs" / "tnews_textcnn.toml"] + (["-o", tmp_path / "run"] if command == "train" else [])
    code, _, err = run_cli(args, capsys)
    assert code == 2, err
    assert f"ZHCLS_DATA_DIR={tmp_path / 'nowhere'}" in err and "train_few_all.json: file not found" in err
    assert "hint: set ZHCLS_DATA_DIR" in err


def test_a_missing_file_with_a_plain_path_says_nothing_of_zhcls_data_dir(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tmp_path / "missing.json", None)
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "run"], capsys)
    assert code == 2 and "file not found" in err and "ZHCLS_DATA_DIR" not in err


# -- help, --set errors, width off a terminal ---------------------------------------------------------------

def test_top_level_help_lists_the_global_flags(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    options = out[out.index("Options:") : out.index("Commands:")]
    assert re.search(r"--debug\s+\S", options) and re.search(r"--quiet\s+\S", options)


def _commands(group, ctx_type, prefix=""):
    ctx = ctx_type(group)
    names = group.list_commands(ctx)
    for name in names:
        command = group.get_command(ctx, name)
        yield prefix + name, command, max(map(len, names))
        if hasattr(command, "list_commands"):
            yield from _commands(command, ctx_type, prefix + name + " ")


def test_every_command_summary_fits_in_help_at_80_columns():
    import typer

    from zhcls.cli import app

    root = typer.main.get_command(app)
    ctx_type = type(root.make_context("zhcls", [], resilient_parsing=True))
    for name, command, widest in _commands(root, ctx_type):
        # click's listing: 78 columns of text, less the indent, the widest name and the gap
        summary = command.get_short_help_str(78 - 6 - widest)
        assert summary and not summary.endswith("..."), f"`zhcls {name}`: the docstring's first sentence is cut off in --help: {summary!r}"


def test_a_set_typo_names_the_set_option_not_the_file(tiny_files, tmp_path, capsys):
    cfg = _config(tmp_path, tiny_files)
    code, _, err = run_cli(["config", "validate", cfg, "--set", "training.epochs=2", "--set", "training.lrr=3e-4"], capsys)
    assert code == 2
    assert err.startswith("error: --set training.lrr=3e-4: training.lrr: unknown key") and str(cfg) not in err
    assert "did you mean 'lr'?" in err
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text(encoding="utf-8").replace("epochs", "epochz"), encoding="utf-8")
    code, _, err = run_cli(["config", "validate", bad, "--set", "training.lr=3e-4"], capsys)
    assert code == 2 and err.startswith(f"error: {bad}: training.epochz: unknown key")  # the file's own typo names the file


def test_output_off_a_terminal_is_not_wrapped_at_80_columns(tmp_path, capsys):
    from zhcls.cli import _common

    assert _common.make_console().width == _common.WIDE == _common.make_console(stderr=True).width  # capsys: no tty
    deep = tmp_path / ("a-long-folder-name-" * 5)
    deep.mkdir()
    files = {"train": write_jsonl(deep / "train.json", make_corpus(12, seed=1)), "dev": write_jsonl(deep / "dev.json", make_corpus(4, seed=2))}
    train = make_corpus(12, seed=1)
    train.texts.append(make_corpus(4, seed=2).texts[0])
    train.labels.append(make_corpus(4, seed=2).labels[0])
    write_jsonl(files["train"], train)
    code, _, err = run_cli(["train", _config(tmp_path, files, ), "-o", tmp_path / "run", "--set", "training.epochs=1", "--quiet"], capsys)
    assert code == 0, err
    line = next(line for line in err.splitlines() if "[leakage]" in line)
    assert len(line) > 150 and str(files["dev"]) in line  # one line, the path in one piece


def test_log_lines_go_to_the_stderr_of_the_moment(monkeypatch):
    """Off a terminal log lines are plain `warning: ...` lines on whatever sys.stderr is when they are
    written: a stream captured earlier (a finished test's, now closed) must not be kept."""
    import io
    import logging
    import sys

    from zhcls.cli import _common

    _common.setup_logging()
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger("zhcls.test").warning("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("zhcls.test").warning("two")
    assert second.getvalue() == "warning: two\n"


# -- CI prints the slowest tests, with exactly the README's command ------------------------------------------

def test_ci_runs_the_readme_test_command_and_pytest_reports_durations():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = "bash setup.sh && .venv/bin/python -m pytest"
    assert f"{command}        # the tests" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"{command} 2>&1 | tee" in ci
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]["addopts"]
    assert "--durations=15" in addopts
