"""The model registry: named, immutable versions of bundles, and aliases (`production`) that move.

registry/                         root: --root, $ZHCLS_REGISTRY, or ./registry
  registry.db                     SQLite index: versions, aliases, events; every change in one transaction
  NAME/VERSION/                   a verified copy of the bundle (manifest.json, model files), read-only
  .staging/                       copies in progress; never referenced by the index

`registry://NAME@production` (an alias), `registry://NAME@VERSION`, or `registry://NAME@latest` resolve
to NAME/VERSION with `resolve_bundle`. (Not to be confused with zhcls.registry, the component registry.)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import shutil
import sqlite3
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..artifact import sha256_file
from ..errors import ZhclsError

SCHEME = "registry://"
ENV = "ZHCLS_REGISTRY"
DEFAULT_ROOT = "registry"
DB_FILE = "registry.db"
DEFAULT_ALIAS = "production"
LATEST = "latest"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
BUSY_TIMEOUT_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL, version TEXT NOT NULL, created TEXT NOT NULL, source TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL, model TEXT, metrics TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version TEXT NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY (name, alias), FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, action TEXT NOT NULL,
    name TEXT NOT NULL, version TEXT NOT NULL, alias TEXT
);
"""


class RegistryError(ZhclsError):
    """A registry name, version or alias is unknown or taken, or a bundle cannot be registered."""


def registry_root(root: str | Path | None = None) -> Path:
    return Path(root if root is not None else os.environ.get(ENV) or DEFAULT_ROOT)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def new_version_id() -> str:
    """A sortable timestamp with a random tail, e.g. 20250101T120000Z-3fa2c1 (unique across processes)."""
    return f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _check_id(value: str, what: str) -> str:
    if not NAME_RE.match(value) or value in (".", ".."):
        raise RegistryError(f"{what} {value!r} is not allowed", hint="use letters, digits, '.', '_' and '-', starting with a letter or digit")
    return value


class ModelRegistry:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = registry_root(root)

    # -- the index ---------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction; a writer takes the database's write lock up front (BEGIN IMMEDIATE), so two
        concurrent writers queue instead of failing half-way. Rolled back on any error."""
        self._check_root()
        if not write and not (self.root / DB_FILE).is_file():
            raise RegistryError(f"{self.root}: no model registry here", hint=f"add a bundle with `zhcls registry add BUNDLE --name NAME`, or set --root / ${ENV}")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.root / DB_FILE, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._db_error(exc) from None
        try:
            try:
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                if write:
                    for statement in _statements():
                        conn.execute(statement)
            except sqlite3.DatabaseError as exc:  # "file is not a database", a truncated or locked file
                raise self._db_error(exc) from None
            try:
                yield conn
            except sqlite3.DatabaseError as exc:
                conn.execute("ROLLBACK")
                raise self._db_error(exc) from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _check_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise RegistryError(f"{self.root}: is a file, not a registry directory", hint=f"pass another --root (or ${ENV}), or move the file away")
        db = self.root / DB_FILE
        if db.exists() and not db.is_file():
            raise RegistryError(f"{db}: is not a file", hint="remove it; a registry keeps its index in this file")

    def _db_error(self, exc: Exception) -> RegistryError:
        return RegistryError(
            f"{self.root / DB_FILE}: the registry index cannot be read ({exc})",
            hint="restore registry.db from a backup; the bundles themselves are in NAME/VERSION/ beside it",
        )

    # -- commands --------------------------------------------------------------------------------
    def add(self, bundle: str | Path, name: str, version: str | None = None) -> dict[str, Any]:
        """Copy `bundle` in as NAME/VERSION (immutable). Its files are checked against its manifest's
        sha256 before and after the copy; a taken version is an error, never an overwrite."""
        from .bundle import BundleError, load_manifest

        _check_id(name, "model name")
        self._check_root()
        version = _check_id(version, "version") if version is not None else new_version_id()
        if version == LATEST:
            raise RegistryError(f"version {LATEST!r} is reserved", hint="it always means the newest version")
        bundle = Path(bundle)
        manifest = load_manifest(bundle, verify=True)  # a BundleError says which file is wrong
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{name}-{version}-", dir=staging))
        try:
            copy = tmp / "bundle"
            shutil.copytree(bundle, copy)
            try:
                load_manifest(copy, verify=True)
            except BundleError as exc:
                raise RegistryError(f"{bundle}: the bundle changed while it was copied ({exc.message})", hint="add it again") from None
            _read_only(copy)
            manifest_sha = sha256_file(copy / "manifest.json")
            target = self.root / name / version
            with self._transaction(write=True) as db:
                if db.execute("SELECT 1 FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone():
                    raise RegistryError(f"{name}@{version} is already registered; versions are immutable", hint="choose another --version, or leave it out for a timestamp")
                if target.exists():  # left by a crash between the rename and the commit: not in the index, so not a version
                    _remove(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(copy, target)
                try:
                    record = {"name": name, "version": version, "created": _now(), "source": str(bundle.resolve()),
                              "manifest_sha256": manifest_sha, "model": manifest.get("model"),
                              "metrics": json.dumps(manifest.get("metrics", {}), ensure_ascii=False)}
                    db.execute("INSERT INTO versions VALUES (:name, :version, :created, :source, :manifest_sha256, :model, :metrics)", record)
                    db.execute("INSERT INTO events (at, action, name, version) VALUES (?, 'add', ?, ?)", (record["created"], name, version))
                except BaseException:
                    _remove(target)
                    raise
        finally:
            _remove(tmp)
        return self.get(name, version)

    def promote(self, name: str, version: str, alias: str = DEFAULT_ALIAS) -> dict[str, Any]:
        """Point `alias` of NAME at VERSION (moving it if it pointed elsewhere)."""
        _check_id(alias, "alias")
        if alias == LATEST:
            raise RegistryError(f"alias {LATEST!r} is reserved", hint="it always means the newest version")
        with self._transaction(write=True) as db:
            version = self._resolve(db, name, version)
            now = _now()
            db.execute("INSERT INTO aliases VALUES (?, ?, ?, ?) ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, updated = excluded.updated",
                       (name, alias, version, now))
            db.execute("INSERT INTO events (at, action, name, version, alias) VALUES (?, 'promote', ?, ?, ?)", (now, name, version, alias))
        return self.get(name, version)

    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        self._check_root()
        if not (self.root / DB_FILE).is_file():
            return []
        with self._transaction(write=False) as db:
            if not _has_tables(db):
                return []
            where, args = ("WHERE name = ?", (name,)) if name else ("", ())
            rows = db.execute(f"SELECT name, version, created, source, manifest_sha256, model, metrics FROM versions {where} ORDER BY name, created, version", args).fetchall()
            aliases = db.execute("SELECT name, alias, version FROM aliases").fetchall()
        if name and not rows:
            raise RegistryError(f"no model named {name!r} in {self.root}", hint="list them with `zhcls registry list`")
        return [self._row(r, aliases) for r in rows]

    def get(self, name: str, version: str) -> dict[str, Any]:
        with self._transaction(write=False) as db:
            version = self._resolve(db, name, version)
            row = db.execute("SELECT name, version, created, source, manifest_sha256, model, metrics FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
            aliases = db.execute("SELECT name, alias, version FROM aliases WHERE name = ?", (name,)).fetchall()
        return self._row(row, aliases)

    def path(self, name: str, ref: str = DEFAULT_ALIAS) -> Path:
        """The directory of NAME at `ref`: an alias, a version, or `latest`. Its manifest must still be the
        one registered (its digest covers every file, which the loader checks in turn)."""
        row = self.get(name, ref)
        path = Path(row["path"])
        manifest = path / "manifest.json"
        if not manifest.is_file():
            raise RegistryError(f"{name}@{row['version']}: {path} is missing", hint="the registry's files were moved or deleted; add the bundle again")
        if sha256_file(manifest) != row["manifest_sha256"]:
            raise RegistryError(
                f"{name}@{row['version']}: {manifest} is not the manifest that was registered",
                hint="the registered copy was changed; add the bundle again from its export",
            )
        return path

    def _resolve(self, db: sqlite3.Connection, name: str, ref: str) -> str:
        if not _has_tables(db) or not db.execute("SELECT 1 FROM versions WHERE name = ?", (name,)).fetchone():
            raise RegistryError(f"no model named {name!r} in {self.root}", hint="add one with `zhcls registry add BUNDLE --name NAME`")
        if ref == LATEST:
            return db.execute("SELECT version FROM versions WHERE name = ? ORDER BY created DESC, version DESC LIMIT 1", (name,)).fetchone()[0]
        hit = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, ref)).fetchone()
        if hit:
            return hit[0]
        if db.execute("SELECT 1 FROM versions WHERE name = ? AND version = ?", (name, ref)).fetchone():
            return ref
        known = [r[0] for r in db.execute("SELECT alias FROM aliases WHERE name = ? UNION SELECT version FROM versions WHERE name = ?", (name, name))]
        hint = f"aliases and versions of {name}: {', '.join(sorted(known)[:20])}"
        if ref == DEFAULT_ALIAS:
            hint = f"nothing is promoted to {DEFAULT_ALIAS} yet: `zhcls registry promote {name} VERSION`; {hint}"
        raise RegistryError(f"{name} has no alias or version {ref!r}", hint=hint)

    def _row(self, row: tuple, aliases: list[tuple]) -> dict[str, Any]:
        name, version, created, source, sha, model, metrics = row
        return {"name": name, "version": version, "created": created, "source": source, "manifest_sha256": sha, "model": model,
                "metrics": json.loads(metrics), "aliases": sorted(a for n, a, v in aliases if n == name and v == version),
                "path": str(self.root / name / version)}


def parse_uri(uri: str) -> tuple[str, str]:
    """registry://NAME[@REF] -> (NAME, REF); REF defaults to production."""
    body = uri[len(SCHEME):]
    name, _, ref = body.partition("@")
    if not name or "/" in name:
        raise RegistryError(f"{uri!r} is not a registry URI", hint="write registry://NAME@production or registry://NAME@VERSION")
    return name, ref or DEFAULT_ALIAS


def resolve_bundle(uri: str | Path, root: str | Path | None = None) -> Path:
    """`registry://NAME@ALIAS|VERSION|latest` -> the registered bundle's directory; any other path is
    returned unchanged, so a command can pass every model argument through this."""
    text = str(uri)
    if text.startswith("registry:/") and not text.startswith(SCHEME):
        text = SCHEME + text[len("registry:/"):]  # a CLI argument typed as Path: pathlib folds "//" into "/"
    if not text.startswith(SCHEME):
        return Path(uri)
    name, ref = parse_uri(text)
    return ModelRegistry(root).path(name, ref)


def _statements() -> list[str]:
    return [s.strip() for s in SCHEMA.split(";") if s.strip()]


def _has_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'versions'").fetchone() is not None


def _read_only(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            p.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _remove(path: Path) -> None:
    if path.exists():
        for p in path.rglob("*"):  # read-only files are removable on POSIX; make it so on Windows too
            if p.is_file():
                p.chmod(stat.S_IWUSR | stat.S_IRUSR)
        shutil.rmtree(path, ignore_errors=True)
