"""A bundle: everything needed to predict, verified as a whole before it is used.

bundle/
  manifest.json     model, versions, labels, metrics, data fingerprint, input spec, parity, latency,
                    sha256 per file, and `digest`: the sha256 of the manifest itself (without that field)
  model.onnx        ids [B, T] int64, lengths [B] int64 -> logits [B, K]      (neural models)
  linear.safetensors  idf, coef, intercept (int8: coef_int8, coef_scale, coef_block) (tfidf.v1)
  tokenizer.json    normalization, tokenizer and vocabulary: the code that trained the model reads it

The digest covers everything that decides a prediction: the labels and input spec in the manifest, and
through `files` every other file. A loader refuses a bundle whose digest, file hashes or file list do not
match, so an edited label list or an emptied `files` is caught like a changed graph. The digest is
printed at export and stored by the model registry, which checks it again when it resolves a version.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from ..artifact import is_temp_dir, read_json, sha256_file
from ..errors import ZhclsError

MANIFEST = "manifest.json"
SIGNATURE = "model.sig"  # an optional signature over every file (serve/signing.py); not in `files`
FORMAT = "zhcls-bundle"
SCHEMA_VERSION = 1
DIGEST = "digest"
# files each backend reads besides the manifest; a bundle whose `files` leaves one out is refused
REQUIRED_FILES = {"onnx": ("model.onnx",), "linear": ("linear.safetensors",), "ensemble": ("ensemble.safetensors",), "joint": ("model.onnx", "tagger.json")}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXPORT_AGAIN = "export the bundle again from its run (`zhcls export RUN -o BUNDLE`)"


class BundleError(ZhclsError):
    """A bundle is missing, incomplete or altered since it was written."""


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no spaces, UTF-8), `digest` left out, so the
    value does not depend on how the file is indented."""
    body = {k: v for k, v in manifest.items() if k != DIGEST}
    try:
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or inf somewhere: no valid JSON has them, so no bundle may
        raise BundleError(f"the manifest holds a non-finite number: {_first_non_finite(body)}", hint=_EXPORT_AGAIN) from None
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Set `digest` on `manifest` (in place, and returned); call it last, after `files` is filled in."""
    manifest.pop(DIGEST, None)
    manifest[DIGEST] = manifest_digest(manifest)
    return manifest


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def load_manifest(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """The manifest of the bundle at `path`. With `verify` (always, except inside export itself): the
    manifest's digest, the sha256 of every file, and that `files` lists exactly the files present and
    every file the backend needs."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise BundleError(f"{path}: not a bundle (no {MANIFEST})", hint="create one with `zhcls export RUN -o BUNDLE`")
    if verify and is_temp_dir(path):
        raise BundleError(
            f"{path}: the temporary directory of an unfinished export, which never passed the parity check",
            hint="use the bundle directory the export was writing (without the leading '.' and '.tmp'), or export again",
        )
    try:
        manifest = read_json(path / MANIFEST)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BundleError(f"{path / MANIFEST}: not valid JSON ({str(exc)[:200]})", hint=_EXPORT_AGAIN) from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path / MANIFEST}: expected a JSON object, got {type(manifest).__name__}", hint=_EXPORT_AGAIN)
    if manifest.get("format") != FORMAT or manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{path}: unsupported bundle format {manifest.get('format')!r} v{manifest.get('schema_version')}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise BundleError(f"{path / MANIFEST}: `files` is missing, empty or malformed; the bundle cannot be verified", hint=_EXPORT_AGAIN)
    if verify:
        _verify(path, manifest, files)
    return manifest


def _verify(path: Path, manifest: dict[str, Any], files: dict[str, str]) -> None:
    recorded = manifest.get(DIGEST)
    if not isinstance(recorded, str):
        raise BundleError(f"{path / MANIFEST}: no digest; the bundle was exported by an older zhcls or edited", hint=_EXPORT_AGAIN)
    if manifest_digest(manifest) != recorded:
        raise BundleError(f"{path / MANIFEST}: the manifest was changed after export (its digest does not match)", hint=_EXPORT_AGAIN)
    if "parity" not in manifest:  # written only once the exported model matched the trained one
        raise BundleError(f"{path}: this bundle never passed export's parity check (an interrupted export?)", hint=_EXPORT_AGAIN)
    backend = manifest.get("backend")
    for name in ("tokenizer.json", *REQUIRED_FILES.get(str(backend), ())):
        if name not in files:
            raise BundleError(f"{path / MANIFEST}: `files` does not cover {name}, which the {backend} backend reads", hint=_EXPORT_AGAIN)
    present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() or p.is_symlink()} - {MANIFEST, SIGNATURE}
    extra = sorted(present - set(files))
    if extra:
        raise BundleError(
            f"{path}: {', '.join(extra[:5])} {'is' if len(extra) == 1 else 'are'} not in the manifest; a bundle holds exactly the files it lists",
            hint="remove the extra files, or export the bundle again",
        )
    root = path.resolve()
    for name, digest in files.items():
        file = path / name
        if not _SHA256.match(digest) or name.startswith("/") or ".." in Path(name).parts or not file.resolve().is_relative_to(root):
            raise BundleError(f"{path / MANIFEST}: malformed entry in `files`: {name!r}", hint=_EXPORT_AGAIN)
        if not file.is_file():
            raise BundleError(f"{path}: incomplete bundle, {name} is missing", hint="copy the whole bundle directory, or export it again")
        if sha256_file(file) != digest:
            raise BundleError(f"{file}: sha256 does not match the manifest; the file was changed after export", hint=_EXPORT_AGAIN)


def check_finite_numbers(manifest: dict[str, Any], key: str = "parity") -> None:
    """Refuse a manifest whose `key` section holds NaN or inf: a parity of `max |dp| nan` compares false
    against every limit, so it would pass a gate written as `diff > limit`."""
    bad = _first_non_finite(manifest.get(key, {}), key)
    if bad:
        raise BundleError(
            f"the exported model's outputs are not finite ({bad}): the trained model's weights hold NaN or inf",
            hint="nothing was written; retrain with a lower training.lr (the run's log.jsonl shows where the loss diverged)",
        )


def _first_non_finite(value: Any, where: str = "") -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} = {value}"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _first_non_finite(v, f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None
