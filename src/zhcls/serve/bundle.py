"""A bundle: everything needed to predict, verified by the sha256 of every file before it is used.

bundle/
  manifest.json     model, versions, labels, metrics, data fingerprint, input spec, parity, latency, sha256 per file
  model.onnx        ids [B, T] int64, lengths [B] int64 -> logits [B, K]      (neural models)
  linear.safetensors  idf, coef, intercept                                   (tfidf.v1)
  tokenizer.json    normalization, tokenizer and vocabulary: the code that trained the model reads it
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..artifact import read_json
from ..errors import ZhclsError

MANIFEST = "manifest.json"
FORMAT = "zhcls-bundle"
SCHEMA_VERSION = 1


class BundleError(ZhclsError):
    """A bundle is missing, incomplete or altered since it was written."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def load_manifest(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise BundleError(f"{path}: not a bundle (no {MANIFEST})", hint="create one with `zhcls export RUN -o BUNDLE`")
    try:
        manifest = read_json(path / MANIFEST)
    except ValueError as exc:
        raise BundleError(f"{path / MANIFEST}: not valid JSON ({exc})", hint="export the bundle again") from None
    if manifest.get("format") != FORMAT or manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{path}: unsupported bundle format {manifest.get('format')!r} v{manifest.get('schema_version')}")
    if verify:
        for name, digest in manifest["files"].items():
            file = path / name
            if not file.is_file():
                raise BundleError(f"{path}: incomplete bundle, {name} is missing", hint="copy the whole bundle directory, or export it again")
            if sha256_file(file) != digest:
                raise BundleError(f"{file}: sha256 does not match the manifest; the file was changed after export", hint="export the bundle again from its run")
    return manifest
