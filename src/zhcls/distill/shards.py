"""Sharded teacher labelling: N processes (a torchrun job, a Slurm or Kubernetes job array) each label
one shard of the texts, and the shards merge into the very file one process writes.

A shard is a run of whole batches, so the teacher sees exactly the batches a single process gives it and
the merged file equals the single-process one byte for byte (same teacher, same threads). Each shard
writes OUTPUT.shard-K-of-N through its own .partial file, so it resumes on its own after a kill. Every
shard looks at the others when it finishes; the last one merges: it writes OUTPUT (and the cache entry a
single process would have written) and removes the shard files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..artifact import write_bytes
from ..errors import ConfigError
from .soft import Progress, SoftLabels, cache_root, label_into, read_soft_targets, soft_header
from .teachers import Teacher


@dataclass
class ShardOutcome:
    shard: tuple[int, int]  # (K, N)
    rows: int  # texts in this shard
    resumed_rows: int = 0  # rows of this shard found written by an interrupted run
    merged: SoftLabels | None = None  # the whole file, once every shard is done (this one merged, or found it done)
    pending: list[int] = field(default_factory=list)  # shards still labelling when this one finished


def parse_shard(spec: str) -> tuple[int, int]:
    """"K/N" -> (K, N), 0 <= K < N."""
    try:
        k, n = (int(part) for part in spec.split("/"))
    except ValueError:
        k = n = -1
    if not 0 <= k < n:
        raise ConfigError(f"--shard {spec!r} is not K/N with 0 <= K < N", hint="number shards from 0: --shard 0/4 ... --shard 3/4")
    return k, n


def shard_bounds(n_texts: int, batch_size: int, k: int, n: int) -> tuple[int, int]:
    """Texts [start, stop) of shard k of n: whole batches, as evenly spread as they go."""
    batches = -(-n_texts // batch_size)
    return min(n_texts, k * batches // n * batch_size), min(n_texts, (k + 1) * batches // n * batch_size)


def shard_file(out: Path, k: int, n: int) -> Path:
    return out.with_name(f"{out.name}.shard-{k}-of-{n}")


def label_shard(
    teacher: Teacher,
    texts: Sequence[str],
    shard: tuple[int, int],
    *,
    out: str | Path,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> ShardOutcome:
    """Label shard K of N of `texts` into OUTPUT.shard-K-of-N; merge into `out` when it is the last to finish."""
    texts, out = list(texts), Path(out)
    k, n = shard
    header = soft_header(teacher, texts)
    cached = cache_root(cache_dir) / f"{header['key']}.jsonl" if use_cache else None
    start, stop = shard_bounds(len(texts), batch_size, k, n)
    outcome = ShardOutcome(shard, stop - start)
    if cached is not None and cached.is_file():  # labelled before: the cache answers every shard
        if _key_of(out) != header["key"]:
            write_bytes(out, cached.read_bytes())
        outcome.merged = read_soft_targets(out)
        outcome.merged.cached = True
    elif _key_of(out) == header["key"]:  # the shards were merged already (a rerun of a finished job)
        outcome.merged = read_soft_targets(out)
    if outcome.merged is not None:
        if progress:
            progress(outcome.rows, outcome.rows)
        return outcome
    mine = shard_file(out, k, n)
    own = _shard_header(header, start, stop, shard)
    if _key_of(mine) != own["key"]:
        outcome.resumed_rows = label_into(mine, own, teacher, texts[start:stop], batch_size=batch_size, progress=progress)
    elif progress:
        progress(outcome.rows, outcome.rows)
    outcome.merged, outcome.pending = merge_shards(out, header, n, batch_size, cached)
    return outcome


def merge_shards(out: Path, header: dict, n: int, batch_size: int, cached: Path | None = None) -> tuple[SoftLabels | None, list[int]]:
    """Concatenate the N finished shard files behind `header` into `out` (and `cached`); (None, pending
    shards) while some are not finished."""
    expected = [_shard_header(header, *shard_bounds(header["n"], batch_size, j, n), (j, n))["key"] for j in range(n)]
    files = [shard_file(out, j, n) for j in range(n)]
    pending = [j for j, (f, key) in enumerate(zip(files, expected)) if _key_of(f) != key]
    if pending:
        return None, pending
    parts = [(json.dumps(header, ensure_ascii=False) + "\n").encode("utf-8")]
    try:
        for f in files:
            data = f.read_bytes()
            parts.append(data[data.index(b"\n") + 1 :])
    except FileNotFoundError:  # a shard that finished at the same moment merged them and cleaned up
        if _key_of(out) == header["key"]:
            return read_soft_targets(out), []
        raise
    blob = b"".join(parts)
    if cached is not None:
        write_bytes(cached, blob)
    write_bytes(out, blob)
    for f in files:
        f.unlink(missing_ok=True)
    return read_soft_targets(out), []


def _shard_header(header: dict, start: int, stop: int, shard: tuple[int, int]) -> dict:
    """A shard file's header: its own key (the labelling's key and its range), so a file left by another
    batch size or shard count is never merged or resumed."""
    key = hashlib.sha256(f"{header['key']}:{start}:{stop}".encode()).hexdigest()
    return {**header, "key": key, "of": header["key"], "n": stop - start, "shard": list(shard), "start": start, "stop": stop}


def _key_of(path: Path) -> str | None:
    """The key in the header line of a soft-target file (None when there is no such file)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.readline()).get("key")
    except (OSError, ValueError, AttributeError):
        return None
