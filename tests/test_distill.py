"""Distillation: teachers (tiny BERT, runs, ensembles), soft targets (cache, resume), the KD loss, the transfer set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_corpus, run_cli, write_jsonl
from zhcls.config import TrainingConfig, config_from_dict
from zhcls.data.unlabeled import dedupe_unlabeled
from zhcls.distill import label_texts, load_teacher, read_soft_targets
from zhcls.distill.transfer import build_transfer_set
from zhcls.eval.probs import SoftTargets, temper
from zhcls.models.base import build_model, load_model
from zhcls.models.losses import distill_loss, kd_loss
from zhcls.training.run import load_splits, train

SMALL_CNN = {"name": "textcnn.v1", "embed_dim": 16, "num_filters": 16}


def config(files: dict[str, Path], model: dict | None = None, **sections) -> dict:
    raw = {
        "data": {"train": str(files["train"]), "dev": str(files["dev"]), "test": str(files["test"])},
        "model": model or SMALL_CNN,
        "training": {"epochs": 3, "batch_size": 8, "lr": 1e-2},
    }
    raw.update(sections)
    return raw


@pytest.fixture()
def teacher_run(tiny_files, tmp_path) -> Path:
    out = tmp_path / "teacher"
    train(config_from_dict(config(tiny_files)), out)
    return out


# -- the loss --------------------------------------------------------------------------------------
def test_kd_loss_matches_hand_computed_values():
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]])
    q = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
    T, alpha = 2.0, 0.3

    def log_softmax(x):
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    q_t = q ** (1 / T) / (q ** (1 / T)).sum(axis=1, keepdims=True)
    kl = T * T * (q_t * (np.log(q_t) - log_softmax(s / T))).sum(axis=1)
    ce0 = -log_softmax(s)[0, 1]
    expected = (alpha * kl[0] + (1 - alpha) * ce0 + kl[1]) / 2  # row 1 has no hard label: soft loss alone

    st = torch.tensor(s, dtype=torch.float32)
    target = torch.tensor(temper(q, T))
    np.testing.assert_allclose(kd_loss(st, target, T, "kl").numpy(), kl, rtol=1e-5)
    got = distill_loss(st, torch.tensor([1, -1]), target, temperature=T, alpha=alpha, kind="kl")
    assert float(got) == pytest.approx(expected, rel=1e-5)
    z = np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])  # mse on logits: mean over classes
    np.testing.assert_allclose(kd_loss(st, torch.tensor(z, dtype=torch.float32), T, "mse").numpy(), ((s - z) ** 2).mean(axis=1), rtol=1e-6)


def test_one_hot_teacher_at_alpha_1_equals_ordinary_training(tiny_corpus):
    texts, labels = tiny_corpus.texts, tiny_corpus.labels
    params, training = {"embed_dim": 16, "num_filters": 16}, TrainingConfig(epochs=2, batch_size=8, lr=1e-2, patience=0)
    plain = build_model("textcnn.v1", params, training).fit(texts, labels)
    classes = sorted(set(labels))
    one_hot = np.eye(len(classes), dtype=np.float32)[[classes.index(label) for label in labels]]
    kd = build_model("textcnn.v1", params, training).fit(texts, labels, targets=SoftTargets(classes, one_hot, None, temperature=1.0, alpha=1.0))
    assert plain.fit_result_.steps == kd.fit_result_.steps == 10
    for name, value in plain.net_.state_dict().items():
        torch.testing.assert_close(kd.net_.state_dict()[name], value, rtol=0, atol=1e-6)


# -- the transformer teacher ------------------------------------------------------------------------
def tiny_bert(path: Path, texts: list[str]) -> Path:
    """A randomly initialized BERT (hidden 32, 2 layers, 2 heads) with a vocabulary of the texts' characters."""
    transformers = pytest.importorskip("transformers")
    path.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({ch for t in texts for ch in t})
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizer(str(path / "vocab.txt"))
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(cfg).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def test_tiny_bert_teacher_fine_tunes_and_saves_as_a_run(tiny_files, tmp_path, tiny_corpus):
    corpus = [make_corpus(12, seed=s) for s in (1, 2, 3)]
    bert = tiny_bert(tmp_path / "bert", [t for c in corpus for t in c.texts])
    model = {"name": "transformer.v1", "path": str(bert), "max_length": 12, "warmup_ratio": 0.1, "grad_accum": 2}
    raw = config(tiny_files, model)
    raw["training"] = {"epochs": 12, "batch_size": 8, "lr": 3e-3, "patience": 0}
    result = train(config_from_dict(raw), tmp_path / "bert-run")
    losses = [json.loads(line)["train_loss"] for line in (tmp_path / "bert-run" / "log.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0] - 0.2
    assert result.metrics["truncation"]["max_length"] == 12 and result.metrics["truncation"]["truncated"] > 0
    files = {p.name for p in result.best_dir.iterdir()}
    assert {"zhcls.json", "config.json", "model.safetensors"} <= files and not any(f.endswith(".bin") for f in files)
    loaded = load_model(tmp_path / "bert-run")
    texts = tiny_corpus.texts[:6]
    batch = loaded.predict_proba(texts)
    np.testing.assert_allclose(batch, np.vstack([loaded.predict_proba([t]) for t in texts]), atol=1e-5)
    teacher = load_teacher([tmp_path / "bert-run"])  # a transformer run is a teacher with logits
    probs, logits = teacher.predict(texts)
    assert logits is not None
    np.testing.assert_allclose(probs, batch, atol=1e-5)


# -- soft targets: cache and resume ----------------------------------------------------------------
class FakeTeacher:
    """Counts the texts it labels; raises after `fail_after` calls (a kill in the middle of labelling)."""

    identity, paths, labels = "fake-teacher", ["fake"], ("a", "b")

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls, self.seen, self.fail_after = 0, [], fail_after

    def predict(self, texts):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.seen += list(texts)
        x = np.array([[len(t) % 3, 1.0] for t in texts], dtype=np.float32)
        p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        return p, x


def test_teacher_labelling_resumes_after_a_kill(tmp_path):
    texts = [f"第{i}条文本" for i in range(20)]
    with pytest.raises(KeyboardInterrupt):
        label_texts(FakeTeacher(fail_after=2), texts, cache_dir=tmp_path / "c", batch_size=4)
    partial = next((tmp_path / "c").rglob("*.partial"))
    assert len(partial.read_text().splitlines()) == 1 + 8  # header + two fsynced chunks
    with open(partial, "ab") as f:
        f.write(b'{"text": "\xe7\xac\xac8')  # a torn line, as a kill in the middle of a write leaves
    teacher = FakeTeacher()
    result = label_texts(teacher, texts, cache_dir=tmp_path / "c", batch_size=4, out=tmp_path / "soft.jsonl")
    assert teacher.seen == texts[8:] and result.resumed_rows == 8
    fresh = label_texts(FakeTeacher(), texts, cache_dir=tmp_path / "fresh", batch_size=4)
    assert (tmp_path / "soft.jsonl").read_bytes() == fresh.path.read_bytes()
    assert not list((tmp_path / "c").rglob("*.partial"))
    assert read_soft_targets(tmp_path / "soft.jsonl").texts == texts


def test_soft_targets_are_cached_by_teacher_and_texts(teacher_run, tiny_files, tmp_path, monkeypatch):
    texts = make_corpus(5, seed=9).texts
    first = label_texts(load_teacher([teacher_run]), texts, cache_dir=tmp_path / "cache")
    assert not first.cached and first.logits is not None

    def boom(self, texts):
        raise AssertionError("the teacher ran although its soft targets are cached")

    monkeypatch.setattr("zhcls.distill.teachers.Teacher.predict", boom)
    second = label_texts(load_teacher([teacher_run]), texts, cache_dir=tmp_path / "cache")
    assert second.cached
    np.testing.assert_array_equal(second.probs, first.probs)
    # a distillation run goes through the same cache: the second one never calls the teacher
    monkeypatch.undo()
    raw = config(tiny_files, distill={"teacher": str(teacher_run), "cache_dir": str(tmp_path / "cache")})
    assert train(config_from_dict(raw), tmp_path / "s1").metrics["distill"]["soft_targets_cached"] is False
    monkeypatch.setattr("zhcls.distill.teachers.Teacher.predict", boom)
    again = train(config_from_dict(raw), tmp_path / "s2")
    assert again.metrics["distill"]["soft_targets_cached"] is True
    assert again.metrics["test"] == json.loads((tmp_path / "s1" / "metrics.json").read_text())["test"]


# -- the transfer set ------------------------------------------------------------------------------
def test_unlabeled_rows_in_dev_or_test_are_dropped(tiny_files, tmp_path):
    dev_text = json.loads(tiny_files["dev"].read_text(encoding="utf-8").splitlines()[0])["sentence"]
    test_text = json.loads(tiny_files["test"].read_text(encoding="utf-8").splitlines()[0])["sentence"]
    fresh = make_corpus(3, seed=11).texts
    # the same texts in another form: normalization (NFKC, spaces) makes them equal
    kept, dropped = dedupe_unlabeled([f" {dev_text}\u200b", "\u3000", *fresh, fresh[0]], [dev_text, test_text])
    assert kept == fresh and dropped == {"overlap": 1, "duplicate": 1, "empty": 1}
    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text("".join(json.dumps({"sentence": t}, ensure_ascii=False) + "\n" for t in [f"  {dev_text}", test_text, *fresh]), encoding="utf-8")
    cfg = config_from_dict(config(tiny_files, distill={"teacher": "unused", "unlabeled": str(unlabeled)}))
    ts = build_transfer_set(cfg, load_splits(cfg))
    assert [t for t, k in zip(ts.texts, ts.kinds) if k == "unlabeled"] == fresh
    assert ts.info["unlabeled_dropped"]["overlap"] == 2


def test_distillation_with_unlabeled_text_via_cli(teacher_run, tiny_files, tmp_path, capsys):
    unlabeled = write_jsonl(tmp_path / "unlabeled.json", make_corpus(6, seed=21))
    soft = tmp_path / "soft.jsonl"
    code, out, err = run_cli(
        ["teacher", "label", teacher_run, tiny_files["train"], unlabeled, "-o", soft, "--cache-dir", tmp_path / "cache", "--quiet"], capsys
    )
    assert code == 0, err
    assert "from teacher" in out and read_soft_targets(soft).logits is not None
    code, out, _ = run_cli(["teacher", "label", teacher_run, tiny_files["train"], unlabeled, "-o", soft, "--cache-dir", tmp_path / "cache", "--quiet"], capsys)
    assert "from cache (teacher not run)" in out
    distill = f'[distill]\nsoft_targets = "{soft}"\nunlabeled = ["{unlabeled}"]\ntemperature = 2.0\nalpha = 0.7\nloss = "mse"\nmin_confidence = 0.4\n'
    cfg_path = tmp_path / "distill.toml"
    cfg_path.write_text(
        f'[data]\ntrain = "{tiny_files["train"]}"\ndev = "{tiny_files["dev"]}"\n\n[model]\nname = "textcnn.v1"\nembed_dim = 16\nnum_filters = 16\n\n'
        f"[training]\nepochs = 2\nbatch_size = 8\n\n{distill}",
        encoding="utf-8",
    )
    code, out, err = run_cli(["train", cfg_path, "-o", tmp_path / "student", "--quiet"], capsys)
    assert code == 0, err
    info = json.loads((tmp_path / "student" / "metrics.json").read_text())["distill"]
    assert info["transfer"]["labeled"] == 36 and info["transfer"]["unlabeled"] + info["unlabeled_low_confidence"] == 18
    # a student that is not trained by gradient descent: a clear error, exit 2
    cfg_path.write_text(cfg_path.read_text().replace('name = "textcnn.v1"\nembed_dim = 16\nnum_filters = 16', 'name = "tfidf.v1"'))
    code, _, err = run_cli(["train", cfg_path, "-o", tmp_path / "tfidf-student"], capsys)
    assert code == 2 and "neural student" in err


def test_ensemble_weights_fitted_on_dev():
    from zhcls.distill.teachers import fit_weights

    labels = ("a", "b")
    good = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    bad = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    w = fit_weights([good, bad], labels, ["a", "b", "a"], "accuracy")
    assert w[0] > w[1] and w.sum() == pytest.approx(1.0)
    # ties go to the most even weights
    np.testing.assert_allclose(fit_weights([good, good], labels, ["a", "b", "a"], "accuracy"), [0.5, 0.5])


def test_teacher_label_names_a_missing_path(tiny_files, tmp_path, capsys):
    code, _, err = run_cli(["teacher", "label", tmp_path / "no-such-run", tiny_files["train"], "-o", tmp_path / "soft.jsonl"], capsys)
    assert code == 2 and "no-such-run: no such file or directory" in err
    assert not (tmp_path / "soft.jsonl").exists()


def test_a_damaged_soft_target_row_is_named(tmp_path):
    from zhcls.distill.soft import read_soft_targets
    from zhcls.errors import DataError

    path = tmp_path / "soft.jsonl"
    header = {"zhcls_soft_targets": 1, "key": "k", "teacher": "t", "teacher_paths": [], "labels": ["a", "b"], "n": 1}
    path.write_text(json.dumps(header) + '\n{"text": "好", "prob": [0.5, 0.5]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"soft.jsonl:2: not a soft-target row"):
        read_soft_targets(path)
