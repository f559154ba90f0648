"""HTTP serving for a bundle: create_app(predictor) -> FastAPI (the `serve` extra).

POST /v1/predict   {"texts": [...], "top_k": k} -> {"predictions": [...], "model", "version"}
GET  /v1/model     the bundle manifest
GET  /healthz      liveness and readiness (the model is loaded before the app exists)
GET  /metrics      Prometheus text format, for this process
GET  /             a self-contained page to try the model by hand

Everything per request is computed from state built once in create_app: the manifest and the page are
serialized up front, and nothing is logged or read from disk. Prediction runs in worker threads (the
onnxruntime session is thread-safe), so a large batch never blocks the event loop.
"""

# No `from __future__ import annotations`: FastAPI must see the real request model class defined inside
# create_app, not a string it would look up in this module.
import hashlib
import html
import json
import os
import time
from bisect import bisect_left
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import ZhclsError
from .predictor import Predictor

DEFAULT_MAX_TEXTS = 256
DEFAULT_MAX_CHARS = 10_000
ENV_PREFIX = "ZHCLS_SERVE_"  # app_from_env reads ZHCLS_SERVE_BUNDLE, _THREADS, _MAX_TEXTS, _MAX_CHARS
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PAGE = Path(__file__).with_name("page.html")
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'"


# -- the wire format (these models are also the OpenAPI schema) ----------------------------------
class EntityOut(BaseModel):
    text: str = Field(description="text[start:end], the entity as it appears in the request's text.")
    start: int = Field(description="Offset of its first character in the text (characters, from 0).")
    end: int = Field(description="Offset just past its last character.")
    type: str = Field(description="Entity type, e.g. LOC.")
    score: float = Field(description="Confidence of the tag head in this entity (0 to 1).")


class PredictionOut(BaseModel):
    label: str = Field(description="The most probable label.")
    score: float = Field(description="Its probability.")
    scores: dict[str, float] = Field(description="Probabilities of the top_k labels, most probable first.")
    truncated: bool = Field(description="The text had more tokens than the model reads; only the first max_length were used.")
    entities: list[EntityOut] | None = Field(None, description="Tagging bundles (tagger.v1, joint.v1): the entities found in the text.")


class PredictResponse(BaseModel):
    predictions: list[PredictionOut] = Field(description="One per text, in request order.")
    model: str = Field(description="Registered model name, e.g. textcnn.v1.")
    version: str = Field(description="Fingerprint of the bundle's files: it changes whenever the served model does.")


class ErrorOut(BaseModel):
    error: str = Field(description="Machine-readable code, e.g. invalid_request, too_many_texts, text_too_long.")
    detail: str = Field(description="What is wrong, naming the field or text index.")


class HealthOut(BaseModel):
    status: str
    model: str
    version: str


class ManifestOut(BaseModel):
    """The bundle's manifest.json (more keys than listed here)."""

    model_config = ConfigDict(extra="allow")
    model: str
    backend: str
    precision: str
    labels: list[str]
    zhcls_version: str
    metrics: dict[str, Any] = {}


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


# -- metrics -------------------------------------------------------------------------------------
class Metrics:
    """Prometheus counters for one process. Updated only on the event loop thread, so no locks."""

    def __init__(self, info: dict[str, str]) -> None:
        self.info = info
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)  # (method, endpoint, status)
        self.latency: dict[str, list[float]] = {}  # endpoint -> per-bucket counts (+Inf last), then sum
        self.texts = 0
        self.truncated = 0
        self.started = time.time()

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.requests[(method, endpoint, status)] += 1
        row = self.latency.get(endpoint)
        if row is None:
            row = self.latency[endpoint] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        row[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        row[-1] += seconds

    def render(self) -> str:
        out = [
            "# HELP zhcls_model_info The served bundle.",
            "# TYPE zhcls_model_info gauge",
            f"zhcls_model_info{_labels(self.info)} 1",
            "# HELP zhcls_process_start_time_seconds When this server process started (unix time).",
            "# TYPE zhcls_process_start_time_seconds gauge",
            f"zhcls_process_start_time_seconds {self.started:.3f}",
            "# HELP zhcls_requests_total HTTP requests by method, endpoint and status code.",
            "# TYPE zhcls_requests_total counter",
        ]
        for (method, endpoint, status), n in sorted(self.requests.items()):
            out.append(f"zhcls_requests_total{_labels({'method': method, 'endpoint': endpoint, 'status': str(status)})} {n}")
        out += ["# HELP zhcls_request_duration_seconds Time from request to response, by endpoint.",
                "# TYPE zhcls_request_duration_seconds histogram"]
        for endpoint, row in sorted(self.latency.items()):
            cumulative = 0.0
            for bound, n in zip((*LATENCY_BUCKETS, "+Inf"), row):
                cumulative += n
                out.append(f"zhcls_request_duration_seconds_bucket{_labels({'endpoint': endpoint, 'le': str(bound)})} {cumulative:.0f}")
            out.append(f"zhcls_request_duration_seconds_sum{_labels({'endpoint': endpoint})} {row[-1]:.6f}")
            out.append(f"zhcls_request_duration_seconds_count{_labels({'endpoint': endpoint})} {cumulative:.0f}")
        out += [
            "# HELP zhcls_texts_predicted_total Texts classified.",
            "# TYPE zhcls_texts_predicted_total counter",
            f"zhcls_texts_predicted_total {self.texts}",
            "# HELP zhcls_texts_truncated_total Texts longer than the model's max_length, classified on their start.",
            "# TYPE zhcls_texts_truncated_total counter",
            f"zhcls_texts_truncated_total {self.truncated}",
        ]
        return "\n".join(out) + "\n"


def _labels(labels: dict[str, str]) -> str:
    escape = lambda v: v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")  # noqa: E731
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


class _Observe:
    """ASGI middleware: counts and times every request, and refuses bodies over `max_body` bytes
    (by Content-Length up front, and while reading for chunked uploads)."""

    def __init__(self, app: Any, metrics: Metrics, endpoints: frozenset[str], max_body: int) -> None:
        self.app, self.metrics, self.endpoints, self.max_body = app, metrics, endpoints, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await _error(413, "request_too_large", f"the body has {int(length)} bytes; the limit is {self.max_body}")(scope, receive, send_status)
                return
            received = 0

            async def receive_limited() -> dict:
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                if received > self.max_body:  # FastAPI passes HTTPException from body reading on to its handler
                    raise HTTPException(413, f"the body is over the limit of {self.max_body} bytes")
                return message

            await self.app(scope, receive_limited, send_status)
        finally:
            self.metrics.observe(scope["method"], endpoint, status, time.perf_counter() - start)


# -- the app ---------------------------------------------------------------------------------------
def bundle_version(manifest: dict[str, Any]) -> str:
    """12 hex digits of a sha256 over the bundle's file hashes: any change to the model changes it."""
    files = json.dumps(sorted(manifest.get("files", {}).items())).encode()
    return hashlib.sha256(files).hexdigest()[:12]


def create_app(
    predictor: Predictor,
    *,
    max_texts: int = DEFAULT_MAX_TEXTS,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_concurrency: int = 4,
) -> FastAPI:
    """An app serving `predictor`. max_texts: texts per request; max_chars: characters per text (more is
    a 413; texts within it but over the model's max_length tokens are read up to max_length and marked
    truncated); max_concurrency: predictions running at once, the rest wait without holding a thread."""
    if max_texts < 1 or max_chars < 1 or max_concurrency < 1:
        raise ZhclsError(f"max_texts, max_chars and max_concurrency must be positive (got {max_texts}, {max_chars}, {max_concurrency})")
    manifest = predictor.manifest
    model, version, n_labels = manifest["model"], bundle_version(manifest), len(predictor.labels)
    limiter = anyio.CapacityLimiter(max_concurrency)
    metrics = Metrics({"model": model, "version": version, "backend": predictor.backend, "zhcls_version": __version__})
    manifest_body = json.dumps(manifest, ensure_ascii=False).encode("utf-8")
    health_body = json.dumps({"status": "ok", "model": model, "version": version}).encode("utf-8")
    page = _render_page(model, version, n_labels, predictor.max_len, max_chars)

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["今天股市大涨，基金收益创新高"], "top_k": 3}]})
        texts: list[StrictStr] = Field(
            min_length=1, description=f"Texts to classify, at most {max_texts} per request and {max_chars} characters each."
        )
        top_k: StrictInt | None = Field(
            None, ge=1, le=n_labels, description=f"How many labels to list in `scores` (1 to {n_labels}); default: all."
        )

    app = FastAPI(
        title=f"zhcls: {model}",
        version=version,
        description=f"Chinese text classification with a {model} bundle ({n_labels} labels). Errors are JSON `{{error, detail}}`.",
    )
    errors = {413: {"model": ErrorOut, "description": "Too many texts, a text too long, or a body too large."},
              422: {"model": ErrorOut, "description": "The body is not valid JSON or does not match the schema."}}

    @app.post("/v1/predict", response_model=PredictResponse, responses=errors)  # type: ignore[arg-type]
    async def predict(request: PredictRequest) -> Response:
        """Classify texts; each prediction lists the top_k labels with their probabilities."""
        texts = request.texts
        if len(texts) > max_texts:
            raise ApiError(413, "too_many_texts", f"texts has {len(texts)} items; the limit is {max_texts} per request (split the batch)")
        for i, text in enumerate(texts):
            if len(text) > max_chars:
                raise ApiError(413, "text_too_long", f"texts[{i}] has {len(text)} characters; the limit is {max_chars}")
        predictions = await anyio.to_thread.run_sync(predictor.predict_scored, texts, request.top_k or 0, limiter=limiter)
        metrics.texts += len(texts)
        metrics.truncated += sum(p.truncated for p in predictions)
        out = [
            {"label": p.label, "score": round(p.score, 6), "scores": {k: round(v, 6) for k, v in p.scores.items()}, "truncated": p.truncated,
             **({"entities": list(p.entities)} if p.entities is not None else {})}
            for p in predictions
        ]
        # Built here to the schema above; JSONResponse skips a second validation pass over our own output.
        return JSONResponse({"predictions": out, "model": model, "version": version})

    @app.get("/v1/model", response_model=ManifestOut)
    async def model_info() -> Response:
        """The bundle manifest: labels, metrics, parity and latency measured at export, file hashes."""
        return Response(manifest_body, media_type="application/json")

    @app.get("/healthz", response_model=HealthOut)
    async def healthz() -> Response:
        """200 once the model is loaded (it is loaded before the server accepts connections)."""
        return Response(health_body, media_type="application/json")

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def prometheus() -> Response:
        """Prometheus text format: requests by endpoint and status, latency histogram, texts predicted."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP})

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.error, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        return _error(422, "invalid_request", _validation_detail(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail
        if exc.status_code == 400 and str(detail).startswith("There was an error parsing the body"):
            # FastAPI's answer to a body it cannot decode (GBK, Latin-1): a malformed request like any other
            return _error(422, "invalid_request", "body: not UTF-8 JSON; send the texts as UTF-8 with Content-Type: application/json")
        if exc.status_code == 404:
            detail = f"no endpoint {request.url.path}; see /docs or /openapi.json"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path} (allowed: {(exc.headers or {}).get('Allow', '?')})"
        return _error(exc.status_code, _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}"), str(detail), exc.headers)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> Response:  # the traceback goes to the server's log, not the client
        return _error(500, "internal_error", f"the server failed to handle the request ({type(exc).__name__})")

    endpoints = frozenset(getattr(r, "path", "") for r in app.routes)
    max_body = max_texts * (max_chars * 6 + 8) + 65_536  # every character \u-escaped, plus JSON punctuation
    app.add_middleware(_Observe, metrics=metrics, endpoints=endpoints, max_body=max_body)
    app.state.predictor, app.state.metrics = predictor, metrics
    return app


def _validation_detail(errors: list[dict[str, Any]], limit: int = 5) -> str:
    parts = []
    for e in errors[:limit]:
        loc = [p for p in e.get("loc", ()) if p != "body"]
        if e.get("type") == "json_invalid":
            parts.append(f"body: not valid JSON at character {loc[0] if loc else '?'} ({e.get('ctx', {}).get('error', e['msg'])})")
            continue
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"
        message = e["msg"]
        if field == "body" and e.get("type") in ("model_attributes_type", "dict_type", "missing"):
            message += '; send a JSON object such as {"texts": ["..."]} with Content-Type: application/json'
        parts.append(f"{field}: {message}")
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def _render_page(model: str, version: str, n_labels: int, max_len: int | None, max_chars: int) -> str:
    if not PAGE.is_file():
        raise ZhclsError(f"{PAGE} is missing from the installed package", hint="reinstall zhcls")
    values = {"model": model, "version": version, "n_labels": str(n_labels), "max_len": str(max_len or 0), "max_chars": str(max_chars)}
    page = PAGE.read_text(encoding="utf-8")
    for key, value in values.items():
        page = page.replace("{{" + key + "}}", html.escape(value))
    return page


def app_from_env() -> FastAPI:
    """App factory for multi-process servers: `uvicorn --factory zhcls.serve.http:app_from_env`, with the
    bundle in ZHCLS_SERVE_BUNDLE and optional ZHCLS_SERVE_THREADS, _MAX_TEXTS, _MAX_CHARS."""
    bundle = os.environ.get(ENV_PREFIX + "BUNDLE")
    if not bundle:
        raise ZhclsError(f"{ENV_PREFIX}BUNDLE is not set", hint="set it to a bundle directory, or use `zhcls serve BUNDLE`")

    def number(name: str, default: int) -> int:
        value = os.environ.get(ENV_PREFIX + name, str(default))
        if not value.isdigit() or int(value) < 1:
            raise ZhclsError(f"{ENV_PREFIX}{name}={value!r} is not a positive integer")
        return int(value)

    predictor = Predictor(bundle, threads=number("THREADS", 1))
    return create_app(predictor, max_texts=number("MAX_TEXTS", DEFAULT_MAX_TEXTS), max_chars=number("MAX_CHARS", DEFAULT_MAX_CHARS))
