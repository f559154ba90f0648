"""HTTP serving: every endpoint, the error contract, limits, metrics, the page, and the real server from the CLI."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import signal
import socket
import time
import warnings

import httpx
import numpy as np
import pytest

from conftest import make_corpus, run_cli, serving
from zhcls.config import TrainingConfig
from zhcls.data.example import Example
from zhcls.models.base import build_model
from zhcls.serve import Predictor
from zhcls.serve.http import ENV_PREFIX, app_from_env, bundle_version, create_app

with warnings.catch_warnings():  # recent starlette prefers httpx2 for its test client; httpx works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MAX_LEN = 16  # tokens the test CNN reads: longer texts are truncated
LONG = "今天足球比赛的冠军球员在最后一分钟进球，全场观众欢呼，" * 3


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from zhcls.export.onnx import export_bundle

    root = tmp_path_factory.mktemp("serve")
    corpus = make_corpus()
    examples = [Example(t, l) for t, l in zip(corpus.texts, corpus.labels)]
    for name, params in (("textcnn.v1", {"embed_dim": 16, "num_filters": 16, "max_len": MAX_LEN}), ("tfidf.v1", {})):
        build_model(name, params, TrainingConfig(epochs=3, batch_size=8, lr=1e-2)).fit(corpus.texts, corpus.labels).save(root / name)
        export_bundle(root / name, root / f"bundle-{name}", data=examples, latency_texts=5)
    return {"onnx": root / "bundle-textcnn.v1", "linear": root / "bundle-tfidf.v1"}


@pytest.fixture(scope="module", params=["onnx", "linear"])
def served(request, bundles):
    predictor = Predictor(bundles[request.param])
    return predictor, TestClient(create_app(predictor, max_texts=4, max_chars=100), raise_server_exceptions=False)


def _post(client, body):
    return client.post("/v1/predict", json=body)


def test_predict_returns_every_label_with_probabilities(served):
    predictor, client = served
    texts = ["足球比赛冠军", "股票基金投资"]
    r = _post(client, {"texts": texts})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["model"] == predictor.manifest["model"] and body["version"] == bundle_version(predictor.manifest)
    assert len(body["predictions"]) == 2
    proba = predictor.predict_proba(texts)
    for p, row in zip(body["predictions"], proba):
        assert set(p) == {"label", "score", "scores", "truncated"}
        assert list(p["scores"]) == sorted(predictor.labels, key=lambda k: -row[predictor.labels.index(k)])  # most probable first
        assert p["label"] == next(iter(p["scores"])) and p["score"] == p["scores"][p["label"]]
        assert sum(p["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose([p["scores"][k] for k in predictor.labels], row, atol=1e-6)
    assert body["predictions"][0]["label"] == "体育" and body["predictions"][1]["label"] == "财经"


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_keeps_the_k_most_probable(served, k):
    _, client = served
    full = _post(client, {"texts": ["足球比赛冠军"]}).json()["predictions"][0]["scores"]
    top = _post(client, {"texts": ["足球比赛冠军"], "top_k": k}).json()["predictions"][0]["scores"]
    assert top == dict(list(full.items())[:k])


def test_long_texts_are_read_up_to_max_len_and_marked(bundles):
    client = TestClient(create_app(Predictor(bundles["onnx"]), max_chars=1000))
    preds = _post(client, {"texts": ["足球比赛", LONG, "球" * MAX_LEN, "球" * (MAX_LEN + 1)]}).json()["predictions"]
    assert [p["truncated"] for p in preds] == [False, True, False, True]
    alone = _post(client, {"texts": [LONG[:MAX_LEN]]}).json()["predictions"][0]["scores"]  # what it read
    assert preds[1]["scores"] == pytest.approx(alone, abs=1e-5)  # padded in a batch: equal up to float32 summation order
    assert "zhcls_texts_truncated_total 2" in client.get("/metrics").text
    linear = TestClient(create_app(Predictor(bundles["linear"]), max_chars=1000))  # TF-IDF reads the whole text
    assert _post(linear, {"texts": [LONG]}).json()["predictions"][0]["truncated"] is False


def test_limits_are_413_naming_the_problem(served):
    _, client = served
    r = _post(client, {"texts": ["足球"] * 5})
    assert r.status_code == 413 and r.json() == {"error": "too_many_texts", "detail": "texts has 5 items; the limit is 4 per request (split the batch)"}
    r = _post(client, {"texts": ["足球", "球" * 101]})
    assert r.status_code == 413 and r.json() == {"error": "text_too_long", "detail": "texts[1] has 101 characters; the limit is 100"}
    assert _post(client, {"texts": ["球" * 100]}).status_code == 200  # the limit itself is allowed
    r = client.post("/v1/predict", content=b'{"texts": ["' + b"a" * 200_000 + b'"]}', headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"

    def chunks():  # no Content-Length: counted while reading
        yield b'{"texts": ["'
        yield from (b"a" * 10_000 for _ in range(20))
        yield b'"]}'

    r = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"texts": []}, "texts: List should have at least 1 item"),
        ({"texts": "足球"}, "texts: Input should be a valid list"),
        ({"texts": ["足球", 3]}, "texts[1]: Input should be a valid string"),
        ({"texts": ["足球", None]}, "texts[1]: Input should be a valid string"),
        ({"texts": ["足球"], "top_k": 0}, "top_k: Input should be greater than or equal to 1"),
        ({"texts": ["足球"], "top_k": 4}, "top_k: Input should be less than or equal to 3"),
        ({"texts": ["足球"], "top_k": "2"}, "top_k: Input should be a valid integer"),
        ({"text": "足球"}, "texts: Field required"),
        ({"texts": ["足球"], "k": 1}, "k: Extra inputs are not permitted"),
        ([["足球"]], "body: Input should be a valid dictionary"),
    ],
)
def test_invalid_requests_are_422_naming_the_field(served, body, field):
    _, client = served
    r = _post(client, body)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request" and field in r.json()["detail"]


@pytest.mark.parametrize(
    "content, headers, detail",
    [
        (b'{"texts": [', {"content-type": "application/json"}, "body: not valid JSON at character 11"),
        ("足球".encode(), {"content-type": "text/plain"}, "Content-Type: application/json"),
        (b"", {}, "body: Field required"),
    ],
)
def test_malformed_bodies_are_422(served, content, headers, detail):
    _, client = served
    r = client.post("/v1/predict", content=content, headers=headers)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request" and detail in r.json()["detail"]


def test_other_errors_are_json_without_tracebacks(bundles):
    predictor = Predictor(bundles["linear"])
    client = TestClient(create_app(predictor), raise_server_exceptions=False)
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found" and "/nope" in r.json()["detail"]
    r = client.get("/v1/predict")
    assert r.status_code == 405 and r.json() == {"error": "method_not_allowed", "detail": "GET is not allowed on /v1/predict (allowed: POST)"}
    predictor.predict_scored = lambda texts, top_k=0: 1 / 0  # type: ignore[method-assign]
    r = _post(client, {"texts": ["足球"]})
    assert r.status_code == 500 and r.json() == {"error": "internal_error", "detail": "the server failed to handle the request (ZeroDivisionError)"}
    assert "Traceback" not in r.text
    assert 'zhcls_requests_total{method="POST",endpoint="/v1/predict",status="500"} 1' in client.get("/metrics").text


def test_healthz_and_model(served):
    predictor, client = served
    assert client.get("/healthz").json() == {"status": "ok", "model": predictor.manifest["model"], "version": bundle_version(predictor.manifest)}
    r = client.get("/v1/model")
    assert r.status_code == 200 and r.json() == predictor.manifest
    assert "体育" in r.text  # labels stay readable, not \u-escaped


def test_metrics_count_requests_latency_and_texts(bundles):
    client = TestClient(create_app(Predictor(bundles["onnx"])))
    for _ in range(3):
        _post(client, {"texts": ["足球", "基金"]})
    _post(client, {"texts": []})
    client.get("/healthz")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = dict(line.rsplit(" ", 1) for line in r.text.splitlines() if not line.startswith("#"))
    assert lines['zhcls_requests_total{method="POST",endpoint="/v1/predict",status="200"}'] == "3"
    assert lines['zhcls_requests_total{method="POST",endpoint="/v1/predict",status="422"}'] == "1"
    assert lines['zhcls_requests_total{method="GET",endpoint="/healthz",status="200"}'] == "1"
    assert lines['zhcls_request_duration_seconds_count{endpoint="/v1/predict"}'] == "4"
    assert lines['zhcls_request_duration_seconds_bucket{endpoint="/v1/predict",le="+Inf"}'] == "4"
    assert float(lines['zhcls_request_duration_seconds_sum{endpoint="/v1/predict"}']) > 0
    assert lines["zhcls_texts_predicted_total"] == "6"
    assert lines['zhcls_model_info{model="textcnn.v1",version="%s",backend="onnx",zhcls_version="0.1.0"}' % client.get("/healthz").json()["version"]] == "1"
    _post(client, {"texts": ["股票"]})
    after = client.get("/metrics").text
    assert 'zhcls_requests_total{method="POST",endpoint="/v1/predict",status="200"} 4' in after and "zhcls_texts_predicted_total 7" in after


def test_page_is_a_self_contained_form(served):
    predictor, client = served
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<meta charset="utf-8">' in page and 'lang="zh-CN"' in page
    assert '<form id="form">' in page and "<textarea" in page and 'fetch("v1/predict"' in page
    assert predictor.manifest["model"] in page and "{{" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import""", page)  # nothing external
    assert "default-src 'none'" in r.headers["content-security-policy"]  # and the browser is told to load nothing else


def test_openapi_documents_the_api(served):
    predictor, client = served
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/predict"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictRequest")
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictResponse")
    assert {"413", "422"} <= set(post["responses"]) and post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    request = spec["components"]["schemas"]["PredictRequest"]
    assert request["required"] == ["texts"] and request["properties"]["texts"]["minItems"] == 1
    assert request["properties"]["top_k"]["anyOf"][0]["maximum"] == len(predictor.labels)
    out = spec["components"]["schemas"]["PredictionOut"]
    assert set(out["properties"]) == {"label", "score", "scores", "truncated", "entities"}
    assert "entities" not in out.get("required", [])  # only tagging bundles send it
    assert "entities" not in client.post("/v1/predict", json={"texts": ["好"]}).json()["predictions"][0]
    assert {"/healthz", "/v1/model", "/metrics"} <= set(spec["paths"]) and "/" not in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_a_slow_prediction_does_not_block_other_requests(bundles):
    predictor = Predictor(bundles["linear"])
    original = predictor.predict_scored

    def slow(texts, top_k=0):
        time.sleep(0.5)
        return original(texts, top_k)

    predictor.predict_scored = slow  # type: ignore[method-assign]
    app = create_app(predictor)

    async def race():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            done = []

            async def call(method, url, **kw):
                r = await client.request(method, url, **kw)
                done.append(url)
                return r

            await asyncio.gather(call("POST", "/v1/predict", json={"texts": ["足球"]}), call("GET", "/healthz"))
            return done

    assert asyncio.run(race()) == ["/healthz", "/v1/predict"]


def test_app_from_env(bundles, monkeypatch):
    from zhcls.errors import ZhclsError

    monkeypatch.setenv(ENV_PREFIX + "BUNDLE", str(bundles["linear"]))
    monkeypatch.setenv(ENV_PREFIX + "MAX_TEXTS", "2")
    client = TestClient(app_from_env())
    assert _post(client, {"texts": ["足球", "基金"]}).status_code == 200
    assert _post(client, {"texts": ["足球"] * 3}).status_code == 413
    monkeypatch.setenv(ENV_PREFIX + "MAX_TEXTS", "many")
    with pytest.raises(ZhclsError, match="MAX_TEXTS"):
        app_from_env()
    monkeypatch.delenv(ENV_PREFIX + "BUNDLE")
    with pytest.raises(ZhclsError, match="BUNDLE is not set"):
        app_from_env()


def test_cli_defaults_are_the_library_defaults():
    from zhcls.cli import serve_cmd

    cli = inspect.signature(serve_cmd.serve).parameters
    lib = inspect.signature(create_app).parameters
    assert cli["max_texts"].default.default == lib["max_texts"].default
    assert cli["max_chars"].default.default == lib["max_chars"].default
    assert cli["host"].default.default == "127.0.0.1"


def test_serve_refuses_bad_input_before_listening(bundles, tmp_path, capsys):
    code, _, err = run_cli(["serve", tmp_path / "missing"], capsys)
    assert code == 2 and "not a bundle" in err and "zhcls export" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = run_cli(["serve", bundles["linear"], "--port", busy.getsockname()[1]], capsys)
    assert code == 2 and "cannot listen on 127.0.0.1" in err and "--port" in err


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serves_over_http(bundles, workers):
    with serving(bundles["onnx"], "--workers", workers) as (base, server):
        r = httpx.post(f"{base}/v1/predict", json={"texts": ["足球比赛冠军", LONG], "top_k": 2}, timeout=10)
        assert r.status_code == 200
        preds = r.json()["predictions"]
        assert preds[0]["label"] == "体育" and len(preds[0]["scores"]) == 2 and [p["truncated"] for p in preds] == [False, True]
        assert json.loads(httpx.get(f"{base}/v1/model", timeout=10).text)["model"] == "textcnn.v1"
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status says why it stopped
    assert server.returncode in (0, -signal.SIGTERM) and "Traceback" not in server.output, server.output
