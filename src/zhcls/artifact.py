"""Atomic file and directory writes: a reader sees the old artifact or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import DataError, ZhclsError

CHECKSUMS = "SHA256SUMS"  # `sha256sum -c SHA256SUMS` checks a model directory by hand too
# .NAME.PID-RANDOM.tmp: the temporary directory of atomic_dir, or file of write_bytes, while `path` is being
# written by process PID
_TEMP_DIR = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+\.tmp$")
LEGACY_TEMP_AGE_S = 3600.0  # temp dirs of zhcls before the pid was in the name: stale after an hour


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, then rename it over `path`. An output
    path that is a directory, or a place that cannot be written, is a ZhclsError naming it. Temporary
    files that killed writers of `path` left behind are removed first."""
    path = Path(path)
    if path.is_dir():
        raise ZhclsError(f"{path}: is a directory; the output is a file", hint=f"name a file, e.g. {path / 'out'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_dirs(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ZhclsError(f"{path}: cannot write here ({exc.strerror or exc})", hint="choose a directory you can write to") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared and served
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))  # byte-exact: no newline translation


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_temp_dir(path: str | Path) -> bool:
    """Whether `path` is the temporary directory of an `atomic_dir` write (finished or not, it is never
    the artifact itself: a killed export leaves one that never passed its parity check)."""
    return _TEMP_DIR.match(Path(path).name) is not None


def remove_stale_temp_dirs(path: str | Path) -> list[Path]:
    """Remove the temporary directories (atomic_dir) and files (write_bytes) that writes of `path` left
    behind when their process was killed: those of processes that no longer run (and, from before the pid
    was recorded, those older than an hour). A live writer's are left alone. Returns what was removed."""
    path = Path(path)
    removed = []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    for tmp in siblings:
        m = _TEMP_DIR.match(tmp.name)
        if m is None or m["name"] != path.name or tmp.is_symlink() or not (tmp.is_dir() or tmp.is_file()):
            continue
        if m["pid"] is not None:
            stale = not _alive(int(m["pid"]))
        else:
            try:
                stale = time.time() - tmp.stat().st_mtime > LEGACY_TEMP_AGE_S
            except OSError:
                continue
        if stale:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or unknowable: keep its directory
    return True


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces `path` in two renames. Temporary
    directories that killed writers of `path` left behind are removed first."""
    path = Path(path)
    if path.exists() and not path.is_dir():  # replacing it would hide the user's file as .NAME.old
        raise ZhclsError(f"{path}: is a file; the output is a directory", hint="choose a new directory name, or move the file away")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_dirs(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise ZhclsError(f"{path}: cannot write here ({exc.strerror or exc})", hint="choose a directory you can write to") from None
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.parent / f".{path.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(path: str | Path) -> Path:
    """After a kill between the two renames of `atomic_dir`, the previous version sits in `.NAME.old`."""
    path = Path(path)
    old = path.parent / f".{path.name}.old"
    if not path.exists() and old.exists():
        os.replace(old, path)
    return path


def write_checksums(path: str | Path) -> None:
    """Record the sha256 of every file below `path` in `path/SHA256SUMS` (the format of sha256sum)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.relative_to(path).as_posix() != CHECKSUMS)
    lines = "".join(f"{sha256_file(p)}  {p.relative_to(path).as_posix()}\n" for p in files)
    write_text(path / CHECKSUMS, lines)


def verify_checksums(path: str | Path) -> bool:
    """Check the files of `path` against its SHA256SUMS; False when there is none (a directory written
    before zhcls recorded them), a DataError naming the file when one is missing or changed."""
    path = Path(path)
    sums = path / CHECKSUMS
    if not sums.is_file():
        return False
    hint = "the file was damaged or edited after it was saved; restore it from a copy, or train the model again"
    try:
        text = sums.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{sums}: unreadable ({exc})", hint=hint) from None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or not name or name.startswith("/") or ".." in Path(name).parts:
            raise DataError(f"{sums}:{lineno}: malformed line", hint=hint)
        file = path / name
        if not file.is_file():
            raise DataError(f"{file}: missing, though {CHECKSUMS} lists it", hint=hint)
        if sha256_file(file) != digest:
            raise DataError(f"{file}: sha256 does not match {CHECKSUMS}", hint=hint)
    return True


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in blocks (data files and bundles can be large)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def dir_digest(path: str | Path) -> str:
    """sha256 over the names and contents of the files below `path` (a model directory)."""
    path = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
