"""zhcls serve BUNDLE [--host 127.0.0.1] [--port 8000] [--workers N] [--threads T] [--max-texts N] [--max-chars N]"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Optional

import typer

from . import _common

# The same defaults as zhcls.serve.http.create_app (not imported: that would load FastAPI for every command).
MAX_TEXTS = 256
MAX_CHARS = 10_000


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    bundle: Path = typer.Argument(..., help="Bundle directory (`zhcls export`), or registry://NAME@ALIAS."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 exposes the model to the network (no authentication)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes, each loading its own copy of the model."),
    threads: int = typer.Option(1, "--threads", min=1, help="onnxruntime threads per prediction."),
    max_texts: int = typer.Option(MAX_TEXTS, "--max-texts", min=1, help="Most texts in one request (more: 413)."),
    max_chars: int = typer.Option(MAX_CHARS, "--max-chars", min=1, help="Most characters in one text (more: 413)."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request to stderr (costs throughput)."),
    require_signature: Optional[Path] = typer.Option(
        None, "--require-signature", metavar="PUBLIC_KEY", help="Serve only a bundle whose signature verifies with this PEM public key."
    ),
) -> None:
    """Serve a bundle over HTTP.

    POST /v1/predict, GET /v1/model, /healthz, /metrics, and a try-it page at /."""
    from ..errors import ZhclsError
    from ..serve.model_registry import resolve_bundle
    from ..serve.predictor import Predictor

    bundle = resolve_bundle(bundle)
    if require_signature is not None:
        from ..serve.signing import verify_signature

        verify_signature(bundle, require_signature)  # an unsigned or re-signed bundle fails here, exit 2

    try:
        import uvicorn

        from ..serve.http import ENV_PREFIX, bundle_version, create_app
    except ImportError as exc:
        raise ZhclsError(f"serving needs the serve extra ({exc.name} is not installed)", hint="pip install 'zhcls[serve]'") from None
    predictor = Predictor(bundle, threads=threads)  # a bad bundle fails here, with exit 2, before anything listens
    _check_port(host, port)
    if not _common.STATE.quiet:
        if not _is_loopback(host):
            _common.err(f"warning: listening on {host}: anyone who can reach this machine can use the model (there is no authentication)")
        shown = f"[{host}]" if ":" in host else host
        _common.err(f"serving {predictor.manifest['model']} ({bundle_version(predictor.manifest)}) from {bundle} with {workers} worker(s)")
        _common.err(f"  page http://{shown}:{port}/   API POST /v1/predict   docs /docs   metrics /metrics")
    options = {"host": host, "port": port, "access_log": access_log, "log_level": "warning" if _common.STATE.quiet else "info"}
    if workers == 1:
        uvicorn.run(create_app(predictor, max_texts=max_texts, max_chars=max_chars), **options)
        return
    # Several processes need an import string: each worker builds its own app from these variables.
    del predictor
    os.environ.update({
        ENV_PREFIX + "BUNDLE": str(bundle.resolve()), ENV_PREFIX + "THREADS": str(threads),
        ENV_PREFIX + "MAX_TEXTS": str(max_texts), ENV_PREFIX + "MAX_CHARS": str(max_chars),
    })
    from uvicorn.supervisors import Multiprocess

    # uvicorn.run(..., workers=N) binds socket.socket(family) (protocol 0); the workers' accepted connections
    # inherit protocol 0, so asyncio never sets TCP_NODELAY on them, and every response written in two parts
    # waits for the client's delayed ACK: 40+ ms per request. The same socket, declared TCP, avoids that.
    config = uvicorn.Config("zhcls.serve.http:app_from_env", factory=True, workers=workers, **options)
    try:
        Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()
    except KeyboardInterrupt:
        pass


def tcp_listener(sock: socket.socket) -> socket.socket:
    """`sock` (an inheritable listening socket) re-wrapped with proto IPPROTO_TCP, so that asyncio sets
    TCP_NODELAY on the connections it accepts (it checks the proto attribute, which accepted sockets copy)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto == socket.IPPROTO_TCP:
        return sock
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    """Fail with a clear message (exit 2) when the address is taken, instead of uvicorn's log line and exit 1."""
    from ..errors import ZhclsError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ZhclsError(f"--host {host!r} is not an address this machine can listen on ({exc.strerror})", hint="use 127.0.0.1 or 0.0.0.0") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does, so TIME_WAIT is no obstacle
        try:
            probe.bind(address)
        except OSError as exc:
            raise ZhclsError(f"cannot listen on {host}:{port}: {exc.strerror}", hint="is another server running there? choose another --port") from None
