"""Soft targets: a teacher's probabilities (and logits, where it has them) for a list of texts.

Written as JSON lines: a header line, then one row per text in input order,

    {"zhcls_soft_targets": 1, "key": ..., "teacher": ..., "teacher_paths": [...], "labels": [...], "n": N}
    {"text": "...", "probs": [...], "logits": [...]}

Labelling is batched and resumable: rows are appended in chunks, each chunk flushed and fsynced, and a
restart keeps the rows already written (a torn last line is cut off) and labels only the rest. The work
file becomes the final file by one rename, so a finished file is always whole.

Finished files are cached under a key that hashes the teacher's identity (its model files) and the
texts, so a second distillation with the same teacher and transfer set does not run the teacher again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..artifact import write_bytes
from ..errors import DataError
from .teachers import Teacher

FORMAT_VERSION = 1
Progress = Callable[[int, int], None]  # (rows done, rows in all)


@dataclass
class SoftLabels:
    labels: tuple[str, ...]
    texts: list[str]
    probs: np.ndarray  # [n, k]
    logits: np.ndarray | None  # [n, k] or None
    path: Path | None = None
    cached: bool = False  # True: read from the cache, the teacher was not run
    resumed_rows: int = 0  # rows found already written by an interrupted run


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`, else $ZHCLS_CACHE_DIR, else ~/.cache/zhcls; soft targets go in its soft-targets/."""
    base = cache_dir or os.environ.get("ZHCLS_CACHE_DIR") or Path.home() / ".cache" / "zhcls"
    return Path(os.path.expanduser(str(base))) / "soft-targets"


def content_key(teacher_identity: str, texts: Sequence[str]) -> str:
    h = hashlib.sha256(teacher_identity.encode() + b"\0")
    for text in texts:
        h.update(text.encode("utf-8") + b"\0")
    return h.hexdigest()


def label_texts(
    teacher: Teacher,
    texts: Sequence[str],
    *,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> SoftLabels:
    """Soft targets of `teacher` for `texts`, from the cache when it has them. `out`: also write them there."""
    if not use_cache and out is None:
        raise ValueError("label_texts needs an output file when the cache is off")
    texts = list(texts)
    header = soft_header(teacher, texts)
    key = header["key"]
    final = cache_root(cache_dir) / f"{key}.jsonl" if use_cache else Path(out)
    if use_cache and final.is_file():
        result = read_soft_targets(final)
        result.cached = True
        if progress:
            progress(len(texts), len(texts))
        if out is not None:
            write_bytes(out, final.read_bytes())
        return result
    done = label_into(final, header, teacher, texts, batch_size=batch_size, progress=progress)
    result = read_soft_targets(final)  # what a cache hit would return, to the last digit
    result.resumed_rows = done
    if use_cache and out is not None:
        write_bytes(out, final.read_bytes())
    return result


def label_into(final: Path, header: dict, teacher: Teacher, texts: Sequence[str], *, batch_size: int, progress: Progress | None = None) -> int:
    """Label `texts` into `final` (header line, then one row per text) through `final`.partial, resuming the
    rows an interrupted run wrote there; returns how many rows were found written already."""
    work = final.with_name(final.name + ".partial")
    done = _resume(work, header, list(texts))
    with open(work, "ab") as f:
        if progress:
            progress(done, len(texts))
        for start in range(done, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            probs, logits = teacher.predict(batch)
            lines = []
            for i, text in enumerate(batch):
                row = {"text": text, "probs": _floats(probs[i])}
                if logits is not None:
                    row["logits"] = _floats(logits[i])
                lines.append(json.dumps(row, ensure_ascii=False) + "\n")
            f.write("".join(lines).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
            if progress:
                progress(start + len(batch), len(texts))
    os.replace(work, final)
    return done


def soft_header(teacher: Teacher, texts: Sequence[str]) -> dict:
    """The header line of `teacher`'s soft targets for `texts` (its key is also the cache key)."""
    return {
        "zhcls_soft_targets": FORMAT_VERSION, "key": content_key(teacher.identity, texts), "teacher": teacher.identity,
        "teacher_paths": teacher.paths, "labels": list(teacher.labels), "n": len(texts),
    }


def read_soft_targets(path: str | Path) -> SoftLabels:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: soft-target file not found", hint="write one with `zhcls teacher label TEACHER DATA -o FILE`")
    raw = path.read_text(encoding="utf-8").split("\n")
    try:
        header = json.loads(raw[0])
    except json.JSONDecodeError:
        header = {}
    if header.get("zhcls_soft_targets") != FORMAT_VERSION:
        raise DataError(f"{path}:1: not a zhcls soft-target file (no header line)", hint="write one with `zhcls teacher label`")
    labels = tuple(header["labels"])
    texts, probs, logits = [], [], []
    for lineno, line in enumerate(raw[1:], 2):
        if not line:
            continue
        try:
            row = json.loads(line)
            text, row_probs = row["text"], row["probs"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{path}:{lineno}: not a soft-target row (a JSON object with text and probs)",
                            hint="the file is damaged; label the data again") from None
        if len(row_probs) != len(labels):
            raise DataError(f"{path}:{lineno}: {len(row['probs'])} probabilities for {len(labels)} labels")
        texts.append(text)
        probs.append(row_probs)
        logits.append(row.get("logits"))
    if len(texts) != header["n"]:
        raise DataError(f"{path}: {len(texts)} rows, the header says {header['n']}", hint="the file is incomplete; run `zhcls teacher label` again to finish it")
    k = len(labels)
    has_logits = bool(logits) and all(z is not None for z in logits)
    return SoftLabels(
        labels, texts, np.asarray(probs, dtype=np.float32).reshape(-1, k),
        np.asarray(logits, dtype=np.float32).reshape(-1, k) if has_logits else None, path,
    )


def _resume(work: Path, header: dict, texts: list[str]) -> int:
    """Rows already in `work` for this very labelling; the file is cut back to its last whole row.
    A missing or foreign work file is started over with the header."""
    work.parent.mkdir(parents=True, exist_ok=True)
    if work.is_file():
        data = work.read_bytes()
        good, rows, pos = 0, -1, 0
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                break
            try:
                obj = json.loads(data[pos:end])
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if rows < 0:
                if obj.get("key") != header["key"]:
                    break
            elif rows >= len(texts) or obj.get("text") != texts[rows]:
                break
            rows, good, pos = rows + 1, end + 1, end + 1
        if rows >= 0:
            with open(work, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
            return rows
    write_bytes(work, (json.dumps(header, ensure_ascii=False) + "\n").encode("utf-8"))
    return 0


def _floats(row: np.ndarray) -> list[float]:
    return [float(f"{x:.7g}") for x in np.asarray(row, dtype=np.float64)]
