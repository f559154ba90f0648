"""Span tagging (tagger.v1, joint.v1): spans <-> tags, readers, CRF decoding, overfitting both heads,
export parity per head, and entity offsets that slice the original text, from the library to HTTP."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from zhcls.config import TrainingConfig
from zhcls.data.readers import ReadOptions, read_examples
from zhcls.errors import DataError
from zhcls.tagging.decode import Crf, viterbi
from zhcls.tagging.spans import Entity, SpanError, check_entities, spans_to_tags, tags_to_spans

PER = ["张三", "李四", "王小明", "赵六"]
LOC = ["北京", "上海", "广州市", "杭州"]
ORG = ["华为公司", "腾讯", "人民银行"]
TEMPLATES = {
    "工作": ["{PER}在{ORG}上班", "{PER}加入了{ORG}", "{ORG}招聘了{PER}"],
    "出行": ["{PER}明天去{LOC}", "从{LOC}到{LOC}的火车", "{PER}飞往{LOC}"],
}


def make_joint(n: int = 30, seed: int = 0) -> list[dict]:
    """Records {"text", "label", "entities"} from templates: the label is the template's topic."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = sorted(TEMPLATES)[i % 2]
        template = rng.choice(TEMPLATES[label])
        text, entities, pos = "", [], 0
        for piece in template.replace("}", "{").split("{"):
            if piece in ("PER", "LOC", "ORG"):
                word = rng.choice({"PER": PER, "LOC": LOC, "ORG": ORG}[piece])
                entities.append({"start": len(text), "end": len(text) + len(word), "type": piece})
                text += word
            else:
                text += piece
            pos += 1
        out.append({"text": text, "label": label, "entities": entities})
    return out


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


# -- spans <-> tags --------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["bio", "bioes"])
def test_spans_tags_round_trip(scheme):
    rng = random.Random(1)
    for _ in range(200):
        n, entities, at = rng.randint(1, 20), [], 0
        while at < n:
            at += rng.randint(0, 3)
            length = rng.randint(1, 4)
            if at + length <= n:
                entities.append(Entity(at, at + length, rng.choice(["PER", "LOC"])))
            at += length
        check_entities(entities, n)
        tags = spans_to_tags(entities, n, scheme)
        assert len(tags) == n
        assert tags_to_spans(tags) == entities


def test_bioes_tags_and_errors():
    assert spans_to_tags([Entity(0, 1, "LOC"), Entity(1, 4, "PER")], 5, "bioes") == ["S-LOC", "B-PER", "I-PER", "E-PER", "O"]
    assert tags_to_spans(["B-LOC", "E-LOC", "S-PER"]) == [Entity(0, 2, "LOC"), Entity(2, 3, "PER")]
    with pytest.raises(SpanError) as exc:
        tags_to_spans(["O", "B-LOC", "I-LOC", "O", "S-PER"])  # BIOES (it has S-) with an entity no E- closes
    assert exc.value.index == 1
    with pytest.raises(SpanError) as exc:
        tags_to_spans(["O", "I-LOC"])
    assert exc.value.index == 1 and "B-LOC" in exc.value.message
    with pytest.raises(SpanError):
        tags_to_spans(["B-LOC", "I-PER"])  # I- of another type continues nothing
    with pytest.raises(SpanError):
        tags_to_spans(["B-LOC", "X"])
    # a model's output is read leniently: a stray I- begins an entity
    assert tags_to_spans(["O", "I-LOC", "I-LOC", "B-PER"], strict=False) == [Entity(1, 3, "LOC"), Entity(3, 4, "PER")]


def test_overlapping_and_out_of_range_spans_are_refused():
    with pytest.raises(SpanError, match="overlaps"):
        check_entities([Entity(0, 3, "ORG"), Entity(1, 2, "LOC")], 5)  # nested
    with pytest.raises(SpanError, match="overlaps"):
        check_entities([Entity(2, 4, "ORG"), Entity(0, 3, "LOC")], 5)
    with pytest.raises(SpanError, match="out of range"):
        check_entities([Entity(3, 6, "LOC")], 5)
    with pytest.raises(SpanError, match="out of range"):
        check_entities([Entity(2, 2, "LOC")], 5)
    check_entities([Entity(0, 2, "LOC"), Entity(2, 4, "LOC")], 5)  # adjacent is fine


# -- readers ------------------------------------------------------------------------------------------
def test_jsonl_entities_and_their_errors(tmp_path):
    good = write_records(tmp_path / "a.json", [{"text": "我在北京", "entities": [{"start": 2, "end": 4, "type": "LOC"}]}, {"text": "你好"}])
    a, b = read_examples(good)
    assert a.entities == (Entity(2, 4, "LOC"),) and a.label is None and b.entities is None
    cases = {
        "overlaps": [{"start": 0, "end": 3, "type": "LOC"}, {"start": 2, "end": 4, "type": "LOC"}],
        "out of range": [{"start": 2, "end": 9, "type": "LOC"}],
        "not {start, end, type}": [{"start": 2, "type": "LOC"}],
    }
    for message, entities in cases.items():
        bad = write_records(tmp_path / "bad.json", [{"text": "你好"}, {"text": "我在北京", "entities": entities}])
        with pytest.raises(DataError) as exc:
            read_examples(bad)
        assert f"{bad}:2:" in exc.value.message and message in exc.value.message


def test_conll_bio_and_bioes(tmp_path):
    bio = tmp_path / "bio.txt"
    bio.write_text("我\tO\n在\tO\n北\tB-LOC\n京\tI-LOC\n\n张\tB-PER\n三\tI-PER\n \tO\n好\tO\n", encoding="utf-8")
    first, second = read_examples(bio, ReadOptions(format="conll"))
    assert (first.text, first.entities, first.line) == ("我在北京", (Entity(2, 4, "LOC"),), 1)
    assert (second.text, second.entities, second.line) == ("张三 好", (Entity(0, 2, "PER"),), 6)
    assert read_examples(bio)[0].entities == first.entities  # detected from the first line
    bioes = tmp_path / "bioes.txt"
    bioes.write_text("北\tB-LOC\n京\tE-LOC\n张\tS-PER\n", encoding="utf-8")
    assert read_examples(bioes, ReadOptions(format="conll"))[0].entities == (Entity(0, 2, "LOC"), Entity(2, 3, "PER"))


@pytest.mark.parametrize("body, line, message", [
    ("我\tO\n在\tO\n\n北\tO\n京\tI-LOC\n", 5, "does not continue"),
    ("我\tO\n北京\tB-LOC\n", 2, "one character"),
    ("我\tO\n北 B-LOC\n", 2, "TAB"),
    ("我\tO\n北\tB_LOC\n", 2, "is not O, B-TYPE"),
])
def test_conll_errors_name_file_and_line(tmp_path, capsys, body, line, message):
    path = tmp_path / "bad.conll"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataError) as exc:
        read_examples(path, ReadOptions(format="conll"))
    assert exc.value.message.startswith(f"{path}:{line}:") and message in exc.value.message
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ntrain = "{path}"\nformat = "conll"\n[model]\nname = "tagger.v1"\n', encoding="utf-8")
    code, _, err = run_cli(["data", "check", config], capsys)
    assert code == 2 and f"{path}:{line}" in err


# -- CRF decoding ----------------------------------------------------------------------------------
def _path_score(path, em, crf) -> float:
    s = crf.start[path[0]] + crf.end[path[-1]] + sum(em[i, y] for i, y in enumerate(path))
    return s + sum(crf.transitions[a, b] for a, b in zip(path, path[1:]))


def test_viterbi_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(60):
        t, k = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        em, crf = rng.normal(size=(t, k)), Crf(rng.normal(size=k), rng.normal(size=k), rng.normal(size=(k, k)))

        best = max(itertools.product(range(k), repeat=t), key=lambda path, em=em, crf=crf: _path_score(path, em, crf))
        assert tuple(viterbi(em, crf)) == best


def test_viterbi_matches_pytorch_crf():
    torch = pytest.importorskip("torch")
    torchcrf = pytest.importorskip("torchcrf")
    torch.manual_seed(0)
    crf = torchcrf.CRF(5, batch_first=True)
    for p in crf.parameters():
        torch.nn.init.normal_(p)
    em = torch.randn(3, 7, 5)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6], dtype=torch.bool)
    ours = Crf(crf.start_transitions.detach().numpy(), crf.end_transitions.detach().numpy(), crf.transitions.detach().numpy())
    for i, path in enumerate(crf.decode(em, mask)):
        assert list(viterbi(em[i, : len(path)].numpy(), ours)) == path


# -- models ------------------------------------------------------------------------------------------
FAST = TrainingConfig(epochs=40, batch_size=8, lr=2e-2, patience=0, device="cpu")
TINY = {"embed_dim": 24, "hidden_size": 24, "buckets": 500, "gram_dim": 8, "dropout": 0.0}


def _fit(name: str, records: list[dict], **params):
    from zhcls.data.example import Example
    from zhcls.models.base import build_model

    model = build_model(name, {**TINY, **params}, FAST)
    examples = [Example(r["text"], r.get("label"), entities=tuple(Entity(**e) for e in r["entities"])) for r in records]
    return model.fit_examples([examples])


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    return _fit("joint.v1", make_joint(30))


@pytest.mark.parametrize("params", [{}, {"head": "softmax", "encoder": "cnn", "scheme": "bioes"}])
def test_tagger_overfits(params):
    records = make_joint(24, seed=3)
    model = _fit("tagger.v1", records, **params)
    got = [[e for e, _ in p] for p in model.predict_spans([r["text"] for r in records])]
    assert got == [[Entity(**e) for e in r["entities"]] for r in records]
    assert len(model.labels_) == 0


def test_joint_overfits_both_heads(joint):
    records = make_joint(30)
    texts = [r["text"] for r in records]
    assert joint.predict(texts) == [r["label"] for r in records]
    spans = joint.predict_spans(texts)
    assert [[e for e, _ in p] for p in spans] == [[Entity(**e) for e in r["entities"]] for r in records]
    assert all(0 < s <= 1 for p in spans for _, s in p)


def test_joint_save_load_and_export_parity(joint, tmp_path):
    from zhcls import load_model
    from zhcls.export.onnx import export_bundle
    from zhcls.serve.predictor import Predictor

    texts = [r["text"] for r in make_joint(12, seed=5)] + ["", "  空格 和 ＡＢＣ全角 😀 张三去北京", "x" * 700]
    joint.meta = {}
    joint.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict_proba(texts), joint.predict_proba(texts), atol=1e-6)
    assert loaded.predict_spans(texts) == joint.predict_spans(texts)
    from zhcls.data.example import Example

    manifest = export_bundle(tmp_path / "model", tmp_path / "bundle", data=[Example(t) for t in texts], latency_texts=20)
    parity = manifest["parity"]["fp32"]
    assert parity["classes"]["max_abs_diff"] < 1e-4 and parity["tags"]["max_abs_diff"] < 1e-4 and parity["tags"]["entity_agreement"] == 1.0
    predictor = Predictor(tmp_path / "bundle")
    np.testing.assert_allclose(predictor.predict_proba(texts), joint.predict_proba(texts), atol=1e-4)
    ours = [[e for e, _ in p] for p in predictor.predict_spans(texts)]
    assert ours == [[e for e, _ in p] for p in joint.predict_spans(texts)]
    for text, p in zip(texts, predictor.predict_scored(texts)):
        for e in p.entities:
            assert text[e["start"] : e["end"]] == e["text"] and e["end"] <= len(text)


def test_train_evaluate_export_predict_serve(tmp_path, capsys):
    """One config to one bundle: train joint.v1 from JSON lines, evaluate (metrics.json and the CLI), export,
    predict and serve with entity offsets that slice the original text."""
    write_records(tmp_path / "train.json", make_joint(30, seed=1))
    write_records(tmp_path / "dev.json", make_joint(8, seed=2))
    config = tmp_path / "joint.toml"
    params = "\n".join(f"{k} = {v}" for k, v in TINY.items())
    config.write_text(
        f'[data]\ntrain = "{tmp_path / "train.json"}"\ndev = "{tmp_path / "dev.json"}"\ntest = "{tmp_path / "dev.json"}"\n'
        f'[model]\nname = "joint.v1"\n{params}\n[training]\nepochs = 30\nbatch_size = 8\nlr = 0.02\npatience = 0\ndevice = "cpu"\n', encoding="utf-8")
    code, _, err = run_cli(["train", config, "-o", tmp_path / "run"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    test = metrics["test"]
    assert test["accuracy"] == 1.0 and test["entities"]["micro_f1"] == 1.0 and set(test["entities"]["per_type"]) <= {"PER", "LOC", "ORG"}
    assert "macro_f1" in test["entities"] and test["entities"]["span_errors"] == []
    code, out, _ = run_cli(["evaluate", tmp_path / "run", tmp_path / "dev.json", "--json"], capsys)
    assert code == 0 and json.loads(out)["entities"]["micro_f1"] == 1.0
    code, out, err = run_cli(["export", tmp_path / "run", "-o", tmp_path / "bundle"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["evaluate", tmp_path / "bundle", tmp_path / "dev.json"], capsys)
    assert code == 0 and "entity" in out, err

    texts = ["张三明天去北京", "  ＡＢＣ 李四加入了华为公司！"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    code, out, err = run_cli(["predict", tmp_path / "bundle", tmp_path / "texts.txt"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["label"] for r in rows] == ["出行", "工作"]
    for row in rows:
        assert row["entities"] and all(row["text"][e["start"] : e["end"]] == e["text"] for e in row["entities"])
    assert [(e["text"], e["type"], e["start"]) for e in rows[0]["entities"]] == [("张三", "PER", 0), ("北京", "LOC", 5)]
    assert "华为公司" in {e["text"] for e in rows[1]["entities"]}

    from fastapi.testclient import TestClient

    from zhcls.serve.http import create_app
    from zhcls.serve.predictor import Predictor

    client = TestClient(create_app(Predictor(tmp_path / "bundle")))
    raw = "\u3000张三明天去北京 "
    body = client.post("/v1/predict", json={"texts": [raw]}).json()["predictions"][0]
    assert body["label"] == "出行"
    assert [(raw[e["start"] : e["end"]], e["type"]) for e in body["entities"]] == [("张三", "PER"), ("北京", "LOC")]
    assert "entities" in client.get("/").text


def test_tag_set_mismatch_and_unannotated_train_exit_2(tmp_path, capsys):
    write_records(tmp_path / "train.json", make_joint(6))
    write_records(tmp_path / "dev.json", [{"text": "去纽约", "entities": [{"start": 1, "end": 3, "type": "GPE"}]}])
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ntrain = "{tmp_path / "train.json"}"\ndev = "{tmp_path / "dev.json"}"\n[model]\nname = "tagger.v1"\n', encoding="utf-8")
    code, _, err = run_cli(["train", config, "-o", tmp_path / "run"], capsys)
    assert code == 2 and f"{tmp_path / 'dev.json'}:1" in err and "GPE" in err
    write_records(tmp_path / "plain.json", [{"text": "你好", "label": "a"}, {"text": "再见", "label": "b"}])
    config.write_text(f'[data]\ntrain = "{tmp_path / "plain.json"}"\n[model]\nname = "tagger.v1"\n', encoding="utf-8")
    code, _, err = run_cli(["train", config, "-o", tmp_path / "run2"], capsys)
    assert code == 2 and "entities" in err


# -- augmentation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", [{"delete.v1": 0.4}, {"swap.v1": 0.4}, {"insert.v1": 0.4}, {"truncate.v1": 0.5}])
def test_augmentation_keeps_entity_spans_intact(recipe):
    from zhcls.augment.pipeline import Augmenter
    from zhcls.data.example import Example

    records = make_joint(20, seed=7)
    examples = [Example(r["text"] + "，今天天气很好2024年", r["label"], entities=tuple(Entity(**e) for e in r["entities"])) for r in records]
    aug = Augmenter.from_recipe(recipe, n=3, seed=1).fit([e.text for e in examples])
    copies = aug.augment(examples)
    assert copies
    changed = 0
    for copy in copies:
        source = examples[copy.meta["aug_index"]]
        surfaces = sorted((source.text[e.start : e.end], e.type) for e in source.entities)
        got = sorted((copy.text[e.start : e.end], e.type) for e in copy.entities)
        check_entities(copy.entities, len(copy.text))
        if "truncate.v1" in recipe:
            assert set(got) <= set(surfaces)
        else:
            assert got == surfaces
        changed += [e.start for e in copy.entities] != [e.start for e in source.entities]
    if "swap.v1" not in recipe:  # swaps move no entity; deletions and insertions before one shift it
        assert changed
