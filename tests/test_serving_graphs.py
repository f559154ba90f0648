"""Serving graphs: TextCNN as lookup tables and fastText with its output layer folded in match the trained
nets exactly (up to float rounding), whatever the kernels, lengths and padding; int8 quantizes only the
tables; the single-text fast path and the n-gram hashing give what the general code gives."""

from __future__ import annotations

import zlib

import numpy as np
import onnx
import pytest

from conftest import make_corpus
from zhcls.config import TrainingConfig
from zhcls.data.example import Example
from zhcls.models.base import build_model
from zhcls.serve import Predictor

EXTRA = ["一个很长很长的句子，" * 40, "短", "球", "😀", "", "ab", "足球 比赛"]  # long, shorter than every kernel, unknown, empty


def _examples():
    corpus = make_corpus()
    return corpus, [Example(t, l) for t, l in zip(corpus.texts, corpus.labels)] + [Example(t) for t in EXTRA]


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path / "model.onnx")).graph.node}


@pytest.mark.parametrize(
    "name, params, graph",
    [
        ("textcnn.v1", {"embed_dim": 16, "num_filters": 8}, "textcnn_tables"),
        ("textcnn.v1", {"embed_dim": 8, "num_filters": 8, "kernel_sizes": [5, 1, 3]}, "textcnn_tables"),  # unsorted, a 1-wide kernel
        ("textcnn.v1", {"embed_dim": 8, "num_filters": 4, "kernel_sizes": [2], "max_len": 6}, "textcnn_tables"),
        ("fasttext.v1", {"embed_dim": 16, "buckets": 500}, "bag_folded"),
        ("fasttext.v1", {"embed_dim": 16, "ngrams": 1, "buckets": 0}, "bag_folded"),
        ("fasttext.v1", {"embed_dim": 2, "buckets": 100}, "net"),  # 3 classes > 2 dims: folding would grow the table
        ("fasttext.v1", {"embed_dim": 16, "buckets": 500, "weighting": "tfidf"}, "bag_folded_tfidf"),
        ("fasttext.v1", {"embed_dim": 2, "buckets": 100, "weighting": "tfidf"}, "net"),
    ],
)
def test_serving_graph_matches_the_trained_net(name, params, graph, tmp_path):
    from zhcls import load_model
    from zhcls.export.onnx import export_bundle

    corpus, examples = _examples()
    build_model(name, params, TrainingConfig(epochs=4, batch_size=8, lr=1e-2)).fit(corpus.texts, corpus.labels).save(tmp_path / "m")
    manifest = export_bundle(tmp_path / "m", tmp_path / "b", data=examples, latency_texts=5)
    assert manifest["input"]["graph"] == graph
    if graph != "net":
        assert not _ops(tmp_path / "b") & {"Conv", "MatMul"}
    texts = [e.text for e in examples]
    reference = load_model(tmp_path / "m").predict_proba(texts)
    predictor = Predictor(tmp_path / "b")
    np.testing.assert_allclose(predictor.predict_proba(texts), reference, atol=1e-5)  # batched, padded to the longest
    one_by_one = np.concatenate([predictor.predict_proba([t]) for t in texts])  # the single-text fast path
    np.testing.assert_allclose(one_by_one, reference, atol=1e-5)


def test_tfidf_weighting_pools_the_embeddings_with_scikit_learns_tfidf_vector():
    """BagNet's "tfidf" pooling is x @ E, x being TfidfTransformer(sublinear_tf, l2, smooth_idf)'s row."""
    import torch
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfTransformer

    from zhcls.models.nets import BagNet

    seqs = [[2, 3, 3, 3, 5], [4, 4, 2], [6], [2, 3, 7, 7, 7, 7, 8]]
    n_ids = 10
    net = BagNet(n_ids, 3, 4, 0.0, weighting="tfidf")
    net.set_idf(seqs)
    counts = np.zeros((len(seqs), n_ids))
    for i, seq in enumerate(seqs):
        for j in seq:
            counts[i, j] += 1
    x = TfidfTransformer(sublinear_tf=True).fit(csr_matrix(counts)).transform(csr_matrix(counts)).toarray()
    width = max(map(len, seqs))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    lengths = torch.tensor([len(s) for s in seqs])
    emb = net.embedding.weight.detach()
    pooled = (emb[ids] * net.tfidf_weights(ids, lengths).unsqueeze(-1)).sum(dim=1)
    # df of an id no training text has is 0 here and in scikit-learn alike; columns 1 and 9 are never used
    np.testing.assert_allclose(pooled.detach().numpy(), x @ emb.numpy(), atol=1e-5)


def test_textcnn_tables_fall_back_to_the_conv_graph_over_the_size_limit(tmp_path, monkeypatch):
    from zhcls.export.onnx import export_bundle
    from zhcls.models import graphs

    corpus, examples = _examples()
    build_model("textcnn.v1", {"embed_dim": 8, "num_filters": 8}, TrainingConfig(epochs=2, batch_size=8)).fit(corpus.texts, corpus.labels).save(
        tmp_path / "m"
    )
    monkeypatch.setattr(graphs, "MAX_TABLE_BYTES", 1024)
    manifest = export_bundle(tmp_path / "m", tmp_path / "b", data=examples, latency_texts=5)
    assert manifest["input"]["graph"] == "net" and "Conv" in _ops(tmp_path / "b")
    assert manifest["parity"]["fp32"]["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize(
    "name, params",
    [
        ("textcnn.v1", {"embed_dim": 32, "num_filters": 32}),
        ("fasttext.v1", {"embed_dim": 16, "buckets": 4000}),
        ("fasttext.v1", {"embed_dim": 16, "buckets": 4000, "weighting": "tfidf"}),
    ],
)
def test_int8_quantizes_the_tables_only(name, params, tmp_path):
    from zhcls.export.onnx import INT8_OPS, export_bundle

    assert "Conv" not in INT8_OPS
    corpus, examples = _examples()
    build_model(name, params, TrainingConfig(epochs=3, batch_size=8, lr=1e-2)).fit(corpus.texts, corpus.labels).save(tmp_path / "m")
    fp32 = export_bundle(tmp_path / "m", tmp_path / "fp32", data=examples, latency_texts=5)
    int8 = export_bundle(tmp_path / "m", tmp_path / "int8", data=examples, quantize="int8", latency_texts=5)
    ops = _ops(tmp_path / "int8")
    assert "DequantizeLinear" in ops and not ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
    tables = [i for i in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.initializer if i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)]
    assert tables, "no 8-bit table"
    assert int8["size_bytes"]["model.onnx"] <= 0.35 * fp32["size_bytes"]["model.onnx"]
    q = int8["parity"]["int8"]
    assert q["label_agreement"] >= 0.9 and q["max_abs_diff"] < 0.05


def _crc_ngrams(tokens, max_n, base, buckets):
    """The n-gram ids as first defined: crc32 of the "\\x1f"-joined n-gram."""
    return [
        base + zlib.crc32("\x1f".join(tokens[i : i + n]).encode("utf-8")) % buckets for n in range(2, max_n + 1) for i in range(len(tokens) - n + 1)
    ]


@pytest.mark.parametrize("max_n", [2, 3, 4])
def test_hashed_ngrams_are_the_crc32_of_the_joined_ngram(max_n):
    from zhcls.text.featurizer import hashed_ngrams

    token_lists = [[], ["a"], ["足", "球"], list("今天的足球比赛非常精彩"), ["iphone13", "很", "好", "😀", "é", "\x1f"]]
    for tokens in token_lists:
        for buckets in (1, 7, 200_000):
            assert hashed_ngrams(tokens, max_n, 100, buckets) == _crc_ngrams(tokens, max_n, 100, buckets)


@pytest.mark.parametrize("layers", [1, 2])
def test_bigru_exports_one_bidirectional_gru_node_per_layer_with_the_texts_lengths(layers, tmp_path):
    import torch

    from zhcls import load_model
    from zhcls.export.onnx import export_bundle
    from zhcls.models.nets import bigru_layer, onnx_gru_reference, onnx_gru_weights

    torch.manual_seed(0)
    fwd, bwd = torch.nn.GRU(5, 3, batch_first=True), torch.nn.GRU(5, 3, batch_first=True)
    x, lengths = torch.randn(3, 7, 5), torch.tensor([7, 4, 1])
    with torch.no_grad():
        ours, onnx_semantics = bigru_layer(fwd, bwd, x, lengths), onnx_gru_reference(x, lengths, *onnx_gru_weights(fwd, bwd))
    for i, n in enumerate(lengths.tolist()):  # equal wherever there is text; ONNX gives zeros past the end
        torch.testing.assert_close(onnx_semantics[i, :n], ours[i, :n], atol=1e-6, rtol=0)
        assert not onnx_semantics[i, n:].any()

    corpus, examples = _examples()
    params = {"embed_dim": 8, "hidden_size": 6, "num_layers": layers, "bag_dim": 4}
    build_model("bigru.v1", params, TrainingConfig(epochs=2, batch_size=8, lr=1e-2)).fit(corpus.texts, corpus.labels).save(tmp_path / "m")
    export_bundle(tmp_path / "m", tmp_path / "b", data=examples, latency_texts=5)
    nodes = onnx.load(str(tmp_path / "b" / "model.onnx")).graph.node
    grus = [n for n in nodes if n.op_type == "GRU"]
    assert len(grus) == layers and all(len(n.input) >= 5 and n.input[4] for n in grus), "one node per layer, given sequence_lens"
    assert "GatherElements" not in {n.op_type for n in nodes}, "no reversal arithmetic left"
    texts = [e.text for e in examples]
    reference = load_model(tmp_path / "m").predict_proba(texts)
    predictor = Predictor(tmp_path / "b")
    np.testing.assert_allclose(predictor.predict_proba(texts), reference, atol=1e-5)  # padded batches of mixed lengths
    np.testing.assert_allclose(np.concatenate([predictor.predict_proba([t]) for t in texts]), reference, atol=1e-5)
