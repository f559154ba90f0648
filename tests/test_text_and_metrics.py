"""Normalization, tokenizers, vocabulary, metrics and config overrides."""

from __future__ import annotations

import numpy as np
import pytest

from zhcls.config import RunConfig, apply_overrides, config_from_dict, dump_config, parse_override
from zhcls.errors import ConfigError
from zhcls.eval.metrics import classification_metrics
from zhcls.text.featurizer import Featurizer, TextParams
from zhcls.text.normalize import normalize
from zhcls.text.tokenizers import get_tokenizer
from zhcls.text.vocab import Vocab


def test_normalize_folds_width_invisibles_and_space():
    assert normalize("ＩＰｈｏｎｅ\u200b１３，  好\u3000用\t！") == "iphone13, 好 用 !"
    assert normalize("ABC", lowercase=False) == "ABC"


def test_char_tokenizer_keeps_latin_words_and_numbers_whole():
    assert get_tokenizer("char.v1")(normalize("华为Mate60手机 5G")) == ["华", "为", "mate60", "手", "机", "5g"]


def test_jieba_tokenizer():
    tokens = get_tokenizer("jieba.v1")("我喜欢北京天安门")
    assert "北京" in tokens and "".join(tokens) == "我喜欢北京天安门"


def test_vocab_is_deterministic_and_bounded():
    v = Vocab.build([["b", "a"], ["a", "c"]], min_freq=1, max_size=4)
    assert v.tokens == ["<pad>", "<unk>", "a", "b"]  # frequency, then the token, decides the order
    assert v.encode(["a", "zzz"]) == [2, 1]


def test_featurizer_ngrams_are_stable_and_roundtrip():
    f = Featurizer.fit(["手机很好", "手机很差"], TextParams(), ngrams=2, buckets=100)
    ids = f.encode("手机很好")
    assert len(ids) == 4 + 3 and all(len(f.vocab) <= i < len(f.vocab) + 100 for i in ids[4:])
    again = Featurizer.from_json(f.to_json())
    assert again.encode("手机很好") == ids
    assert f.encode("😀") == [1]


def test_featurizer_truncates_to_max_len():
    f = Featurizer.fit(["一二三四五六"], TextParams(max_len=3))
    assert f.tokens("一二三四五六") == ["一", "二", "三"]


def test_metrics_match_hand_computation():
    m = classification_metrics(["a", "a", "b", "c"], ["a", "b", "b", "b"], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.5)
    # a: P=1 R=.5 F=2/3; b: P=1/3 R=1 F=.5; c: 0 -> macro F1 = (2/3 + .5 + 0) / 3
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5) / 3)
    assert m["micro_f1"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert m["per_class"]["b"]["support"] == 1


def test_metrics_keep_labels_unknown_to_the_model():
    m = classification_metrics(["a", "z"], ["a", "a"], ["a", "b"])
    assert "z" in m["per_class"] and m["labels"] == ["a", "b", "z"]


def test_override_parsing():
    assert parse_override("training.lr=3e-4") == (["training", "lr"], 3e-4)
    assert parse_override("model.kernel_sizes=[2,3]") == (["model", "kernel_sizes"], [2, 3])
    assert parse_override("data.train=foo/bar.json") == (["data", "train"], "foo/bar.json")
    with pytest.raises(ConfigError):
        parse_override("training.lr")


def test_resolved_config_roundtrips():
    cfg = config_from_dict(apply_overrides({"data": {"train": "t.json"}}, ["model.name=bigru.v1", "training.epochs=2"]))
    import tomllib

    again = config_from_dict(tomllib.loads(dump_config(cfg)))
    assert dump_config(again) == dump_config(cfg) and again.model.options()["hidden_size"] == 128


def test_defaults_are_machine_independent():
    t = RunConfig().training
    assert (t.seed, t.threads) == (42, 1)


def test_model_params_validated_at_load():
    with pytest.raises(ConfigError, match="model.dropout"):
        config_from_dict({"model": {"name": "textcnn.v1", "dropout": 2.0}})
    np.testing.assert_equal(config_from_dict({"model": {"name": "tfidf.v1", "C": 3}}).model.options()["C"], 3)


def test_char_ngram_tfidf_equals_scikit_learn():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from zhcls.text.charngrams import CharNgramTfidf

    train = ["这个手机很好用", "质量太差了，不推荐", "ABC 手机 好", "非常满意！！"]
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), preprocessor=normalize, lowercase=False, sublinear_tf=True)
    expected = vec.fit_transform(train + ["手机手机手机 很差"]).toarray()
    vocab = [t for t, _ in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])]
    feats = CharNgramTfidf(vocab, vec.idf_, 1, 3, True, True)
    for text, row in zip(train + ["手机手机手机 很差"], expected):
        idx, values = feats.row(text)
        dense = np.zeros(len(vocab))
        dense[idx] = values
        np.testing.assert_allclose(dense, row, atol=1e-6)


def test_balanced_class_weights_match_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    from zhcls.models.trainer import balanced_weights

    y = np.array([0, 0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(balanced_weights(y, 3), compute_class_weight("balanced", classes=np.arange(3), y=y))


def test_epoch_batches_cover_every_example_once_and_are_seeded():
    from zhcls.models.trainer import epoch_batches

    lengths = np.random.default_rng(0).integers(1, 50, size=203)
    a = epoch_batches(lengths, 16, seed=1, epoch=0)
    assert sorted(np.concatenate(a).tolist()) == list(range(203))
    assert all(len(b) <= 16 for b in a)
    assert [b.tolist() for b in a] == [b.tolist() for b in epoch_batches(lengths, 16, seed=1, epoch=0)]
    assert [b.tolist() for b in a] != [b.tolist() for b in epoch_batches(lengths, 16, seed=1, epoch=1)]
