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
        fast = fastest_quarter_ms(base)
    assert fast < STALL_MS - 5, f"the fastest quarter of requests took >= {fast:.1f} ms: the Nagle / delayed-ACK stall is back"


STALL_MS = 40  # Linux's smallest delayed ACK: with the stall, every request waits at least this long


def request_ms(client: httpx.Client, base: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        assert client.post(f"{base}/v1/predict", json={"texts": ["足球比赛冠军"]}, timeout=10).status_code == 200
        times.append((time.perf_counter() - start) * 1e3)
    return times


def fastest_quarter_ms(base: str, attempts: int = 3) -> float:
    """The 25th percentile of request times on one keep-alive connection (as a load generator uses), best of
    `attempts` rounds. The stall adds >= 40 ms to every request, so it keeps even the fastest quarter above
    40 ms in every round; a loaded machine slows some requests, but not the fastest quarter of three rounds.
    The first requests are left out: Linux ACKs a new connection's first segments at once (quick-ack), which
    would hide the stall there."""
    best = float("inf")
    with httpx.Client() as client:
        request_ms(client, base, 10)
        for _ in range(attempts):
            best = min(best, float(np.percentile(request_ms(client, base, 40), 25)))
            if best < STALL_MS - 5:
                break
    return best
