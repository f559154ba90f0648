"""Augmentation: every strategy is seeded, keeps protected spans and labels, respects its rate; files keep
their format; label-safe mode drops a planted label flip; [[augment]] never reaches dev/test."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import make_corpus, run_cli, write_jsonl
from zhcls.augment import Augmenter, Piece, Strategy, StrategyParams, augment_train, build_strategy, find_spans, guard, join, segment
from zhcls.augment.files import augment_file
from zhcls.augment.protect import chinese_numeral, number_forms, number_value
from zhcls.data.example import Example, LabelSet
from zhcls.data.readers import read_examples
from zhcls.registry import augmenters
from zhcls.text.normalize import normalize

PROTECTED = ["2023年5月1日", "199", "https://zhcls.example/a?b=1", "dev@zhcls.cn", "小米手机", "三百"]
TEXT = "小米手机在2023年5月1日降价到199元，详情见https://zhcls.example/a?b=1，或写信给dev@zhcls.cn，已经卖出三百台，物流很快包装也很好"
CORPUS = make_corpus(12, seed=0)
TEXTS = CORPUS.texts + [TEXT, "这家店的衣服质量很好，物流也很快", "手机电池不耐用，客服态度很差"]


@pytest.fixture(scope="module")
def resources(tmp_path_factory) -> dict[str, dict]:
    d = tmp_path_factory.mktemp("res")
    cilin = d / "cilin.txt"
    cilin.write_text("Aa01A01= 物流 快递 运输\nAa01A02# 很快 迅速\nAa01A03= 包装 封装\nAa01A04@ 店\nAa01A05= 比赛 竞赛 赛事\n", encoding="utf-8")
    words = ["物流", "快递", "包装", "比赛", "足球", "篮球", "股票", "基金", "很", "快"]
    rng = np.random.default_rng(0)
    base = rng.normal(size=(len(words), 8))
    base[1] = base[0] + 0.01  # 快递 next to 物流
    base[5] = base[4] + 0.01  # 篮球 next to 足球
    vec = d / "vec.txt"
    vec.write_text(f"{len(words)} 8\n" + "".join(w + " " + " ".join(f"{x:.5f}" for x in v) + "\n" for w, v in zip(words, base)), encoding="utf-8")
    return {"synonym.v1": {"path": str(cilin)}, "vectors.v1": {"path": str(vec), "min_similarity": 0.9}}


def make(name: str, resources: dict, rate: float = 0.3) -> Strategy:
    return build_strategy(name, {"rate": rate, **resources.get(name, {})})


ALL = augmenters.names()


def test_registry_snapshot():
    assert ALL == ["delete.v1", "equivalent.v1", "homophone.v1", "insert.v1", "pos.v1", "swap.v1", "synonym.v1", "truncate.v1", "unk.v1", "vectors.v1"]


@pytest.mark.parametrize("name", ALL)
def test_deterministic_under_seed(name, resources):
    examples = [Example(t, "x", "f", i) for i, t in enumerate(TEXTS, 1)]

    def run(seed: int) -> list[str]:
        return [e.text for e in Augmenter([make(name, resources, 0.4)], n=3, seed=seed).fit(TEXTS).augment(examples)]

    first = run(7)
    assert first, name
    assert run(7) == first
    if name not in ("synonym.v1", "vectors.v1"):  # the tiny dictionaries offer one choice per word
        assert run(8) != first
    # each example has its own generator: augmenting a subset gives the same copies for it
    sub = Augmenter([make(name, resources, 0.4)], n=3, seed=7).fit(TEXTS).augment(examples)
    assert [e.text for e in sub] == first


@pytest.mark.parametrize("name", ALL)
def test_protected_spans_untouched(name, resources):
    aug = Augmenter([make(name, resources, 0.9)], n=6, seed=3, protect=("小米手机",)).fit(TEXTS)
    variants = aug.variants(TEXT, np.random.default_rng(0))
    assert variants, name
    for v in variants:
        found = [s.text(v.text) for s in find_spans(v.text, ("小米手机",))]
        if name == "truncate.v1":  # whole spans may be left out, never cut
            assert all(f in PROTECTED for f in found), v.text
        elif name == "equivalent.v1":  # numbers may be respelled, with the same value
            expected = [s.text(TEXT) for s in find_spans(TEXT, ("小米手机",))]
            assert len(found) == len(expected)
            for f, p in zip(found, expected):
                assert f == p or number_value(f) == number_value(p), (f, p)
        else:
            for p in PROTECTED:
                assert p in v.text, (name, p, v.text)


def test_protect_detection_and_numbers():
    kinds = {s.text(TEXT): s.kind for s in find_spans(TEXT, ("小米手机",))}
    assert kinds == {"小米手机": "term", "2023年5月1日": "date", "199": "number", "https://zhcls.example/a?b=1": "url", "dev@zhcls.cn": "email", "三百": "number"}
    assert "一起" not in [s.text("我们一起去") for s in find_spans("我们一起去")]
    assert [s.text("三个人") for s in find_spans("三个人")] == ["三"]
    for n in (0, 1, 7, 10, 15, 20, 103, 1200, 10_005, 123_456):
        for form in number_forms(n):
            assert number_value(form) == n, (n, form)
    assert chinese_numeral(15) == "十五" and chinese_numeral(15, upper=True) == "壹拾伍"


def test_segment_round_trips():
    for level in ("char", "word"):
        assert join(segment(TEXT, level, ("小米手机",))) == TEXT


def _changed_share(name: str, resources: dict, rate: float, text: str, draws: int = 300) -> float:
    s = make(name, resources, rate).fit(TEXTS)
    pieces = segment(text, s.level)
    editable = [p for p in pieces if p.editable]
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(draws):
        out = s.apply(pieces, rng)
        if name == "delete.v1":
            changed += len(pieces) - len(out)
        elif name == "insert.v1":
            changed += len(out) - len(pieces)
        else:
            changed += sum(a.text != b.text for a, b in zip(pieces, out) if a.editable)
    return changed / (draws * len(editable))


@pytest.mark.parametrize("name,rate", [("unk.v1", 0.1), ("unk.v1", 0.4), ("delete.v1", 0.2), ("insert.v1", 0.15), ("equivalent.v1", 0.3)])
def test_rates_respected(name, rate, resources):
    text = "这家店的衣服质量很好物流也很快客服态度也不错下次还会再来买的推荐给大家"
    if name == "equivalent.v1":  # its units: Latin words and digits (full/half width), standalone numbers
        text = "abc def ghi jkl mno pqr stu vwx yz iphone pro max"
    assert abs(_changed_share(name, resources, rate, text) - rate) < 0.03


def test_rates_of_replacement_strategies(resources):
    # homophone and same-POS replace only units that have a candidate; over those, the rate holds
    h = make("homophone.v1", resources, 0.25)
    text = "衣服质量很好物流很快"
    pieces = segment(text, "char")
    rng = np.random.default_rng(1)
    changed = sum(a.text != b.text for _ in range(400) for a, b in zip(pieces, h.apply(pieces, rng)))
    assert abs(changed / (400 * len(pieces)) - 0.25) < 0.03
    t = make("truncate.v1", resources, 0.3)
    pieces = segment("这家店的衣服质量很好物流也很快客服态度也不错下次还会再来买的推荐给大家", "char")
    assert all(len(t.apply(pieces, rng)) == math.ceil(len(pieces) * 0.7) for _ in range(20))


def test_labels_kept_no_empty_no_identical(resources):
    examples = [Example(t, l, "f", i) for i, (t, l) in enumerate(zip(CORPUS.texts, CORPUS.labels), 1)] + [Example("好", "x", "f", 99), Example("12", "y", "f", 100)]
    aug = Augmenter([make(n, resources, 0.3) for n in ALL], n=4, seed=1).fit(TEXTS)
    out = aug.augment(examples)
    by_source = {e.source: e for e in examples}
    assert len(out) > 3 * len(CORPUS.texts)
    for e in out:
        src = by_source[e.meta["aug_source"]]
        assert e.label == src.label and (e.file, e.line) == (src.file, src.line) and e.copy >= 1
        assert e.source == f"{src.source}#aug{e.copy}"
        assert normalize(e.text) and e.text != src.text
    # "12" is one protected number: only equivalent.v1 can vary it, and only to the same value
    assert all(number_value(e.text) == 12 for e in out if e.meta["aug_source"] == "f:100")
    texts_per_source: dict[str, list[str]] = {}
    for e in out:
        texts_per_source.setdefault(e.meta["aug_source"], []).append(e.text)
    assert all(len(set(v)) == len(v) for v in texts_per_source.values())  # no duplicate copies


# -- files --------------------------------------------------------------------------------------------
def _write(fmt: str, path: Path) -> Path:
    texts = CORPUS.texts[:8] + ['带,逗号和"引号"的文本，价格99元']
    labels = CORPUS.labels[:8] + ["财经"]
    if fmt == "jsonl":
        return write_jsonl(path, type(CORPUS)(texts, labels))
    if fmt == "tsv":
        path.write_text("".join(f"{t}\t{l}\n" for t, l in zip(texts, labels)), encoding="utf-8")
        return path
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["label", "review"])
    w.writerows(zip(labels, texts))
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "tsv", "csv"])
def test_file_round_trip(fmt, tmp_path):
    src = _write(fmt, tmp_path / f"in.{ 'json' if fmt == 'jsonl' else fmt}")
    original = read_examples(src)
    out = tmp_path / f"out.{src.suffix[1:]}"

    def run(output: Path, keep: bool = True):
        aug = Augmenter.from_recipe({"delete.v1": 0.2, "swap.v1": 0.2, "unk.v1": 0.2}, n=3, seed=5)
        return augment_file(src, output, aug, keep_original=keep)

    result = run(out)
    assert result.format == fmt and result.n_sources == len(original) and result.n_written > 2 * len(original)
    back = read_examples(out)  # the output reads with the same detection, so it trains as-is
    assert len(back) == len(original) + result.n_written
    assert [e.text for e in back if e.text in {o.text for o in original}] == [o.text for o in original]
    assert all(normalize(e.text) for e in back)
    by_text = {o.text: o.label for o in original}
    raw = out.read_bytes()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in raw.decode().splitlines()]
        aug_rows = [r for r in rows if "aug_source" in r]
        assert len(aug_rows) == result.n_written
        src_by_id = {r["id"]: r for r in rows if "aug_source" not in r}
        for r in aug_rows:
            assert r["label_desc"] == src_by_id[r["aug_source"]]["label_desc"] and r["aug_strategy"] in ALL
        assert raw.decode().splitlines()[0] == src.read_text().splitlines()[0]  # originals byte for byte
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(raw.decode(), newline="")))
        inputs = list(csv.DictReader(io.StringIO(src.read_text(), newline="")))
        assert list(rows[0]) == ["label", "review", "aug_source", "aug_strategy"]
        assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # the file's line ending is kept
        for r in rows:
            if r["aug_source"]:  # the source record's line in INPUT; record i (one line each here) is on line i + 2
                assert r["label"] == inputs[int(r["aug_source"]) - 2]["label"]
    else:
        side = [json.loads(x) for x in result.provenance.read_text().splitlines()]
        lines = raw.decode().splitlines()
        src_lines = src.read_text().splitlines()
        assert len(side) == result.n_written
        for s in side:
            text, label = lines[s["line"] - 1].rsplit("\t", 1)
            assert src_lines[s["aug_source"] - 1].rsplit("\t", 1)[1] == label
    for e in back:
        if e.text not in by_text:
            continue
        assert e.label == by_text[e.text]
    out2 = tmp_path / f"again.{src.suffix[1:]}"
    run(out2)
    assert out2.read_bytes() == raw  # deterministic per seed
    only = tmp_path / f"only.{src.suffix[1:]}"
    run(only, keep=False)
    assert len(read_examples(only)) == result.n_written


# -- label-safe mode ----------------------------------------------------------------------------------
class KeywordModel:
    """Predicts 'neg' when the text says 差, else 'pos' (probability 0.9)."""

    labels_ = LabelSet(["neg", "pos"])

    def predict_proba(self, texts):
        return np.array([[0.9, 0.1] if "差" in t else [0.1, 0.9] for t in texts])


class FlipParams(StrategyParams):
    pass


class Flip(Strategy):
    """A planted bad augmentation: 好 -> 差 flips the sentiment."""

    name = "flip.test"

    def apply(self, pieces, rng):
        return [Piece("差") if p.text == "好" else p for p in pieces]


def test_guard_drops_planted_label_flip():
    sources = [Example("质量很好", "pos", "a", 1), Example("物流快，服务好", "pos", "a", 2), Example("质量太差", "neg", "a", 3), Example("还行吧", "neg", "a", 4)]
    aug = Augmenter([Flip(FlipParams(rate=1.0)), build_strategy("unk.v1", {"rate": 0.3})], n=2, seed=0)
    copies = aug.augment(sources)
    flipped = [e for e in copies if e.meta["aug_strategy"] == "flip.test"]
    assert flipped and all("差" in e.text for e in flipped)
    result = guard(KeywordModel(), sources, copies)
    assert not any(e.meta["aug_strategy"] == "flip.test" and e.label == "pos" for e in result.kept)
    reasons = {(e.source, r) for e, r in result.dropped}
    assert any(r == "label_changed" for _, r in reasons)
    assert result.counts["label_changed"] >= sum(1 for e in flipped if e.label == "pos")  # unk may mask 差 too
    assert result.counts["source_mispredicted"] >= 1  # "还行吧" is neg but the model says pos
    strict = guard(KeywordModel(), sources, copies, min_confidence=0.95)
    assert strict.counts["low_confidence"] == len(strict.dropped) - strict.counts["label_changed"] - strict.counts["source_mispredicted"] > 0


def test_cli_augment_with_guard(tmp_path, capsys):
    from conftest import write_config

    train = write_jsonl(tmp_path / "train.json", make_corpus(12, seed=1))
    cfg = write_config(tmp_path / "c.toml", train, None, model="tfidf.v1")
    run = tmp_path / "run"
    code, _, err = run_cli(["train", cfg, "-o", run, "--quiet"], capsys)
    assert code == 0, err
    out = tmp_path / "aug.json"
    code, stdout, err = run_cli(["augment", train, out, "-n", "3", "--delete", "0.3", "--unk", "0.3", "--seed", "1", "--guard", run, "--min-confidence", "0.2",
                                 "--protect", "足球", "--json", "--quiet"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert set(summary["dropped"]) == {"label_changed", "source_mispredicted", "low_confidence", "unknown_label"}
    assert summary["augmented"] + sum(summary["dropped"].values()) + summary["not_produced"] == summary["requested"]
    assert len(read_examples(out)) == 36 + summary["augmented"]
    code, _, err = run_cli(["augment", train, tmp_path / "x.json", "--synonym", "0.2"], capsys)
    assert code == 2 and "--synonyms" in err


# -- [[augment]] in training --------------------------------------------------------------------------
def test_training_augment_never_reaches_dev_test(tmp_path):
    from zhcls.augment.pipeline import augment_for_run
    from zhcls.config import config_from_dict
    from zhcls.training.run import load_splits, train

    corpus = make_corpus(12, seed=1)
    train_file = write_jsonl(tmp_path / "train.json", corpus)
    # plant dev/test texts that swapping or deleting train texts can produce
    planted = []
    for t, l in zip(corpus.texts[:6], corpus.labels[:6]):
        planted.append((t[1] + t[0] + t[2:], l))
        planted.append((t[1:], l))
    dev = write_jsonl(tmp_path / "dev.json", type(corpus)([p[0] for p in planted[::2]], [p[1] for p in planted[::2]]))
    test = write_jsonl(tmp_path / "test.json", type(corpus)([p[0] for p in planted[1::2]], [p[1] for p in planted[1::2]]))
    raw = {
        "data": {"train": str(train_file), "dev": str(dev), "test": str(test)},
        "model": {"name": "tfidf.v1"},
        "augment": [{"name": "swap.v1", "rate": 0.5, "n": 6}, {"name": "truncate.v1", "rate": 0.1, "n": 6, "seed": 3}],
    }
    cfg = config_from_dict(raw)
    splits = load_splits(cfg)
    examples, stats = augment_for_run(cfg, splits)
    held = {normalize(e.text) for e in splits["dev"] + splits["test"]}
    copies = examples[len(splits["train"]):]
    assert copies and stats["duplicates_dropped"] > 0
    assert not any(normalize(e.text) in held for e in copies)
    keys = [normalize(e.text) for e in examples]
    assert len(keys) == len(set(keys))
    assert examples[: len(splits["train"])] == splits["train"]
    # twice the same config, the same copies (the resume fingerprint depends on it)
    assert [e.text for e in augment_for_run(cfg, splits)[0]] == [e.text for e in examples]
    result = train(cfg, tmp_path / "run")
    m = result.metrics
    assert m["n_train"] == len(examples) and m["augment"]["augmented"] == len(copies)
    assert m["dev"]["n"] == len(planted) // 2 if "n" in m["dev"] else True
    assert "[[augment]]" in (tmp_path / "run" / "config.toml").read_text() or "augment = [" in (tmp_path / "run" / "config.toml").read_text()


def test_augment_config_errors():
    from zhcls.config import config_from_dict
    from zhcls.errors import ConfigError

    with pytest.raises(ConfigError, match="augment\\[0\\].ratee"):
        config_from_dict({"augment": [{"name": "delete.v1", "ratee": 0.1}]})
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"augment": [{"name": "delet.v1"}]})
    assert "delete.v1" in exc.value.hint
    with pytest.raises(ConfigError):
        config_from_dict({"augment": [{"name": "delete.v1", "rate": 1.5}]})


def test_train_only_augment_stats_are_reproducible():
    train = [Example(t, l, "t", i) for i, (t, l) in enumerate(zip(CORPUS.texts, CORPUS.labels), 1)]
    from zhcls.config import AugmentStep

    a, sa = augment_train(train, [AugmentStep(name="delete.v1", rate=0.2, n=2)], seed=1)
    b, sb = augment_train(train, [AugmentStep(name="delete.v1", rate=0.2, n=2)], seed=1)
    assert [e.text for e in a] == [e.text for e in b] and sa == sb
    assert all(e.meta.get("aug_strategy") == "delete.v1" for e in a[len(train):])
