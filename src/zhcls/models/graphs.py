"""Serving graphs: ONNX graphs with the trained net's outputs (up to float rounding) that run faster.

A single short text costs little arithmetic; what it pays for is the number of operators onnxruntime
runs. So the two common models get hand-built graphs of a few operators each, computed from the trained
weights in float64:

- textcnn.v1 -> "textcnn_tables": every conv tap becomes a lookup table, so a text costs one gather of
  table rows instead of an embedding lookup and three convolutions;
- fasttext.v1 -> "bag_folded": the linear layer folded into the embedding, one table of [ids, classes]
  ("bag_folded_tfidf" with TF-IDF weighting: the same table, the weights computed in the graph).

Anything else, or TextCNN tables over `MAX_TABLE_BYTES`, is exported from the trained torch module as it
is ("net"). The export's parity gate checks every graph against the trained model.

Both graphs keep the bundle's input contract: `ids` [batch, time] int64 right-padded with 0, `lengths`
[batch] int64; output `logits` [batch, classes] float32.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

MAX_TABLE_BYTES = 64 * 2**20  # TextCNN tables above this fall back to the conv graph, so a bundle stays small
OPSET = 17


def write_onnx(model: Any, path: Path) -> str:
    """Write a neural model's ids -> logits graph and return its name: a table graph where the model has one,
    else "net", the trained torch module exported as it is."""
    import onnx

    built = serving_graph(model, OPSET)
    if built is not None:
        proto, graph = built
        onnx.save(proto, str(path))
    else:
        graph = "net"
        export_torch(model.net_, path)
    onnx.checker.check_model(onnx.load(str(path)))
    return graph


def export_torch(net: Any, path: Path) -> None:
    import torch

    net = net.eval()
    ids = torch.tensor([[2, 3, 4, 5, 6, 7], [2, 3, 4, 0, 0, 0]], dtype=torch.long)
    lengths = torch.tensor([6, 3], dtype=torch.long)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; the graph is checked after
        torch.onnx.export(
            net, (ids, lengths), str(path), input_names=["ids", "lengths"], output_names=["logits"],
            dynamic_axes={"ids": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )


def serving_graph(model: Any, opset: int, max_table_bytes: int | None = None) -> tuple[Any, str] | None:
    """(onnx.ModelProto, graph name) for a model with a table graph, or None: export the torch module.
    max_table_bytes: default MAX_TABLE_BYTES."""
    from .nets import BagNet, TextCNNNet

    if max_table_bytes is None:
        max_table_bytes = MAX_TABLE_BYTES

    net = model.net_
    state = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in net.state_dict().items()}
    if isinstance(net, TextCNNNet) and textcnn_table_bytes(net) <= max_table_bytes:
        f = model.featurizer_
        max_width = max(f.max_len * max(f.ngrams, 1), int(model.min_len))  # the widest ids the featurizer gives
        vocab_size = net.bag.vocab_size if net.bag is not None else None
        return textcnn_tables(state, tuple(net.kernel_sizes), max_width, opset, vocab_size), "textcnn_tables"
    if isinstance(net, BagNet) and net.out.out_features <= net.embedding.embedding_dim:  # the table is no larger
        if net.weighting == "tfidf":
            return folded_tfidf_bag(state, opset), "bag_folded_tfidf"
        return folded_bag(state, opset), "bag_folded"
    return None


def textcnn_table_bytes(net: Any) -> int:
    """Bytes of the float32 tables `textcnn_tables` builds: one row per token and tap, one column per filter
    (and for a hybrid one row per id, one column per class)."""
    bag = 4 * net.bag.embedding.num_embeddings * net.out.out_features if net.bag is not None else 0
    return bag + 4 * net.embedding.num_embeddings * max(net.kernel_sizes) * net.convs[0].out_channels * len(net.kernel_sizes)


def textcnn_tables(state: dict[str, np.ndarray], kernel_sizes: tuple[int, ...], max_width: int, opset: int, vocab_size: int | None = None) -> Any:
    """TextCNNNet (models/nets.py) as one table lookup.

    A conv with kernel k over embeddings E [V, D] and weights W [F, D, k] gives at position t
    sum_j T_j[ids[t + j]] + bias, with T_j = E @ W[:, :, j].T [V, F]. The taps' tables are stacked into
    one [taps * V, all filters] table (a kernel narrower than the tap gets zeros there; the conv bias sits
    in tap 0), so every window of every kernel comes from one gather at ids[t + j] + j * V, summed over j.

    Pooling is TextCNNNet's masked max: window t of kernel k counts while t < max(length - k + 1, 1) (a
    text shorter than k keeps its first window, which reads padding, id 0); windows that do not count
    give 0 after relu. relu(max over counted windows) is exactly that, as relu is monotonic and >= 0.
    `max_width`: the widest `ids` the graph accepts (positions are constants sliced to the batch's width).

    A hybrid (`vocab_size` set, TextCNNNet with an NgramBag) reads the tokens, ids < vocab_size, in the CNN
    and counts its windows by the number of tokens; the bag's share of the logits is folded like
    `folded_bag`: mean((E_bag @ W_bag.T)[ids]), the padding row being zero. As NgramBag.split does, the CNN
    reads only the columns tokens reach (the widest text's token count, at least `taps`): the n-gram ids
    after them, about 2/3 of the columns with tri-grams, would only be gathered and masked away.
    """
    from onnx import TensorProto, helper, numpy_helper

    emb = state["embedding.weight"]  # [V, D]
    n_ids = emb.shape[0]
    n = state["convs.0.weight"].shape[0]
    taps, cols = max(kernel_sizes), n * len(kernel_sizes)
    table = np.zeros((taps, n_ids, cols))
    for i, k in enumerate(kernel_sizes):
        w = state[f"convs.{i}.weight"]  # [F, D, k]
        for j in range(k):
            table[j, :, i * n : (i + 1) * n] = emb @ w[:, :, j].T
        table[0, :, i * n : (i + 1) * n] += state[f"convs.{i}.bias"]
    nk = len(kernel_sizes)
    consts = {
        "table": table.reshape(taps * n_ids, cols).astype(np.float32),
        "window": (np.arange(max_width)[:, None] + np.arange(taps)[None, :]).astype(np.int64),  # [t, j] -> t + j
        "tap_offset": (np.arange(taps) * n_ids).astype(np.int64),
        "position": np.arange(max_width, dtype=np.int64)[:, None, None],  # [t, 1, 1]
        "span": np.array([k - 1 for k in kernel_sizes], dtype=np.int64)[:, None],  # [kernels, 1]: a window needs k - 1 more tokens
        "one": np.array(1, dtype=np.int64),
        "zero": np.array([0], dtype=np.int64),
        "pads": np.array([0, 0, 0, taps - 1], dtype=np.int64),
        "no_penalty": np.array(0.0, dtype=np.float32),
        "neg_inf": np.array(-np.inf, dtype=np.float32),
        "by_kernel": np.array([0, 0, nk, n], dtype=np.int64),  # [B, T, cols] -> [B, T, kernels, filters]
        "flat": np.array([0, cols], dtype=np.int64),
        "reduce_taps": np.array([2], dtype=np.int64),
        "len_axes": np.array([1, 2, 3], dtype=np.int64),
        "out_w": state["out.weight"][:, :cols].astype(np.float32),
        "out_b": state["out.bias"].astype(np.float32),
    }
    node = helper.make_node
    nodes = []
    tokens, n_tokens = "ids", "lengths"
    if vocab_size is not None:
        bag = state["bag.embedding.weight"] @ state["out.weight"][:, cols:].T  # [ids, classes]
        bag[0] = 0.0
        consts.update(
            bag_table=bag.astype(np.float32), vocab_size=np.array(vocab_size, dtype=np.int64), zero_id=np.array(0, dtype=np.int64),
            axis1=np.array([1], dtype=np.int64), min_width=np.array([taps], dtype=np.int64),
        )
        tokens, n_tokens = "token_cols", "n_tokens"
        nodes += [
            node("Less", ["ids", "vocab_size"], ["is_token"]),
            node("Where", ["is_token", "ids", "zero_id"], ["token_ids"]),
            node("Greater", ["ids", "zero_id"], ["not_pad"]),
            node("And", ["is_token", "not_pad"], ["counted_token"]),
            node("Cast", ["counted_token"], ["token_flags"], to=TensorProto.INT64),
            node("ReduceSum", ["token_flags", "axis1"], ["n_tokens"], keepdims=0),
            node("ReduceMax", ["n_tokens"], ["most_tokens"], keepdims=1),  # [1]
            node("Max", ["most_tokens", "min_width"], ["token_width"]),
            node("Slice", ["token_ids", "zero", "token_width", "axis1"], ["token_cols"]),
            node("Gather", ["bag_table", "ids"], ["bag_rows"]),  # [B, T, classes]
            node("ReduceSum", ["bag_rows", "axis1"], ["bag_sum"], keepdims=0),
            node("Max", ["lengths", "one"], ["n_ids"]),
            node("Cast", ["n_ids"], ["n_ids_float"], to=TensorProto.FLOAT),
            node("Unsqueeze", ["n_ids_float", "axis1"], ["n_ids_col"]),
            node("Div", ["bag_sum", "n_ids_col"], ["bag_logits"]),
        ]
    nodes += [
        node("Pad", [tokens, "pads"], ["padded"]),  # windows running past the end read padding, as the conv does
        node("Shape", [tokens], ["width"], start=1, end=2),
        node("Slice", ["window", "zero", "width"], ["win"]),  # [T, taps]
        node("Gather", ["padded", "win"], ["win_ids"], axis=1),  # [B, T, taps]
        node("Add", ["win_ids", "tap_offset"], ["rows"]),
        node("Gather", ["table", "rows"], ["parts"]),  # [B, T, taps, cols]
        node("ReduceSum", ["parts", "reduce_taps"], ["h"], keepdims=0),  # [B, T, cols]
        node("Reshape", ["h", "by_kernel"], ["hk"]),  # [B, T, kernels, filters]
        # the mask is per kernel, [B, T, kernels, 1], and broadcast over the filters as a 0 / -inf penalty
        node("Slice", ["position", "zero", "width"], ["pos"]),  # [T, 1, 1]
        node("Unsqueeze", [n_tokens, "len_axes"], ["len4"]),  # [B, 1, 1, 1]
        node("Sub", ["len4", "span"], ["starts"]),  # [B, 1, kernels, 1]
        node("Max", ["starts", "one"], ["windows"]),
        node("Less", ["pos", "windows"], ["counted"]),  # [B, T, kernels, 1]
        node("Where", ["counted", "no_penalty", "neg_inf"], ["penalty"]),
        node("Add", ["hk", "penalty"], ["masked"]),
        node("ReduceMax", ["masked"], ["top"], axes=[1], keepdims=0),  # [B, kernels, filters]
        node("Reshape", ["top", "flat"], ["top_flat"]),
        node("Relu", ["top_flat"], ["pooled"]),
        node("Gemm", ["pooled", "out_w", "out_b"], ["cnn_logits" if vocab_size is not None else "logits"], transB=1),
    ]
    if vocab_size is not None:
        nodes.append(node("Add", ["cnn_logits", "bag_logits"], ["logits"]))
    return _model(nodes, consts, len(state["out.bias"]), "textcnn_tables", opset, helper, numpy_helper, TensorProto)


def folded_bag(state: dict[str, np.ndarray], opset: int) -> Any:
    """BagNet (models/nets.py) with its linear layer folded in: mean(E[ids]) @ W.T + b = mean((E @ W.T)[ids]) + b.

    Id 0 is padding: nn.Embedding(padding_idx=0) keeps its row at zero, so its table row is zero and the
    padding adds nothing to the sum; the featurizer never gives id 0 inside a text.
    """
    from onnx import TensorProto, helper, numpy_helper

    table = state["embedding.weight"] @ state["out.weight"].T  # [V, classes]
    table[0] = 0.0
    consts = {
        "table": table.astype(np.float32),
        "bias": state["out.bias"].astype(np.float32),
        "one": np.array(1, dtype=np.int64),
        "axis1": np.array([1], dtype=np.int64),
    }
    node = helper.make_node
    nodes = [
        node("Gather", ["table", "ids"], ["rows"]),  # [B, T, classes]
        node("ReduceSum", ["rows", "axis1"], ["summed"], keepdims=0),
        node("Max", ["lengths", "one"], ["n"]),
        node("Cast", ["n"], ["n_float"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["n_float", "axis1"], ["n_col"]),
        node("Div", ["summed", "n_col"], ["mean"]),
        node("Add", ["mean", "bias"], ["logits"]),
    ]
    return _model(nodes, consts, len(state["out.bias"]), "bag_folded", opset, helper, numpy_helper, TensorProto)


def folded_tfidf_bag(state: dict[str, np.ndarray], opset: int) -> Any:
    """BagNet with weighting "tfidf", folded like `folded_bag`: logits = sum_t w_t (E @ W.T)[ids_t] + b, with
    BagNet.tfidf_weights' w_t = (1 + log tf) * idf / tf / L2 norm. tf comes from comparing every pair of
    positions ([B, T, T]; T is a short text's ids, so this is cheaper than any sort-based count).
    Padding (id 0) has idf 0 and weighs nothing, so no mask is needed.
    """
    from onnx import TensorProto, helper, numpy_helper

    table = state["embedding.weight"] @ state["out.weight"].T  # [V, classes]
    table[0] = 0.0
    idf = state["idf"].copy()
    idf[0] = 0.0
    consts = {
        "table": table.astype(np.float32),
        "idf": idf.astype(np.float32),
        "bias": state["out.bias"].astype(np.float32),
        "one_f": np.array(1.0, dtype=np.float32),
        "eps": np.array(1e-12, dtype=np.float32),
        "axis1": np.array([1], dtype=np.int64),
        "axis2": np.array([2], dtype=np.int64),
    }
    node = helper.make_node
    nodes = [
        node("Unsqueeze", ["ids", "axis2"], ["ids_col"]),  # [B, T, 1]
        node("Unsqueeze", ["ids", "axis1"], ["ids_row"]),  # [B, 1, T]
        node("Equal", ["ids_col", "ids_row"], ["same"]),
        node("Cast", ["same"], ["same_f"], to=TensorProto.FLOAT),
        node("ReduceSum", ["same_f", "axis2"], ["tf"], keepdims=0),  # [B, T]
        node("Log", ["tf"], ["log_tf"]),
        node("Add", ["log_tf", "one_f"], ["sub_tf"]),
        node("Gather", ["idf", "ids"], ["idf_t"]),
        node("Mul", ["sub_tf", "idf_t"], ["unique"]),  # the id's TF-IDF value
        node("Div", ["unique", "tf"], ["share"]),
        node("Mul", ["share", "unique"], ["sq"]),
        node("ReduceSum", ["sq", "axis1"], ["norm_sq"], keepdims=1),  # [B, 1]
        node("Max", ["norm_sq", "eps"], ["norm_sq_safe"]),
        node("Sqrt", ["norm_sq_safe"], ["norm"]),
        node("Div", ["share", "norm"], ["weight"]),
        node("Unsqueeze", ["weight", "axis2"], ["weight_col"]),  # [B, T, 1]
        node("Gather", ["table", "ids"], ["rows"]),  # [B, T, classes]
        node("Mul", ["rows", "weight_col"], ["weighted"]),
        node("ReduceSum", ["weighted", "axis1"], ["summed"], keepdims=0),
        node("Add", ["summed", "bias"], ["logits"]),
    ]
    return _model(nodes, consts, len(state["out.bias"]), "bag_folded_tfidf", opset, helper, numpy_helper, TensorProto)


def _model(nodes, consts, n_classes, name, opset, helper, numpy_helper, TensorProto):
    graph = helper.make_graph(
        nodes,
        name,
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "time"]),
            helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes])],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(v), name=k) for k, v in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="zhcls")
