"""Server load benchmark: `zhcls serve BUNDLE --workers 2` on loopback under a bounded, closed-loop load.

    .venv/bin/python benchmarks/serve_load.py BUNDLE                 # 60 s, 8 connections; writes benchmarks/results/serve_load.{json,md}
    .venv/bin/python benchmarks/serve_load.py BUNDLE --duration 5    # smoke run (with --results-dir elsewhere)

The server runs as a subprocess (the CLI, as a user starts it). The load generator is this process: asyncio,
raw HTTP/1.1 over keep-alive connections, each connection sending one single-text `POST /v1/predict` and
waiting for the answer before the next (closed loop: `--connections` requests in flight at most, so the
load is bounded and the server is never flooded). Texts cycle through the dev texts given (TNEWS titles
by default). Reported: sustained requests/s, latency p50/p90/p99/max as the client sees it (connection,
HTTP, JSON, tokenization and the model), errors (non-200 answers and failed connections), and the
server's resident memory (the parent and its worker processes, from /proc) sampled every few seconds,
after a warm-up and at the end: growth over the run is the memory check. The generator's own CPU use is
reported too: on a 2-core machine it competes with the two workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _harness as h
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXTS = h.default_data_dir() / "fewclue" / "tnews" / "dev_few_all.json"
MAX_RSS_GROWTH_MIB = 5.0  # "no memory growth": the server's RSS at the end within this of the RSS after warm-up


# -- the server ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, port: int, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "zhcls", "--quiet", "serve", str(bundle), "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: the server exited with {proc.returncode}: {proc.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"error: the server did not answer /healthz within {timeout:.0f} s")


def process_tree(root: int) -> list[int]:
    """root and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def rss_mib(root: int) -> dict[str, Any]:
    """Resident memory of the server's processes, MiB: the total and per process."""
    per = {}
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError):
            continue
        per[str(pid)] = round(kb / 1024, 1)
    return {"total": round(sum(per.values()), 1), "processes": per}


# -- the load ---------------------------------------------------------------------------------------------
def request_bytes(text: str, port: int) -> bytes:
    body = json.dumps({"texts": [text]}, ensure_ascii=False).encode("utf-8")
    head = f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:")), None)
    if length is None:
        raise ValueError("response without Content-Length")
    return status, await reader.readexactly(length)


async def connection(port: int, requests: list[bytes], start: int, stop_at: float, record: list, errors: dict[str, int]) -> None:
    """One keep-alive connection, one request in flight, until stop_at; reconnects after a failure."""
    i = start
    clock = time.perf_counter
    writer = None
    while clock() < stop_at:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            t0 = clock()
            writer.write(requests[i % len(requests)])
            status, body = await read_response(reader)
            t1 = clock()
            i += 1
            if status != 200:
                errors[f"http_{status}"] = errors.get(f"http_{status}", 0) + 1
            record.append((t1, t1 - t0))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def drive(port: int, requests: list[bytes], connections: int, seconds: float) -> tuple[list, dict[str, int]]:
    record: list[tuple[float, float]] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(*(connection(port, requests, k * 997, stop_at, record, errors) for k in range(connections)))
    return record, errors


def run_load(port: int, requests: list[bytes], connections: int, seconds: float, server_pid: int, sample_every: float) -> dict[str, Any]:
    """Drive the server for `seconds`, sampling its RSS every `sample_every` seconds (in a thread beside the loop)."""
    import threading

    samples: list[tuple[float, float]] = []
    done = threading.Event()
    t_start = time.perf_counter()

    def sampler() -> None:
        while not done.wait(sample_every):
            samples.append((round(time.perf_counter() - t_start, 1), rss_mib(server_pid)["total"]))

    thread = threading.Thread(target=sampler, daemon=True)
    cpu0 = os.times()
    thread.start()
    record, errors = asyncio.run(drive(port, requests, connections, seconds))
    done.set()
    thread.join()
    cpu1 = os.times()
    wall = time.perf_counter() - t_start
    lat = np.asarray([r[1] for r in record]) * 1e3
    return {
        "seconds": round(wall, 2),
        "requests": len(record),
        "requests_per_s": round(len(record) / wall, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 3),
            "p90": round(float(np.percentile(lat, 90)), 3),
            "p99": round(float(np.percentile(lat, 99)), 3),
            "max": round(float(lat.max()), 3),
            "mean": round(float(lat.mean()), 3),
        }
        if len(lat)
        else None,
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "rss_samples_mib": samples,
        "generator_cpu_cores": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall, 3),
    }


# -- report -----------------------------------------------------------------------------------------------
def environment(argv: list[str]) -> dict[str, Any]:
    env = h.environment("benchmarks/serve_load.py", argv, "onnxruntime", "fastapi", "uvicorn", "numpy", prefix="python")
    env["loadavg_at_start"] = env["machine"]["loadavg_at_start"]  # where the Markdown reads it
    return env


def render_markdown(r: dict[str, Any]) -> str:
    env, run, mem = r["environment"], r["run"], r["memory"]
    lat = run["latency_ms"] or {}
    lines = [
        "# zhcls server load benchmark",
        "",
        f"- command: `{env['command']}`",
        f"- machine: {env['machine']['cpu_model']}, {env['machine']['os_cpu_count']} cores, {env['machine']['platform']}",
        f"- date: {env['started']}; versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + f"; git {env['git']['commit'][:12]}" + (" (with uncommitted changes)" if env["git"]["dirty_tracked_files"] else ""),
        f"- conditions: load average {env['loadavg_at_start']} before the server started, {r['loadavg_at_end']} at the end; "
        f"the load generator itself used {run['generator_cpu_cores']} cores. The machine is shared: other processes' CPU use "
        "lowers these figures and raises p99.",
        f"- server: `zhcls serve {r['bundle']} --workers {r['workers']}` on 127.0.0.1 ({r['model']}, {r['graph']} graph)",
        f"- load: {r['connections']} keep-alive connections, closed loop (one request in flight each), single-text `POST /v1/predict`, "
        f"{r['n_texts']} texts cycled (mean {r['mean_chars']} characters); {r['warmup_seconds']} s warm-up, then {r['duration_seconds']} s measured",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| requests (measured run) | {run['requests']:,} in {run['seconds']} s |",
        f"| sustained requests/s | {run['requests_per_s']:,.1f} |",
        f"| latency p50 / p90 / p99 / max (ms) | {lat.get('p50', float('nan')):.2f} / {lat.get('p90', float('nan')):.2f} / {lat.get('p99', float('nan')):.2f} / {lat.get('max', float('nan')):.2f} |",
        f"| errors | {run['errors']} {run['errors_by_kind'] or ''} |",
        f"| server RSS after warm-up / at the end (MiB, all processes) | {mem['start_mib']:.1f} / {mem['end_mib']:.1f} |",
        f"| RSS growth over the run | {mem['growth_mib']:+.1f} MiB ({mem['growth_pct']:+.2f}%) |",
        "",
        "## Verdicts",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [f"| {v['target']} | {v['measured']} | {'**yes**' if v['met'] else '**NO**'} |" for v in r["verdicts"]]
    lines += ["", "RSS samples (seconds into the measured run, MiB): " + ", ".join(f"{t:g}s {m:.1f}" for t, m in run["rss_samples_mib"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="bundle directory (zhcls export)")
    p.add_argument("--texts", type=Path, default=DEFAULT_TEXTS, help="JSON lines / CSV / text file of texts (default: TNEWS dev titles)")
    p.add_argument("--text-field", default="sentence")
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=15.0, help="seconds of load before the RSS baseline is taken (allocators settle in the first ~10 s)")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)

    from zhcls.data.readers import ReadOptions, read_examples
    from zhcls.serve.bundle import load_manifest

    manifest = load_manifest(args.bundle)
    texts = [e.text for e in read_examples(args.texts, ReadOptions(text_field=args.text_field)) if e.text.strip()]
    random.Random(0).shuffle(texts)
    env = environment(argv)
    port = free_port()
    requests = [request_bytes(t, port) for t in texts]
    server = start_server(args.bundle, port, args.workers)
    try:
        wait_healthy(port, server)
        warm = run_load(port, requests, args.connections, args.warmup, server.pid, args.sample_every)
        start = rss_mib(server.pid)
        run = run_load(port, requests, args.connections, args.duration, server.pid, args.sample_every)
        end = rss_mib(server.pid)
    finally:
        os.killpg(server.pid, 15)  # the server and its workers: its own session, started above
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
    growth = end["total"] - start["total"]
    lat = run["latency_ms"] or {}
    result: dict[str, Any] = {
        "schema": 1,
        "environment": env,
        "bundle": str(args.bundle),
        "model": manifest["model"],
        "graph": manifest.get("input", {}).get("graph", manifest["backend"]),
        "workers": args.workers,
        "connections": args.connections,
        "n_texts": len(texts),
        "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "warmup_seconds": args.warmup,
        "duration_seconds": args.duration,
        "warmup": {k: warm[k] for k in ("requests", "errors")},
        "run": run,
        "memory": {
            "start_mib": start["total"],
            "end_mib": end["total"],
            "growth_mib": round(growth, 1),
            "growth_pct": round(100 * growth / start["total"], 2) if start["total"] else 0.0,
            "processes_at_start": start["processes"],
            "processes_at_end": end["processes"],
        },
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    result["verdicts"] = [
        {"target": "zero errors", "measured": f"{run['errors']} errors in {run['requests']:,} requests", "met": run["errors"] == 0},
        {
            "target": f"no memory growth (RSS at the end within {MAX_RSS_GROWTH_MIB:g} MiB of RSS after warm-up)",
            "measured": f"{growth:+.1f} MiB ({start['total']:.1f} -> {end['total']:.1f} MiB)",
            "met": growth <= MAX_RSS_GROWTH_MIB,
        },
        {"target": "report sustained requests/s and p99", "measured": f"{run['requests_per_s']:,.1f} req/s, p99 {lat.get('p99', float('nan')):.2f} ms", "met": True},
    ]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    h.write_results(args.results_dir / "serve_load.json", result, render_markdown)
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
