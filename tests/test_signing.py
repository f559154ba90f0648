"""Signed bundles (OpenSSF model-signing, offline EC keys): a signed bundle verifies; a changed file, a
changed manifest, a changed signature or another key is refused; serve --require-signature refuses an
unsigned bundle before it listens."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli
from zhcls.config import TrainingConfig
from zhcls.data.example import Example
from zhcls.models.base import build_model
from zhcls.serve.bundle import BundleError, manifest_digest
from zhcls.serve.predictor import Predictor

pytest.importorskip("model_signing")


def _keypair(root, name):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = root / f"{name}.pem", root / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def signed(tmp_path_factory, tiny_corpus):
    root = tmp_path_factory.mktemp("signing")
    build_model("textcnn.v1", {"embed_dim": 8, "num_filters": 8}, TrainingConfig(epochs=2, batch_size=8, lr=1e-2)).fit(tiny_corpus.texts, tiny_corpus.labels).save(root / "model")
    texts = root / "texts.txt"
    texts.write_text("\n".join(tiny_corpus.texts) + "\n", encoding="utf-8")
    keys = {"a": _keypair(root, "a"), "b": _keypair(root, "b")}
    from zhcls.export.onnx import export_bundle
    from zhcls.serve.signing import sign_bundle

    export_bundle(root / "model", root / "bundle", data=[Example(t) for t in tiny_corpus.texts], latency_texts=5)
    sign_bundle(root / "bundle", keys["a"][0])
    return root, keys


def _export(signed, out, capsys, sign=True):
    root, keys = signed
    args = ["export", root / "model", "-o", out, "--data", root / "texts.txt"] + (["--sign", keys["a"][0]] if sign else [])
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    return stdout


def test_signed_bundle_verifies_and_still_loads(signed, tmp_path, capsys):
    root, keys = signed
    out = _export(signed, tmp_path / "b", capsys)
    assert (tmp_path / "b" / "model.sig").is_file() and "signature:" in out
    assert Predictor(tmp_path / "b").predict(["足球比赛"])[0]  # the signature is not an unlisted file
    code, stdout, err = run_cli(["verify", tmp_path / "b", "--key", keys["a"][1]], capsys)
    assert code == 0 and "signature: valid" in stdout, err
    code, stdout, _ = run_cli(["verify", tmp_path / "b"], capsys)
    assert code == 0 and "present, not checked" in stdout


@pytest.mark.parametrize("tamper", ["graph", "labels", "signature", "other key", "unsigned", "extra file"])
def test_tampering_is_refused(signed, tmp_path, capsys, tamper):
    root, keys = signed
    bundle = tmp_path / "b"
    shutil.copytree(root / "bundle", bundle)
    if tamper == "unsigned":
        (bundle / "model.sig").unlink()
    public = keys["b" if tamper == "other key" else "a"][1]
    if tamper == "graph":
        data = bytearray((bundle / "model.onnx").read_bytes())
        data[-10] ^= 1
        (bundle / "model.onnx").write_bytes(bytes(data))
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        import hashlib

        manifest["files"]["model.onnx"] = hashlib.sha256(bytes(data)).hexdigest()  # re-hashed and re-sealed: only the signature can tell
        manifest["digest"] = manifest_digest(manifest)
        (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    elif tamper == "labels":
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        manifest["labels"].reverse()
        manifest["digest"] = manifest_digest(manifest)
        (bundle / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    elif tamper == "signature":
        sig = json.loads((bundle / "model.sig").read_text(encoding="utf-8"))
        envelope = sig["dsseEnvelope"]["signatures"][0]
        envelope["sig"] = ("AAAA" if not envelope["sig"].startswith("AAAA") else "BBBB") + envelope["sig"][4:]
        (bundle / "model.sig").write_text(json.dumps(sig), encoding="utf-8")
    elif tamper == "extra file":
        (bundle / "extra.bin").write_bytes(b"x")
    code, _, err = run_cli(["verify", bundle, "--key", public], capsys)
    assert code == 2 and "error:" in err and "Traceback" not in err, err
    code, _, err = run_cli(["serve", bundle, "--require-signature", public, "--port", "1"], capsys)
    assert code == 2 and "Traceback" not in err, err  # refused before anything listens


def test_sign_needs_an_existing_key_and_a_valid_one(signed, tmp_path, capsys):
    root, _ = signed
    code, _, err = run_cli(["export", root / "model", "-o", tmp_path / "b", "--data", root / "texts.txt", "--sign", tmp_path / "missing.pem"], capsys)
    assert code == 2 and "no such private key file" in err and not (tmp_path / "b").exists()
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key", encoding="utf-8")
    code, _, err = run_cli(["export", root / "model", "-o", tmp_path / "b", "--data", root / "texts.txt", "--sign", bad], capsys)
    assert code == 2 and "cannot sign with this key" in err and not (tmp_path / "b").exists()


def test_registry_keeps_the_signature(signed, tmp_path, capsys):
    from zhcls.serve.signing import verify_signature

    root, keys = signed
    shutil.copytree(root / "bundle", tmp_path / "b")
    assert run_cli(["registry", "add", tmp_path / "b", "--name", "m", "--version", "v1", "--root", tmp_path / "reg"], capsys)[0] == 0
    verify_signature(tmp_path / "reg" / "m" / "v1", keys["a"][1])
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "b", copy)
    (copy / "model.sig").unlink()
    with pytest.raises(BundleError, match="not signed"):
        verify_signature(copy, keys["a"][1])
