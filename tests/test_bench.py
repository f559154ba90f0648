"""zhcls bench: every variant measured, ratios taken from the measured values, the CLI prints and writes JSON."""

from __future__ import annotations

import json

import pytest

from zhcls.config import TrainingConfig
from zhcls.data.example import Example
from zhcls.export.bench import TORCH, BenchError, BenchSettings, bench, format_table, model_flops
from zhcls.models.base import build_model

FAST = BenchSettings(latency_texts=20, throughput_texts=64, warmup=2, rounds=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_corpus):
    from zhcls.export.onnx import export_bundle

    root = tmp_path_factory.mktemp("bench")
    params = {"embed_dim": 16, "num_filters": 16}
    build_model("textcnn.v1", params, TrainingConfig(epochs=3, batch_size=8, lr=1e-2)).fit(tiny_corpus.texts, tiny_corpus.labels).save(
        root / "model"
    )
    examples = [Example(t, l) for t, l in zip(tiny_corpus.texts, tiny_corpus.labels)]
    export_bundle(root / "model", root / "bundle", data=examples, latency_texts=5)
    return root, examples


def test_bench_measures_every_variant_and_derives_the_ratios(exported):
    root, examples = exported
    result = bench(root / "bundle", run=root / "model", data=examples, settings=FAST)
    assert list(result["variants"]) == ["onnx_fp32", "onnx_int8", TORCH]
    for v in result["variants"].values():
        assert v["latency"]["p50_ms"] > 0 and v["latency"]["p99_ms"] >= v["latency"]["p50_ms"]
        assert v["latency"]["n"] == FAST.latency_texts * FAST.rounds
        assert all(rate > 0 for per_batch in v["throughput"].values() for rate in per_batch.values())
        assert set(v["throughput"]) == {"1", "2"} and set(v["throughput"]["1"]) == {"1", "32", "256"}
    assert result["variants"]["onnx_fp32"]["quality"]["label_agreement"] == 1.0  # the same model as PyTorch
    assert "accuracy" in result["variants"][TORCH]["quality"]
    assert len(result["rows"]) == 2 + 2 * 3
    for row in result["rows"]:
        ref = row["values"][TORCH]
        for name, value in row["values"].items():
            assert value > 0
            expected = value / ref if row["higher_is_better"] else ref / value
            assert row["speedup"][name] == pytest.approx(expected)
        assert row["speedup"][TORCH] == pytest.approx(1.0)
    assert result["tokenize"]["p50_ms"] > 0


def test_bench_of_a_bundle_alone_has_no_ratios(exported):
    root, examples = exported
    result = bench(root / "bundle", data=examples, settings=FAST)
    assert list(result["variants"]) == ["onnx_fp32"]
    assert all(row["speedup"]["onnx_fp32"] is None for row in result["rows"])


def test_bench_without_texts_says_how_to_give_them(exported):
    root, _ = exported
    with pytest.raises(BenchError) as exc:
        bench(root / "bundle", settings=FAST)
    assert "--data" in exc.value.hint


def test_bench_refuses_a_run_the_bundle_did_not_come_from(exported, tiny_corpus, tmp_path):
    root, examples = exported
    other = build_model("fasttext.v1", {"embed_dim": 8, "buckets": 100}, TrainingConfig(epochs=1, batch_size=8))
    other.fit(tiny_corpus.texts, tiny_corpus.labels).save(tmp_path / "other")
    with pytest.raises(BenchError, match="not exported from"):
        bench(root / "bundle", run=tmp_path / "other", data=examples, settings=FAST)


def test_cli_prints_the_table_and_writes_json(exported, tmp_path, capsys):
    from conftest import make_corpus, run_cli, write_jsonl

    root, _ = exported
    data = write_jsonl(tmp_path / "texts.json", make_corpus(4, seed=5))
    out = tmp_path / "bench.json"
    args = ["bench", root / "bundle", "--run", root / "model", "--data", data, "--json", out,
            "--latency-texts", "10", "--throughput-texts", "32", "--rounds", "1"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "| measurement | ONNX fp32 | ONNX int8 | PyTorch eager |" in stdout
    assert "latency p50" in stdout and "(x" in stdout
    legend = stdout.splitlines()[stdout.splitlines().index("| measurement | ONNX fp32 | ONNX int8 | PyTorch eager |") - 2]
    assert "One column per variant" in legend and "speed-up over PyTorch eager" in legend
    # The progress bar on stderr counted every measurement: export, 3 variants x (1 latency round + 2 threads
    # x 3 batch sizes + agreement), tokenization, the matmul peak at 1 and 2 threads.
    total = 1 + 3 * (1 + 6 + 1) + 1 + 2
    assert f"{total}/{total}" in err and "bench" in err
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert set(saved["variants"]) == {"onnx_fp32", "onnx_int8", TORCH} and saved["texts"]["n"] == 12


def test_bench_progress_counts_up_to_its_total(exported):
    root, examples = exported
    calls = []
    bench(root / "bundle", data=examples, settings=FAST, progress=lambda what, done, total: calls.append((what, done, total)))
    total = 1 + 6 + 1 + 1 + 2  # one variant: latency, 2 threads x 3 batch sizes, agreement, tokenization, 2 matmul peaks
    assert [c[1] for c in calls] == list(range(total)) + [total] and {c[2] for c in calls} == {total}
    assert calls[0][0] == "latency ONNX fp32" and calls[-1][0] == "done"


def test_bench_reports_the_matmul_peak_and_the_fraction_of_it(exported):
    root, examples = exported
    result = bench(root / "bundle", data=examples, settings=FAST)
    assert set(result["peak"]) == {"1", "2"} and all(p["gflops"] > 0 for p in result["peak"].values())
    flops = result["flops"]
    assert flops["per_text"] > 0 and flops["mean_ids"] > 0
    for t, per in result["variants"]["onnx_fp32"]["throughput"].items():
        for b, rate in per.items():
            expected = rate * flops["per_text"] / (result["peak"][t]["gflops"] * 1e9)
            assert result["variants"]["onnx_fp32"]["peak_fraction"][t][b] == pytest.approx(expected, rel=1e-3, abs=1e-5)
    assert "MFLOP per text" in format_table(result) and "of that peak" in format_table(result)


def test_model_flops_counts_the_dense_computation():
    manifest = {"model": "textcnn.v1", "labels": ["a", "b"], "params": {"embed_dim": 4, "num_filters": 3, "kernel_sizes": [2, 3]}}
    # length 5: kernel 2 has 4 windows, kernel 3 has 3; each window 2*D*F*k; output 2*(F*2)*K
    expected = 4 * 2 * 4 * 3 * 2 + 3 * 2 * 4 * 3 * 3 + 2 * 6 * 2
    assert model_flops(manifest, [5])["per_text"] == expected
    assert model_flops(manifest, [1])["per_text"] == 2 * 4 * 3 * 2 + 2 * 4 * 3 * 3 + 2 * 6 * 2  # a short text keeps one window
    bag = {"model": "fasttext.v1", "labels": ["a", "b", "c"], "params": {"embed_dim": 10}}
    assert model_flops(bag, [7, 9])["per_text"] == 8 * 10 + 2 * 10 * 3
    assert model_flops({"model": "tfidf.v1", "labels": ["a"], "params": {}}, [3]) is None
    tables = {**manifest, "input": {"graph": "textcnn_tables"}}
    assert model_flops(tables, [5])["graph_per_text"] == 5 * 3 * 6 + 2 * 6 * 2  # 3 taps of 6 filters per position; output layer
