"""Signed bundles: an OpenSSF model-signing signature over every file of a bundle, made and checked
with an elliptic-curve key pair kept offline (`pip install 'zhcls[sign]'`).

    openssl ecparam -name prime256v1 -genkey -noout -out signing.pem   # private: keep it off servers
    openssl ec -in signing.pem -pubout -out signing.pub                # public: give it to whoever serves
    zhcls export RUN -o BUNDLE --sign signing.pem
    zhcls verify BUNDLE --key signing.pub
    zhcls serve BUNDLE --require-signature signing.pub

The signature (`model.sig`, a Sigstore bundle) lies in the bundle beside the files it covers; the
manifest's digest and file list leave it out, the signature covers the manifest and everything else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .bundle import SIGNATURE, BundleError, load_manifest

PASSWORD_ENV = "ZHCLS_SIGNING_KEY_PASSWORD"  # for an encrypted private key


def is_signed(bundle: str | Path) -> bool:
    return (Path(bundle) / SIGNATURE).is_file()


def check_private_key(path: str | Path) -> None:
    """Refuse a missing, unreadable or non-EC private key (before an export that would then go unsigned)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = Path(path)
    _check_key(path, "private")
    password = os.environ.get(PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=password.encode() if password else None)
    except (ValueError, TypeError) as exc:  # not PEM, encrypted without a password, a wrong password
        raise BundleError(f"{path}: cannot sign with this key ({exc})", hint=f"{_KEY_HINT}; an encrypted key's password goes in ${PASSWORD_ENV}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BundleError(f"{path}: cannot sign with this key (a {type(key).__name__.lstrip('_')}, not an elliptic-curve key)", hint=_KEY_HINT)


def sign_bundle(bundle: str | Path, private_key: str | Path) -> Path:
    """Sign the (verified) bundle with a PEM elliptic-curve private key; returns the signature's path."""
    bundle, private_key = Path(bundle), Path(private_key)
    load_manifest(bundle)  # sign only what verifies
    check_private_key(private_key)
    hashing, signing, _ = _model_signing()
    fd, tmp = tempfile.mkstemp(prefix=f".{bundle.name}.sig.", suffix=".tmp", dir=bundle.parent)  # outside the signed tree
    os.close(fd)
    try:
        signer = signing.Config().set_hashing_config(_hashing_config(hashing, bundle))
        try:
            signer.use_elliptic_key_signer(private_key=private_key, password=os.environ.get(PASSWORD_ENV)).sign(bundle, tmp)
        except (ValueError, TypeError) as exc:  # not a PEM EC key, a wrong password
            raise BundleError(f"{private_key}: cannot sign with this key ({exc})", hint=_KEY_HINT) from None
        os.chmod(tmp, 0o644)
        os.replace(tmp, bundle / SIGNATURE)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return bundle / SIGNATURE


def verify_signature(bundle: str | Path, public_key: str | Path) -> dict[str, Any]:
    """The bundle's manifest, once the bundle verifies and its signature checks out against `public_key`
    (a PEM elliptic-curve public key); a BundleError saying what does not match otherwise."""
    bundle, public_key = Path(bundle), Path(public_key)
    manifest = load_manifest(bundle)
    _check_key(public_key, "public")
    if not is_signed(bundle):
        raise BundleError(f"{bundle}: not signed (no {SIGNATURE})", hint="export it with `zhcls export RUN -o BUNDLE --sign PRIVATE_KEY`")
    hashing, _, verifying = _model_signing()
    verifier = verifying.Config().set_hashing_config(_hashing_config(hashing, bundle))
    try:
        verifier.use_elliptic_key_verifier(public_key=public_key).verify(bundle, bundle / SIGNATURE)
    except Exception as exc:  # noqa: BLE001 - model_signing reports a mismatch as ValueError, a damaged file as whatever its parser raises
        raise BundleError(
            f"{bundle}: the signature does not verify with {public_key} ({str(exc)[:300]})",
            hint="the bundle was changed after it was signed, or signed with another key; export and sign it again",
        ) from None
    return manifest


_KEY_HINT = "use a PEM elliptic-curve key, e.g. `openssl ecparam -name prime256v1 -genkey -noout -out signing.pem`"


def _check_key(path: Path, kind: str) -> None:
    if not path.is_file():
        raise BundleError(f"{path}: no such {kind} key file", hint=_KEY_HINT)


def _hashing_config(hashing: Any, bundle: Path) -> Any:
    return hashing.Config().set_ignored_paths(paths=[bundle.resolve() / SIGNATURE])


def _model_signing() -> tuple[Any, Any, Any]:
    # imported here: it takes seconds to import, and only signing and verifying need it
    from model_signing import hashing, signing, verifying

    return hashing, signing, verifying
