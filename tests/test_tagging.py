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


def test_best_path_is_viterbis_and_skips_clear_outside_positions(monkeypatch):
    """best_path proves most positions O and runs Viterbi only between them; its path is viterbi's, on tiny
    cases by brute force and on longer ones where the emissions make O clear but not everywhere."""
    from zhcls.tagging import decode as dec

    rng = np.random.default_rng(3)
    for _ in range(60):
        t, k = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        o = int(rng.integers(0, k))
        em, crf = rng.normal(size=(t, k)), Crf(rng.normal(size=k), rng.normal(size=k), rng.normal(size=(k, k)))
        em[:, o] += rng.uniform(0, 4)
        best = max(itertools.product(range(k), repeat=t), key=lambda path, em=em, crf=crf: _path_score(path, em, crf))
        assert tuple(dec.best_path(em, crf, o)) == best
    decoded = []
    real = dec._viterbi
    monkeypatch.setattr(dec, "_viterbi", lambda em, *rest: decoded.append(len(em)) or real(em, *rest))
    positions = 0
    for _ in range(300):
        t, k = int(rng.integers(2, 60)), int(rng.integers(2, 8))
        o = int(rng.integers(0, k))
        em = (rng.normal(size=(t, k)) * rng.uniform(0.5, 4)).astype(np.float32)
        em[rng.random(t) < 0.85, o] += rng.uniform(6, 12)  # most characters clearly O, as in text
        crf = Crf(*(rng.normal(size=s).astype(np.float32) for s in (k, k, (k, k))))
        assert np.array_equal(dec.best_path(em, crf, o), real(em, crf.start, crf.end, crf.transitions))
        positions += t
    assert 0 < sum(decoded) < positions / 3  # Viterbi ran, on less than a third of the positions (0.39 with one global worst transition)


def test_tag_marginals_equal_brute_force():
    from zhcls.tagging.decode import tag_marginals

    rng = np.random.default_rng(1)
    for _ in range(30):
        t, k, temp = int(rng.integers(1, 5)), int(rng.integers(1, 4)), float(rng.choice([0.5, 1.0, 2.0]))
        em, crf = rng.normal(size=(t, k)), Crf(rng.normal(size=k), rng.normal(size=k), rng.normal(size=(k, k)))
        paths = list(itertools.product(range(k), repeat=t))
        weight = np.exp([_path_score(path, em, crf) / temp for path in paths])
        expected = np.zeros((t, k))
        for path, w in zip(paths, weight):
            expected[np.arange(t), path] += w
        np.testing.assert_allclose(tag_marginals(em, crf, temp), expected / weight.sum(), atol=1e-10)
    em = rng.normal(size=(3, 4))
    np.testing.assert_allclose(tag_marginals(em, None, 2.0), np.exp(em / 2) / np.exp(em / 2).sum(axis=1, keepdims=True))


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



@pytest.mark.parametrize("tags", [["O", "B-LOC", "I-LOC", "B-PER", "I-PER"], ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-PER", "E-PER", "S-PER"]])
def test_decode_reads_paths_as_tags_to_spans(tags):
    """decode reads only a path's entity tags; its entities are tags_to_spans(strict=False)'s of the whole path
    (orphan I-/E- tags begin an entity), each scored by the geometric mean of its characters' probabilities."""
    from zhcls.tagging.decode import decode, log_softmax

    rng = np.random.default_rng(4)
    for _ in range(500):
        n = int(rng.integers(1, 15))
        em = rng.normal(size=(n, len(tags))).astype(np.float32) * 2
        em[:, 0] += rng.choice([0.0, 3.0], n)  # mostly O
        path = em.argmax(axis=1)  # a softmax head
        want = tags_to_spans([tags[i] for i in path], strict=False)
        chosen = log_softmax(em)[np.arange(n), path]
        entities, scores = decode(em, tags, None, n)
        assert entities == want
        np.testing.assert_allclose(scores, [np.exp(chosen[e.start : e.end].mean()) for e in want], rtol=1e-5)


def test_char_features_ids_are_hashed_ngrams():
    """The cached per-character encoder gives the ids of hashed_ngrams over the tokens padded with <s>: the
    ids of every trained model stay as they were."""
    from zhcls.tagging.features import BOUNDARY, SALT, SPACE, CharFeatures
    from zhcls.text.featurizer import hashed_ngrams

    def reference(f, text):
        tokens = f.tokens(text) or [SPACE]
        ids, t, n_max = f.vocab.encode(tokens), len(tokens), f.ngrams
        if not f.n_grams:
            return ids, np.zeros((t, 0), dtype=np.int64)
        pad = [BOUNDARY] * (n_max - 1)
        raw, columns, at = np.asarray(hashed_ngrams(pad + tokens + pad, n_max, 0, 2**32), dtype=np.int64), [], 0
        for n in range(2, n_max + 1):
            grams, at = raw[at : at + t + 2 * (n_max - 1) - n + 1], at + t + 2 * (n_max - 1) - n + 1
            for k in range(n):  # the n-gram in which the position is the k-th character, its own salt
                columns.append((grams[n_max - n + k : n_max - n + k + t] + SALT * (len(columns) + 1)) % f.buckets + 1)
        return ids, np.stack(columns, axis=1)

    rng = random.Random(0)
    alphabet = list("北京上海张三李四的 　ＡBｃ\t😀é\u200b")
    for ngrams, buckets in [(1, 1000), (2, 97), (2, 200_000), (3, 1000), (4, 0)]:
        f = CharFeatures.fit(["北京上海张三", "李四的"], ngrams=ngrams, buckets=buckets, max_len=20)
        for _ in range(100):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
            ids, grams = f.encode(text)
            want_ids, want_grams = reference(f, text)
            assert ids.tolist() == list(want_ids) and grams.shape == want_grams.shape and (grams == want_grams).all()

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


def test_tag_loss_is_per_text(joint):
    """A batch's tag loss is the mean over its texts of each text's sequence loss (not a mean over characters,
    which would weigh a long sentence like a short one); its class loss the mean over its labeled texts."""
    from zhcls.data.example import Example
    from zhcls.models.tag_training import batch_losses

    records = make_joint(6, seed=9)
    examples = [Example(r["text"] + "，今天很好" * i, r["label"], entities=tuple(Entity(**e) for e in r["entities"])) for i, r in enumerate(records)]
    rows = joint._rows(examples, 1.0)
    joint.module_.eval()
    tag, cls = batch_losses(joint.module_, rows, np.arange(6))
    alone = [batch_losses(joint.module_, rows, np.array([i])) for i in range(6)]
    assert abs(tag.item() - np.mean([t.item() for t, _ in alone])) < 1e-4
    assert abs(cls.item() - np.mean([c.item() for _, c in alone])) < 1e-4
    unlabeled = joint._rows([Example(e.text, None, entities=e.entities) for e in examples], 1.0)
    assert batch_losses(joint.module_, unlabeled, np.arange(6))[1] is None


def test_batch_plan_samples_in_proportion_to_size():
    """Equal weights: one pass over every dataset per epoch, as alone; weights scale a dataset's natural share."""
    from zhcls.models.tag_training import Rows, batch_plan

    def rows(n):
        return Rows([(np.ones(5, dtype=np.int64), np.ones((5, 1), dtype=np.int64))] * n, [None] * n, np.zeros(n, dtype=np.int64))

    groups = [rows(40), rows(160)]  # 5 and 20 batches of 8
    plan = batch_plan(groups, 8, seed=0, epoch=0)
    assert [sum(g == i for g, _ in plan) for i in (0, 1)] == [5, 20]
    assert sorted(np.concatenate([idx for g, idx in plan if g == 1]).tolist()) == list(range(160))  # each row once
    groups[0].weight = 4.0  # 4 x 5 = 20 : 20, half of the 25 batches each (rounded half up)
    assert [sum(g == i for g, _ in batch_plan(groups, 8, seed=0, epoch=1)) for i in (0, 1)] == [13, 13]


@pytest.mark.parametrize("heads, epochs", [
    # entities keep improving while classes peak at the second evaluation and the mean stays flat: no stop
    ([(0.5, 0.9), (0.6, 0.95), (0.62, 0.93), (0.63, 0.92), (0.64, 0.91), (0.65, 0.90)], 6),
    # neither head improves after the second evaluation: patience 2 stops at the fourth
    ([(0.5, 0.9), (0.6, 0.95), (0.6, 0.94), (0.59, 0.95), (0.7, 0.99), (0.7, 0.99)], 4),
])
def test_early_stopping_waits_for_every_head(heads, epochs):
    from zhcls.data.example import Example
    from zhcls.models.base import build_model

    records = make_joint(8)
    examples = [Example(r["text"], r["label"], entities=tuple(Entity(**e) for e in r["entities"])) for r in records]
    model = build_model("joint.v1", TINY, TrainingConfig(epochs=6, batch_size=8, lr=1e-3, patience=2, device="cpu"))
    scripted = iter(heads)

    def dev_scores(dev):
        ent, cls = next(scripted)
        return {"dev_entity_f1": ent, "dev_macro_f1": cls, "score": (ent + cls) / 2, "heads": {"entities": ent, "classes": cls}}

    model._dev_scores = dev_scores
    model.fit_examples([examples], examples)
    history = model.fit_history()
    assert model.fit_result_.epochs == epochs and len(history) == epochs
    assert model.fit_result_.best_step == max(history, key=lambda r: (r["dev_entity_f1"] + r["dev_macro_f1"]) / 2)["step"]
    assert history[2]["heads_improved"] == (["entities"] if epochs == 6 else [])


def test_tagger_graph_needs_no_mask(tmp_path):
    """A BiGRU tagger's graph has no masking nodes: ONNX's GRU given the lengths writes zeros past each text,
    and the emissions at every valid position of a padded batch equal torch's."""
    import onnx
    import onnxruntime as ort
    import torch

    from zhcls.models.tagnets import JointNet, export_onnx

    torch.manual_seed(0)
    net = JointNet(30, 101, 2, 5, 0, embed_dim=8, gram_dim=4, hidden_size=6, num_layers=2, encoder="bigru", kernel_size=3, dropout=0.0).eval()
    export_onnx(net, tmp_path / "m.onnx", 2)
    assert not {"Less", "Range", "Mul"} & {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    lengths = np.array([7, 1, 4])
    ids = np.random.default_rng(0).integers(2, 30, (3, 7)) * (np.arange(7)[None] < lengths[:, None])
    grams = np.random.default_rng(1).integers(1, 101, (3, 7, 2)) * (ids[..., None] > 0)
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"ids": ids, "grams": grams, "lengths": lengths})[0]
    with torch.no_grad():
        want = net(*(torch.from_numpy(a) for a in (ids, grams, lengths))).numpy()
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(got[i, :n], want[i, :n], atol=1e-5)


def test_joint_save_load_and_export_parity(joint, tmp_path):
    _save_load_export_parity(joint, tmp_path)


def _save_load_export_parity(joint, tmp_path):
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
    batch = predictor.predict_scored(texts)
    for text, p in zip(texts, batch):
        for e in p.entities:
            assert text[e["start"] : e["end"]] == e["text"] and e["end"] <= len(text)
    one = [predictor.predict_scored([t])[0] for t in texts]  # the single-text path: no padding
    assert [p.entities for p in one] == [p.entities for p in batch] and [p.truncated for p in one] == [p.truncated for p in batch]
    np.testing.assert_allclose([[p.scores[k] for k in sorted(p.scores)] for p in one], [[p.scores[k] for k in sorted(p.scores)] for p in batch], atol=1e-6)


def test_a_private_class_bag_learns_exports_and_is_the_class_heads_alone(tmp_path):
    """class_bag_dim: the class head's own character and n-gram bag. Both heads still overfit and export with
    parity; the tagging loss leaves the bag untouched; it is refused with a transformer encoder."""
    import torch
    from pydantic import ValidationError

    from zhcls.models.tagger import JointParams
    from zhcls.tagging.features import pad_features

    records = make_joint(30)
    texts = [r["text"] for r in records]
    model = _fit("joint.v1", records, class_bag_dim=8)
    net = model.module_.net
    assert net.class_chars.weight.shape[1] == 8 and net.class_grams is not None and net.out.in_features == 2 * TINY["hidden_size"] + TINY["gram_dim"] + 8
    assert model.predict(texts) == [r["label"] for r in records]
    assert [[e for e, _ in p] for p in model.predict_spans(texts)] == [[Entity(**e) for e in r["entities"]] for r in records]
    ids, grams, lengths = (torch.from_numpy(a) for a in pad_features(model.features_.encode_batch(texts)))
    net.train()
    net.zero_grad(set_to_none=True)
    emissions, logits = net(ids, grams, lengths)
    emissions.sum().backward(retain_graph=True)
    assert net.class_chars.weight.grad is None and net.class_grams.weight.grad is None and net.grams.weight.grad is not None
    net.zero_grad(set_to_none=True)
    logits.sum().backward()
    assert net.class_chars.weight.grad is not None and net.class_grams.weight.grad is not None
    net.eval()
    _save_load_export_parity(model, tmp_path)
    with pytest.raises(ValidationError, match="class_bag_dim"):
        JointParams(encoder="transformer", path="x", class_bag_dim=8)
    assert JointParams(encoder="transformer", path="x").class_bag == 0 and JointParams().class_bag == 64
    assert _fit("joint.v1", records[:8]).params.class_bag_dim == 64  # a fitted model records the bag it built


def test_a_joint_run_saved_before_the_class_bag_loads_without_one(tmp_path):
    from zhcls import load_model
    from zhcls.artifact import read_json, write_checksums, write_json

    records = make_joint(30)
    texts = [r["text"] for r in records]
    model = _fit("joint.v1", records, class_bag_dim=0)
    model.meta = {}
    model.save(tmp_path / "run")
    meta = read_json(tmp_path / "run" / "zhcls.json")
    del meta["params"]["class_bag_dim"]  # as an earlier version wrote it
    write_json(tmp_path / "run" / "zhcls.json", meta)
    write_checksums(tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    assert loaded.params.class_bag_dim == 0 and loaded.module_.net.class_chars is None
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-6)


def test_transformer_encoder_tags_classifies_and_exports(tmp_path):
    """encoder = "transformer": a (tiny, random) local BERT read one character per token learns both heads,
    starts from the checkpoint's embeddings (a character the training data never showed still maps to its
    checkpoint row; one the checkpoint lacks to UNK), pads without changing a text's outputs, and saves,
    loads and exports with parity, no checkpoint needed after training."""
    import shutil

    import torch

    from zhcls.data.example import Example
    from zhcls.models.base import build_model
    from zhcls.models.transformer import tiny_checkpoint
    from zhcls.tagging.features import pad_features

    records = make_joint(30)
    bert = tiny_checkpoint(tmp_path / "bert", [r["text"] for r in records] + ["鲸"], max_positions=64)
    model = build_model("joint.v1", {"encoder": "transformer", "path": str(bert), "dropout": 0.0},
                        TrainingConfig(epochs=40, batch_size=8, lr=2e-3, patience=0, device="cpu"))
    model.fit_examples([[Example(r["text"], r["label"], entities=tuple(Entity(**e) for e in r["entities"])) for r in records]])
    texts = [r["text"] for r in records]
    assert model.predict(texts) == [r["label"] for r in records]
    assert [[e for e, _ in p] for p in model.predict_spans(texts)] == [[Entity(**e) for e in r["entities"]] for r in records]
    assert model.features_.max_len == 62  # 64 positions less [CLS] and [SEP]

    pieces = {line: i for i, line in enumerate((bert / "vocab.txt").read_text(encoding="utf-8").split("\n"))}
    id_map = model.module_.net.backbone.id_map.tolist()
    ids, _ = model.features_.encode("鲸北😀")
    assert [id_map[i] for i in ids] == [pieces["鲸"], pieces["北"], pieces["[UNK]"]]

    net = model.module_.net.eval()
    encoded = model.features_.encode_batch(["张三去北京", "李四"])
    with torch.no_grad():
        batch = net(*(torch.from_numpy(a) for a in pad_features(encoded)))
        alone = net(*(torch.from_numpy(a) for a in pad_features(encoded[1:])))
    torch.testing.assert_close(batch[0][1, :2], alone[0][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batch[1][1], alone[1][0], atol=1e-5, rtol=0)

    shutil.rmtree(bert)  # the saved run carries the architecture and the weights
    _save_load_export_parity(model, tmp_path)


def test_a_bigru_tagger_distills_from_a_transformer_teacher(tmp_path, capsys):
    """The usual pairing: a BERT-style teacher (here a tiny random one, fine-tuned) teaches a BiGRU student its
    per-character tag probabilities; the teacher reads fewer characters (its positions) than the student."""
    from zhcls import load_model
    from zhcls.models.transformer import tiny_checkpoint

    bert = tiny_checkpoint(tmp_path / "bert", [r["text"] for r in make_joint(60, seed=13)], max_positions=64)
    training = '[training]\nepochs = 30\nbatch_size = 8\npatience = 0\ndevice = "cpu"\n'
    write_records(tmp_path / "teach.json", make_joint(40, seed=11))
    teacher = tmp_path / "teacher.toml"
    teacher.write_text(f'[data]\ntrain = "{tmp_path / "teach.json"}"\n[model]\nname = "tagger.v1"\nencoder = "transformer"\npath = "{bert}"\n'
                       f'dropout = 0.0\n{training}lr = 0.002\n', encoding="utf-8")
    code, _, err = run_cli(["train", teacher, "-o", tmp_path / "teacher"], capsys)
    assert code == 0, err
    unlabeled = [r["text"] for r in make_joint(60, seed=13)]
    write_records(tmp_path / "unlabeled.json", [{"text": t} for t in unlabeled])
    write_records(tmp_path / "few.json", make_joint(4, seed=14))
    params = "\n".join(f"{k} = {v}" for k, v in TINY.items())
    student = tmp_path / "student.toml"
    student.write_text(f'[data]\ntrain = "{tmp_path / "few.json"}"\n[model]\nname = "tagger.v1"\n{params}\n{training}lr = 0.02\n'
                       f'[distill]\nteacher = "{tmp_path / "teacher"}"\nunlabeled = ["{tmp_path / "unlabeled.json"}"]\n', encoding="utf-8")
    code, _, err = run_cli(["train", student, "-o", tmp_path / "student"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "student" / "metrics.json").read_text(encoding="utf-8"))["distill"]["kind"] == "tags"
    spans = lambda model: [[(x.start, x.end, x.type) for x, _ in p] for p in model.predict_spans(unlabeled)]  # noqa: E731
    teacher_spans = spans(load_model(tmp_path / "teacher"))
    assert np.mean([bool(s) for s in teacher_spans]) > 0.9  # the teacher tags them
    assert np.mean([a == b for a, b in zip(spans(load_model(tmp_path / "student")), teacher_spans)]) >= 0.8


def test_transformer_encoder_needs_a_checkpoint(tmp_path, capsys):
    from pydantic import ValidationError

    from zhcls.models.tagger import TaggerParams

    with pytest.raises(ValidationError, match="path"):
        TaggerParams(encoder="transformer")
    with pytest.raises(ValidationError, match="path"):
        TaggerParams(path=str(tmp_path))
    write_records(tmp_path / "train.json", make_joint(8))
    config = tmp_path / "t.toml"
    config.write_text(f'[data]\ntrain = "{tmp_path / "train.json"}"\n[model]\nname = "tagger.v1"\nencoder = "transformer"\npath = "{tmp_path / "none"}"\n',
                      encoding="utf-8")
    code, _, err = run_cli(["train", config, "-o", tmp_path / "run"], capsys)
    assert code == 2 and "not a local Hugging Face checkpoint" in err and not (tmp_path / "run" / "config.toml").exists()


def test_train_evaluate_export_predict_serve(tmp_path, capsys):
    """One config to one bundle: train joint.v1 from JSON lines, evaluate (metrics.json and the CLI), export,
    predict and serve with entity offsets that slice the original text."""
    records = make_joint(30, seed=1)
    # a few texts led by white space, like the served text below: the templates alone never show a space, so
    # what a tiny model tags at one would be chance (with one seed it read "\u3000" as the start of a name)
    records += [{**r, "text": pad + r["text"], "entities": [{**e, "start": e["start"] + 1, "end": e["end"] + 1} for e in r["entities"]]}
                for pad, r in zip(["\u3000", " "] * 3, records[:6])]
    write_records(tmp_path / "train.json", records)
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
    # int8: the tables quantized, what that moves recorded against the fp32 bundle on dev, both heads
    code, out, err = run_cli(["export", tmp_path / "run", "-o", tmp_path / "bundle8", "--quantize", "int8"], capsys)
    assert code == 0 and "int8: labels agree with fp32 on" in out and "entities agree with fp32 on" in out, err
    m8, m32 = (json.loads((tmp_path / b / "manifest.json").read_text(encoding="utf-8")) for b in ("bundle8", "bundle"))
    q = m8["parity"]["int8"]
    assert m8["precision"] == "int8" and m8["total_bytes"] < m32["total_bytes"]  # the tables; a tiny model is mostly its GRU
    assert {"entity_f1_change", "accuracy_change", "tag_agreement", "entity_agreement", "label_agreement"} <= set(q) and q["entity_f1_fp32"] == 1.0
    assert q["entity_f1_change"] >= -0.1 and q["entity_agreement"] >= 0.8

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
    code, out, err = run_cli(["predict", tmp_path / "bundle8", tmp_path / "texts.txt"], capsys)
    assert code == 0, err
    assert all(r["text"][e["start"] : e["end"]] == e["text"] for r in map(json.loads, out.splitlines()) for e in r["entities"])

    from fastapi.testclient import TestClient

    from zhcls.serve.http import create_app
    from zhcls.serve.predictor import Predictor

    client = TestClient(create_app(Predictor(tmp_path / "bundle")))
    raw = "\u3000张三明天去北京 "
    body = client.post("/v1/predict", json={"texts": [raw]}).json()["predictions"][0]
    assert body["label"] == "出行"
    assert [(raw[e["start"] : e["end"]], e["type"]) for e in body["entities"]] == [("张三", "PER"), ("北京", "LOC")]
    assert "entities" in client.get("/").text


def test_a_tagger_distills_from_a_tagging_teacher(tmp_path, capsys):
    """A teacher trained on 40 annotated texts tags 60 unannotated ones; a student that sees only 4 annotated
    texts learns the rest from the teacher's tag probabilities, and tags as the teacher does."""
    params = "\n".join(f"{k} = {v}" for k, v in TINY.items())
    training = '[training]\nepochs = 30\nbatch_size = 8\nlr = 0.02\npatience = 0\ndevice = "cpu"\n'
    write_records(tmp_path / "teach.json", make_joint(40, seed=11))
    write_records(tmp_path / "dev.json", make_joint(8, seed=12))
    unlabeled = [r["text"] for r in make_joint(60, seed=13)]
    write_records(tmp_path / "unlabeled.json", [{"text": t} for t in unlabeled])
    teacher = tmp_path / "teacher.toml"
    teacher.write_text(f'[data]\ntrain = "{tmp_path / "teach.json"}"\ndev = "{tmp_path / "dev.json"}"\n[model]\nname = "tagger.v1"\n{params}\n{training}', encoding="utf-8")
    code, _, err = run_cli(["train", teacher, "-o", tmp_path / "teacher"], capsys)
    assert code == 0, err

    write_records(tmp_path / "few.json", make_joint(4, seed=14))
    student = tmp_path / "student.toml"
    student.write_text(
        f'[data]\ntrain = "{tmp_path / "few.json"}"\ndev = "{tmp_path / "dev.json"}"\n[model]\nname = "tagger.v1"\n{params}\n{training}'
        f'[distill]\nteacher = "{tmp_path / "teacher"}"\nunlabeled = ["{tmp_path / "unlabeled.json"}"]\ntemperature = 2.0\nalpha = 0.5\n', encoding="utf-8")
    code, _, err = run_cli(["train", student, "-o", tmp_path / "student"], capsys)
    assert code == 0, err
    info = json.loads((tmp_path / "student" / "metrics.json").read_text(encoding="utf-8"))["distill"]
    held_out = {r["text"] for r in make_joint(4, seed=14) + make_joint(8, seed=12)}  # train and dev texts never join as unlabeled
    assert info["kind"] == "tags" and info["transfer"]["labeled"] == 4 and info["transfer"]["unlabeled"] == len(set(unlabeled) - held_out) > 30
    assert info["unlabeled_entities"] > 40

    from zhcls import load_model

    taught, teacher_model = load_model(tmp_path / "student"), load_model(tmp_path / "teacher")
    spans = lambda model: [[(x.start, x.end, x.type) for x, _ in p] for p in model.predict_spans(unlabeled)]  # noqa: E731
    agree = np.mean([a == b for a, b in zip(spans(taught), spans(teacher_model))])
    assert agree >= 0.9, agree
    alone = tmp_path / "alone.toml"  # the same student without the teacher: the 4 texts alone teach far less
    alone.write_text(student.read_text(encoding="utf-8").split("[distill]")[0], encoding="utf-8")
    code, _, err = run_cli(["train", alone, "-o", tmp_path / "alone"], capsys)
    assert code == 0, err
    assert np.mean([a == b for a, b in zip(spans(load_model(tmp_path / "alone")), spans(teacher_model))]) < agree - 0.2

    mse = tmp_path / "mse.toml"  # classifier-only settings are refused, not ignored
    mse.write_text(student.read_text(encoding="utf-8") + 'loss = "mse"\n', encoding="utf-8")
    code, _, err = run_cli(["train", mse, "-o", tmp_path / "mse"], capsys)
    assert code == 2 and "[distill] loss" in err

    bioes = tmp_path / "bioes.toml"  # a student of another tag scheme cannot read the teacher's tags
    bioes.write_text(student.read_text(encoding="utf-8").replace('name = "tagger.v1"', 'name = "tagger.v1"\nscheme = "bioes"'), encoding="utf-8")
    code, _, err = run_cli(["train", bioes, "-o", tmp_path / "bioes"], capsys)
    assert code == 2 and "scheme" in err


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
