"""zhcls compress: width and vocabulary pruning, recovery by distillation, the budget search (docs/compression.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_corpus, run_cli, write_config, write_jsonl
from zhcls.config import TrainingConfig, load_config
from zhcls.models.base import build_model, load_model

TINY = {
    "textcnn.v1": {"embed_dim": 16, "num_filters": 16, "buckets": 1000, "bag_dim": 8},
    "bigru.v1": {"embed_dim": 16, "hidden_size": 16, "buckets": 1000, "bag_dim": 8, "num_layers": 2},
    "fasttext.v1": {"embed_dim": 16, "buckets": 1000},
}
FAST = TrainingConfig(epochs=2, batch_size=8)


@pytest.fixture(scope="module")
def textcnn_run(tmp_path_factory) -> dict[str, Path]:
    """A finished TextCNN run on the tiny corpus, and its compression to width 1/2 with 20 tokens."""
    from zhcls.compress import compress
    from zhcls.training.run import train

    root = tmp_path_factory.mktemp("compress")
    train_file = write_jsonl(root / "train.json", make_corpus(12, seed=1))
    dev = write_jsonl(root / "dev.json", make_corpus(4, seed=2))
    test = write_jsonl(root / "test.json", make_corpus(4, seed=3))
    model = "".join(f"{k} = {v}\n" for k, v in TINY["textcnn.v1"].items())
    config = root / "c.toml"
    config.write_text(
        f'[data]\ntrain = "{train_file}"\ndev = "{dev}"\ntest = "{test}"\n\n[model]\nname = "textcnn.v1"\n{model}\n'
        "[training]\nepochs = 3\nbatch_size = 8\n",
        encoding="utf-8",
    )
    train(load_config(config), root / "run")
    compress(root / "run", root / "small", width=0.5, max_vocab=20, recover_epochs=3, quantize="none")
    return {"root": root, "run": root / "run", "small": root / "small", "train": train_file, "dev": dev}


@pytest.mark.parametrize("name", sorted(TINY))
def test_width_one_leaves_outputs_unchanged(name, tiny_corpus):
    clf = build_model(name, TINY[name], FAST).fit(tiny_corpus.texts, tiny_corpus.labels)
    same = clf.prune(1.0, texts=tiny_corpus.texts, labels=tiny_corpus.labels)
    np.testing.assert_allclose(same.predict_proba(tiny_corpus.texts), clf.predict_proba(tiny_corpus.texts), atol=1e-6)
    assert same.featurizer_.to_json() == clf.featurizer_.to_json()


@pytest.mark.parametrize("name", sorted(TINY))
def test_pruned_model_has_the_promised_shapes(name, tiny_corpus, tmp_path):
    clf = build_model(name, TINY[name], FAST).fit(tiny_corpus.texts, tiny_corpus.labels)
    small = clf.prune(0.5, 20, texts=tiny_corpus.texts, labels=tiny_corpus.labels)
    state = {k: tuple(v.shape) for k, v in small.net_.state_dict().items()}
    assert len(small.featurizer_.vocab) == 20 and state["embedding.weight"][0] in (20, small.featurizer_.num_ids)
    assert small.featurizer_.bucket_rows == 500 + 1  # half the buckets, and one row the other half shares
    if name == "textcnn.v1":
        assert small.params.num_filters == 8 and all(state[f"convs.{i}.weight"][0] == 8 for i in range(3))
        assert state["out.weight"] == (3, 8 * 3 + 8)
    if name == "bigru.v1":
        assert small.params.hidden_size == 8 and state["forward_layers.1.weight_ih_l0"] == (24, 16) and state["out.weight"] == (3, 16 + 8)
    small.save(tmp_path / "m")
    np.testing.assert_allclose(load_model(tmp_path / "m").predict_proba(tiny_corpus.texts), small.predict_proba(tiny_corpus.texts), atol=1e-6)


def test_compressed_run_is_an_ordinary_run_and_exports_with_parity(textcnn_run, capsys):
    small = textcnn_run["small"]
    metrics = json.loads((small / "metrics.json").read_text(encoding="utf-8"))
    c = metrics["compress"]
    assert c["parent"] == str(textcnn_run["run"]) and c["width"] == 0.5 and c["max_vocab"] == 20
    assert c["pruned"]["num_filters"] == [16, 8] and c["pruned"]["vocab"][1] == 20
    assert {"dev", "test", "bundle"} <= set(c["before"]) and {"dev", "test", "bundle"} <= set(c["after"])
    assert c["after"]["bundle"]["total_bytes"] < c["before"]["bundle"]["total_bytes"] and c["ratios"]["size"] < 1
    manifest = json.loads((small / "bundle" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parity"]["fp32"]["max_abs_diff"] <= 1e-4 and manifest["input"]["graph"] == "textcnn_tables"
    assert load_model(small).params.num_filters == 8
    code, out, err = run_cli(["evaluate", small, textcnn_run["dev"]], capsys)
    assert code == 0, err
    code, out, err = run_cli(["export", small, "-o", textcnn_run["root"] / "int8", "--quantize", "int8"], capsys)
    assert code == 0, err


def test_recovery_lowers_the_distillation_loss(textcnn_run):
    rec = json.loads((textcnn_run["small"] / "metrics.json").read_text(encoding="utf-8"))["compress"]["recovery"]
    assert rec["loss_after"] < rec["loss_before"]
    assert (textcnn_run["small"] / "log.jsonl").is_file()


def test_max_train_ranks_and_recovers_on_a_seeded_sample_of_train(textcnn_run):
    from zhcls.compress import compress
    from zhcls.compress.run import sample_train
    from zhcls.data.example import Example

    splits = {"train": [Example(f"t{i}", "a") for i in range(20)], "dev": [Example("d", "a")]}
    sample = sample_train(splits, 8, seed=42)
    assert [e.text for e in sample["train"]] == [e.text for e in sample_train(splits, 8, seed=42)["train"]]  # seeded
    assert len(sample["train"]) == 8 and sample["train"] == sorted(sample["train"], key=lambda e: int(e.text[1:]))  # file order
    assert sample["dev"] is splits["dev"] and sample_train(splits, 50, seed=42) is splits
    out = textcnn_run["root"] / "sampled"
    compress(textcnn_run["run"], out, width=0.5, max_train=10, recover_epochs=1, export=False)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    c = metrics["compress"]
    assert c["max_train"] == 10 and c["n_train_used"] == 10 and c["recovery"]["n_transfer"] == 10 and metrics["n_train"] == 10
    assert metrics["dev"]["n"] == 12  # dev stays whole


def test_vocabulary_pruning_maps_removed_tokens_to_unk_in_training_and_serving(textcnn_run):
    from zhcls.serve.predictor import Predictor

    parent, small = load_model(textcnn_run["run"]), load_model(textcnn_run["small"])
    kept = set(small.featurizer_.vocab.tokens)
    removed = [t for t in parent.featurizer_.vocab.tokens if t not in kept]
    assert removed
    text = "".join(removed[:3]) + small.featurizer_.vocab.tokens[2]
    served = Predictor(textcnn_run["small"] / "bundle").featurizer
    trained = small.featurizer_
    assert served.encode(text) == trained.encode(text)
    assert trained.encode(text)[:3] == [1, 1, 1] and trained.encode(text)[3] == 2
    # the recovered run's config names the parent as the teacher of its recovery
    assert load_config(textcnn_run["small"] / "config.toml").distill.teacher == [str(textcnn_run["run"].resolve())]


def test_budget_search_never_exceeds_the_budget(textcnn_run, capsys):
    out = textcnn_run["root"] / "searched"
    parent_mb = json.loads((textcnn_run["small"] / "metrics.json").read_text(encoding="utf-8"))["compress"]["before"]["bundle"]["total_bytes"] / 2**20
    budget_mb = round(0.8 * parent_mb, 4)  # the parent is over it; half its width is not
    args = ["compress", textcnn_run["run"], "-o", out, "--budget-ms", "1000", "--budget-mb", budget_mb, "--widths", "1/2,1/4,0", "--vocabs", "1",
            "--no-int8", "--recover-epochs", "1"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    summary = json.loads((out / "compress" / "search.json").read_text(encoding="utf-8"))
    chosen = [r for r in summary["candidates"] if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["size_mb"] <= budget_mb and chosen[0]["p50_ms"] <= 1000
    assert {r["name"] for r in summary["candidates"]} == {"parent", "w1_2-v1", "w1_4-v1", "w0-v1"}
    assert all(r["within_budget"] == (r["size_mb"] <= budget_mb) for r in summary["candidates"])
    assert max(r["dev"] for r in summary["candidates"] if r["within_budget"] and r["recovered"] is not False) == chosen[0]["dev"]
    assert (out / "metrics.json").is_file() and (out / "bundle" / "manifest.json").is_file() and (out / "compress" / "search.md").is_file()
    assert json.loads((out / "bundle" / "manifest.json").read_text(encoding="utf-8"))["total_bytes"] / 2**20 <= budget_mb
    # a budget nothing meets: exit 2, nothing chosen, the table written
    code, stdout, err = run_cli([*args[:3], textcnn_run["root"] / "none", "--budget-mb", "0.0001", "--widths", "1/4", "--vocabs", "1", "--no-int8"], capsys)
    assert code == 2 and "no variant meets the budget" in err
    assert not (textcnn_run["root"] / "none" / "metrics.json").exists() and (textcnn_run["root"] / "none" / "compress" / "search.md").is_file()


def test_budget_search_recovers_a_variant_timed_just_over_the_budget(textcnn_run, monkeypatch):
    """Timed as pruned, w1/2 is 8% over the budget and w1/4 20%: w1/2 is recovered (timings move that much), w1/4
    is not; the choice uses the final timing and the budget as given."""
    import importlib

    search_module = importlib.import_module("zhcls.compress.search")  # the module; zhcls.compress.search is also the function

    def fake_retime(rows, dev, rounds, n_texts=500):
        for r in rows:
            pruned = {"parent": 1.0, "w1_2-v1": 0.54, "w1_4-v1": 0.6}[r["name"]]
            r["p50_ms"] = 0.45 if r["recovered"] and r["name"] == "w1_2-v1" else pruned

    monkeypatch.setattr(search_module, "retime", fake_retime)
    result = search_module.search(textcnn_run["run"], textcnn_run["root"] / "margin", budget_ms=0.5, widths=["1/2", "1/4"], vocabs=["1"], int8=False, recover_epochs=1)
    by_name = {r["name"]: r for r in result.candidates}
    assert by_name["w1_2-v1"]["recovered"] is True and by_name["w1_4-v1"]["recovered"] is False
    assert result.chosen["name"] == "w1_2-v1" and result.chosen["p50_ms"] <= 0.5


def test_models_that_cannot_be_pruned_are_refused_with_exit_2(tiny_files, tmp_path, capsys):
    config = write_config(tmp_path / "t.toml", tiny_files["train"], tiny_files["dev"], model="tfidf.v1")
    assert run_cli(["train", config, "-o", tmp_path / "tfidf"], capsys)[0] == 0
    code, out, err = run_cli(["compress", tmp_path / "tfidf", "-o", tmp_path / "small", "--width", "1/2"], capsys)
    assert code == 2 and "tfidf.v1 models cannot be pruned" in err and "hint:" in err
    code, out, err = run_cli(["compress", tmp_path / "tfidf", "-o", tmp_path / "small", "--width", "3/2"], capsys)
    assert code == 2 and "outside [0, 1]" in err


@pytest.mark.parametrize("name,seq_cols", [("textcnn.v1", 48), ("bigru.v1", 32)])  # 16 filters x 3 kernels; 2 x 16 GRU units
def test_width_zero_keeps_a_hybrids_bag_as_a_fasttext_model(name, seq_cols, tiny_corpus):
    """The CNN's or GRU's share of the logits leaves, its mean over the train texts stays in the bias; the
    bag's ids, rows and output columns are the parent's."""
    import torch

    from zhcls.models.trainer import to_tensors

    texts = tiny_corpus.texts
    clf = build_model(name, TINY[name], FAST).fit(texts, tiny_corpus.labels)
    bag = clf.prune(0.0, texts=texts, labels=tiny_corpus.labels)
    assert bag.name == "fasttext.v1" and bag.params.embed_dim == 8 and bag.featurizer_.to_json() == clf.featurizer_.to_json()
    pooled = []
    hook = clf.net_.out.register_forward_pre_hook(lambda module, args: pooled.append(args[0].detach()))
    with torch.no_grad():
        parent = clf.net_.eval()(*to_tensors(clf.featurizer_.encode_batch(texts), clf.min_len)).numpy()
        child = bag.net_.eval()(*to_tensors(bag.featurizer_.encode_batch(texts), 1)).numpy()
    hook.remove()
    assert pooled[0].shape[1] == seq_cols + 8
    seq = pooled[0][:, :seq_cols].numpy().astype(np.float64)
    w_seq = clf.net_.out.weight.detach()[:, :seq_cols].numpy().astype(np.float64)
    np.testing.assert_allclose(child, parent - seq @ w_seq.T + seq.mean(axis=0) @ w_seq.T, atol=1e-4)
    smaller = clf.prune(0.0, 20, texts=texts, labels=tiny_corpus.labels)
    assert len(smaller.featurizer_.vocab) == 20 and smaller.params.max_vocab == 20 and smaller.featurizer_.bucket_rows == 1000


@pytest.mark.parametrize("name,params", [("bigru.v1", {**TINY["bigru.v1"], "bag_dim": 0}), ("textcnn.v1", {**TINY["textcnn.v1"], "bag_dim": 0}),
                                         ("fasttext.v1", TINY["fasttext.v1"])])
def test_width_zero_is_refused_where_no_bag_would_be_left(name, params, tiny_corpus):
    from zhcls.errors import ConfigError

    clf = build_model(name, params, FAST).fit(tiny_corpus.texts, tiny_corpus.labels)
    with pytest.raises(ConfigError, match="only a textcnn.v1 or bigru.v1 with an n-gram bag"):
        clf.prune(0.0, texts=tiny_corpus.texts, labels=tiny_corpus.labels)


def test_width_zero_compresses_to_an_ordinary_fasttext_run(textcnn_run, capsys):
    out = textcnn_run["root"] / "bag"
    code, stdout, err = run_cli(["compress", textcnn_run["run"], "-o", out, "--width", "0", "--recover-epochs", "2"], capsys)
    assert code == 0, err
    c = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["compress"]
    assert c["pruned"]["model"] == ["textcnn.v1", "fasttext.v1"] and c["pruned"]["num_filters"] == [16, 0] and c["width_label"] == "0"
    cfg = load_config(out / "config.toml")
    assert load_model(out).name == "fasttext.v1" and cfg.model.name == "fasttext.v1"
    # a new kind of model: its own learning rate (not the TextCNN's), and a student's epoch budget at least
    from zhcls.models.fasttext import FastText

    assert cfg.training.lr == FastText.default_lr != load_config(textcnn_run["run"] / "config.toml").training.lr and cfg.training.epochs == 40
    manifest = json.loads((out / "bundle" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["input"]["graph"] == "bag_folded" and manifest["parity"]["fp32"]["max_abs_diff"] <= 1e-4
    assert c["ratios"]["size"] < 1


def test_tiny_random_bert_prunes_heads_and_ffn_and_still_exports(tiny_corpus, tmp_path):
    from zhcls.data.example import Example
    from zhcls.export.onnx import export_bundle
    from zhcls.models.transformer import Transformer, encoder_layers
    from zhcls.serve.predictor import Predictor

    clf = build_model("transformer.v1", Transformer.tiny_params(tmp_path, tiny_corpus.texts, tiny_corpus.labels), TrainingConfig(epochs=1, batch_size=8))
    clf.fit(tiny_corpus.texts, tiny_corpus.labels)
    same = clf.prune(1.0, texts=tiny_corpus.texts, labels=tiny_corpus.labels)
    np.testing.assert_allclose(same.predict_proba(tiny_corpus.texts), clf.predict_proba(tiny_corpus.texts), atol=1e-6)
    small = clf.prune(0.5, texts=tiny_corpus.texts, labels=tiny_corpus.labels)
    layers = encoder_layers(small.net_.model)
    assert [layer.attention.self.num_attention_heads for layer in layers] == [1, 1]  # of 2
    assert [tuple(layer.attention.self.query.weight.shape) for layer in layers] == [(16, 32)] * 2
    assert [layer.intermediate.dense.out_features for layer in layers] == [32, 32]  # of 64
    small.save(tmp_path / "small")
    reloaded = load_model(tmp_path / "small")
    np.testing.assert_allclose(reloaded.predict_proba(tiny_corpus.texts), small.predict_proba(tiny_corpus.texts), atol=1e-6)
    manifest = export_bundle(tmp_path / "small", tmp_path / "bundle", data=[Example(t, l) for t, l in zip(tiny_corpus.texts, tiny_corpus.labels)])
    assert manifest["parity"]["fp32"]["max_abs_diff"] <= 1e-4
    # vocabulary: 20 embedding rows; the tokenizer is unchanged and the net sends a removed token to UNK's row
    tiny = clf.prune(0.5, 20, texts=tiny_corpus.texts, labels=tiny_corpus.labels)
    assert tiny.net_.model.get_input_embeddings().num_embeddings == 20 and len(tiny.net_.id_map) == len(clf.featurizer_.tokenizer)
    tok = clf.featurizer_.tokenizer
    unk_row = int(tiny.net_.id_map[tok.unk_token_id])
    rare = [i for i in range(len(tok)) if int(tiny.net_.id_map[i]) == unk_row and i != tok.unk_token_id]
    assert rare and all(int(tiny.net_.id_map[i]) != unk_row for i in tok.all_special_ids if i != tok.unk_token_id)
    tiny.save(tmp_path / "tiny")
    manifest = export_bundle(tmp_path / "tiny", tmp_path / "tiny-bundle", data=[Example(t, l) for t, l in zip(tiny_corpus.texts, tiny_corpus.labels)])
    assert manifest["parity"]["fp32"]["max_abs_diff"] <= 1e-4
    text = tok.convert_ids_to_tokens(rare[0]) + tiny_corpus.texts[0]
    unk_text = tok.unk_token + tiny_corpus.texts[0]
    served = Predictor(tmp_path / "tiny-bundle")
    np.testing.assert_allclose(served.predict_proba([text]), served.predict_proba([unk_text]), atol=1e-5)
    np.testing.assert_allclose(load_model(tmp_path / "tiny").predict_proba([text]), served.predict_proba([text]), atol=1e-4)


@pytest.mark.parametrize("params", [{"num_layers": 2}, {"encoder": "cnn", "num_layers": 2}, {"num_layers": 2, "class_bag_dim": 0}])
def test_tagger_width_one_is_unchanged_and_half_has_the_promised_shapes(params):
    from test_tagging import TINY as TAG_TINY
    from test_tagging import _fit, make_joint

    records = make_joint(24, seed=3)
    texts = [r["text"] for r in records]
    joint = _fit("joint.v1", records, **params)
    same = joint.prune(1.0, texts=texts)
    np.testing.assert_allclose(same.predict_proba(texts), joint.predict_proba(texts), atol=1e-6)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(same.outputs(texts)[1], joint.outputs(texts)[1]))
    small = joint.prune(0.5, 20, texts=texts)
    h, g = TAG_TINY["hidden_size"], TAG_TINY["gram_dim"]
    state = {k: tuple(v.shape) for k, v in small.module_.state_dict().items()}
    assert small.params.hidden_size == h // 2 and small.params.gram_dim == g // 2 and len(small.features_.vocab) == 20
    assert state["net.grams.weight"][1] == g // 2 and state["net.embedding.weight"][0] == 20
    own = joint.params.class_bag  # the class head's own bag keeps its width; its characters follow the vocabulary
    assert state["net.tags.weight"] == (len(joint.tags_), h) and state["net.out.weight"] == (2, h + g // 2 + own)
    if own:
        assert state["net.class_chars.weight"] == (20, own) and state["net.class_grams.weight"][1] == own
        # a character that stays reads the same own-bag row as before
        kept = small.features_.vocab.tokens[5]
        old_id = joint.features_.vocab.tokens.index(kept)
        np.testing.assert_array_equal(small.module_.net.class_chars.weight[5].detach().numpy(), joint.module_.net.class_chars.weight[old_id].detach().numpy())
    if params.get("encoder") == "cnn":
        assert state["net.convs.1.weight"] == (h, h, 3)
    else:
        assert state["net.forward_layers.1.weight_ih_l0"] == (3 * h // 2, h) and state["net.backward_layers.0.weight_hh_l0"] == (3 * h // 2, h // 2)
    assert small.tags_ == joint.tags_ and small.labels_ == joint.labels_


def test_tagger_compresses_recovers_from_its_parent_and_exports(tmp_path, capsys):
    """A tagger.v1 run compressed to width 1/2: pruned, recovered by tagging distillation from the parent
    (starting from the pruned weights), scored by entity F1, smaller, and exported with parity; the budget
    search scores taggers by entity F1 and keeps to the budget."""
    from test_tagging import TINY as TAG_TINY
    from test_tagging import make_joint, write_records

    write_records(tmp_path / "train.json", make_joint(40, seed=1))
    write_records(tmp_path / "dev.json", make_joint(10, seed=2))
    write_records(tmp_path / "test.json", make_joint(10, seed=4))
    params = "".join(f"{k} = {v}\n" for k, v in TAG_TINY.items())
    config = tmp_path / "t.toml"
    config.write_text(f'[data]\ntrain = "{tmp_path / "train.json"}"\ndev = "{tmp_path / "dev.json"}"\ntest = "{tmp_path / "test.json"}"\n\n'
                      f'[model]\nname = "tagger.v1"\n{params}\n[training]\nepochs = 15\nbatch_size = 8\nlr = 0.02\npatience = 0\n', encoding="utf-8")
    assert run_cli(["train", config, "-o", tmp_path / "run"], capsys)[0] == 0
    code, out, err = run_cli(["compress", tmp_path / "run", "-o", tmp_path / "small", "--width", "1/2", "--recover-epochs", "3"], capsys)
    assert code == 0, err
    assert "dev entity_f1:" in out and "test entity_f1:" in out
    metrics = json.loads((tmp_path / "small" / "metrics.json").read_text(encoding="utf-8"))
    c = metrics["compress"]
    assert c["pruned"]["hidden_size"] == [TAG_TINY["hidden_size"], TAG_TINY["hidden_size"] // 2] and c["ratios"]["size"] < 0.8
    assert set(c["change"]["test"]) == {"entity_f1"} and metrics["distill"]["kind"] == "tags"
    rec = c["recovery"]
    assert rec["kept"] in ("recovered", "pruned") and rec["dev_best"] is not None and rec["n_transfer"] == 40
    if rec["kept"] == "recovered":
        assert rec["dev_best"] >= rec["dev_start"]
    assert metrics["dev"]["entity_f1"] >= c["pruned_only"]["dev"]["entity_f1"]  # recovery never leaves it worse on dev
    manifest = json.loads((tmp_path / "small" / "bundle" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parity"]["fp32"]["tags"]["entity_agreement"] == 1.0
    assert load_model(tmp_path / "small").params.hidden_size == TAG_TINY["hidden_size"] // 2

    budget = round(0.7 * c["before"]["bundle"]["total_bytes"] / 2**20, 4)
    code, out, err = run_cli(["compress", tmp_path / "run", "-o", tmp_path / "searched", "--budget-mb", budget, "--widths", "1/2,1/4", "--vocabs", "1",
                              "--recover-epochs", "1"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "searched" / "compress" / "search.json").read_text(encoding="utf-8"))
    assert summary["metric"] == "entity_f1" and {r["precision"] for r in summary["candidates"]} == {"fp32", "int8"}
    assert all("dev_entity_f1" in r for r in summary["candidates"])  # int8 bundles scored by their own predictions
    chosen = [r for r in summary["candidates"] if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["size_mb"] <= budget and "test_entity_f1" in chosen[0]
