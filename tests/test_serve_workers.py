"""`zhcls serve --workers N`: answers without the 40 ms Nagle / delayed-ACK stall on every request."""

from __future__ import annotations

import socket
import time

import httpx
import numpy as np

from conftest import make_corpus, serving
from zhcls.cli.serve_cmd import tcp_listener
from zhcls.config import TrainingConfig
from zhcls.data.example import Example
from zhcls.models.base import build_model


def test_tcp_listener_declares_tcp_on_the_same_socket():
    sock = socket.socket(socket.AF_INET)  # as uvicorn binds it for several workers: protocol 0
    sock.bind(("127.0.0.1", 0))
    fd, port = sock.fileno(), sock.getsockname()[1]
    tcp = tcp_listener(sock)
    try:
        assert tcp.proto == socket.IPPROTO_TCP and tcp.fileno() == fd and tcp.getsockname()[1] == port and tcp.get_inheritable()
        assert tcp_listener(tcp) is tcp
    finally:
        tcp.close()


def test_several_workers_answer_in_milliseconds(tmp_path):
    from zhcls.export.onnx import export_bundle

    corpus = make_corpus()
    build_model("fasttext.v1", {"embed_dim": 8, "buckets": 100}, TrainingConfig(epochs=2, batch_size=8)).fit(corpus.texts, corpus.labels).save(
        tmp_path / "m"
    )
    export_bundle(tmp_path / "m", tmp_path / "b", data=[Example(t) for t in corpus.texts], latency_texts=5)
    with serving(tmp_path / "b", "--workers", "2") as (base, _):
        times = []
        with httpx.Client() as client:  # one keep-alive connection, as a load generator uses
            for _ in range(25):
                start = time.perf_counter()
                assert client.post(f"{base}/v1/predict", json={"texts": ["足球比赛冠军"]}, timeout=10).status_code == 200
                times.append(time.perf_counter() - start)
        # with the stall every request took >= 40 ms; without it a few ms, even on a busy machine
        assert np.median(times) < 0.03, f"median {np.median(times) * 1e3:.1f} ms per request"
