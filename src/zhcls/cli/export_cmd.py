"""zhcls export RUN -o BUNDLE [--quantize int8] [--data FILE] [--sign KEY];  zhcls verify BUNDLE [--key PUB]"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("verify")(verify)


def export(
    run: Path = typer.Argument(..., help="Run directory or model directory."),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle directory to write."),
    quantize: str = typer.Option("none", "--quantize", help="none or int8 (dynamic int8 weights)."),
    sign: Optional[Path] = typer.Option(None, "--sign", metavar="PRIVATE_KEY", help="Sign the bundle with this PEM elliptic-curve key (needs zhcls[sign])."),
    data: Optional[Path] = typer.Option(None, "--data", help="Texts to check the export on (default: the run's dev set)."),
    fmt: str = _common.FormatOption,
    text_field: Optional[str] = _common.TextFieldOption,
) -> None:
    """Export a run as a self-contained bundle.

    The bundle holds the ONNX graph, tokenizer, labels and manifest; export checks that it matches
    the model."""
    from ..data.readers import ReadOptions, read_examples
    from ..errors import ConfigError
    from ..export.onnx import export_bundle

    _common.setup_logging()
    if quantize not in ("none", "int8"):
        raise ConfigError(f"--quantize {quantize!r} is not supported", hint="use --quantize int8, or leave it out")
    if sign is not None:  # before the export's minutes, not after them with an unsigned bundle
        from ..serve.signing import check_private_key

        check_private_key(sign)
    examples = read_examples(data, ReadOptions(fmt, text_field, None)) if data is not None else None
    m = export_bundle(run, output, quantize=quantize, data=examples)  # type: ignore[arg-type]
    fp32 = m["parity"]["fp32"]
    if "tags" in fp32:  # tagger.v1, joint.v1: a gate per head
        heads = {"classes": fp32["classes"]} if "classes" in fp32 else {}
        parts = [f"class head max |dp| {c['max_abs_diff']:.1e}, labels agree {c['label_agreement']:.2%}" for c in heads.values()]
        t = fp32["tags"]
        parts.append(f"tag head max |dp| {t['max_abs_diff']:.1e}, entities agree on {t['entity_agreement']:.2%} of texts")
        print(f"parity (fp32, {m['parity']['n_texts']} texts): {'; '.join(parts)}")
    else:
        print(f"parity (fp32, {m['parity']['n_texts']} texts): max |dp| {fp32['max_abs_diff']:.1e}, labels agree {fp32['label_agreement']:.2%}")
    if "int8" in m["parity"]:
        q = m["parity"]["int8"]
        change = "".join(f", {k} {q[f'{k}_change']:+.4f}" for k in ("accuracy", "entity_f1") if f"{k}_change" in q)
        agree = [f"labels agree with fp32 on {q['label_agreement']:.2%}"] if "label_agreement" in q else []
        agree += [f"entities agree with fp32 on {q['entity_agreement']:.2%} of texts"] if "entity_agreement" in q else []
        print(f"int8: {', '.join(agree)}{change}")
    lat = m["latency"]
    print(f"latency (1 text, 1 thread): p50 {lat['p50_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms")
    print(f"size: {sum(m['size_bytes'].values()) / 1e6:.1f} MB")
    print(f"digest: {m['digest']}")  # of the manifest, which covers every file: pin it to detect any change
    if sign is not None:
        from ..serve.signing import sign_bundle

        print(f"signature: {sign_bundle(output, sign)}")
    print(f"bundle: {output}")


def verify(
    bundle: Path = typer.Argument(..., help="Bundle directory, or registry://NAME@ALIAS."),
    key: Optional[Path] = typer.Option(None, "--key", metavar="PUBLIC_KEY", help="Also check the bundle's signature with this PEM public key."),
) -> None:
    """Check a bundle's digests, and with --key its signature.

    The manifest's digest and every file's sha256; with --key also the bundle's signature."""
    from ..serve.bundle import load_manifest
    from ..serve.model_registry import resolve_bundle
    from ..serve.signing import is_signed, verify_signature

    bundle = resolve_bundle(bundle)
    manifest = verify_signature(bundle, key) if key is not None else load_manifest(bundle)
    print(f"bundle: {bundle} ({manifest['model']}, {len(manifest['files'])} files verified)")
    print(f"digest: {manifest['digest']}")
    if key is not None:
        print(f"signature: valid for {key}")
    else:
        print(f"signature: {'present, not checked (pass --key PUBLIC_KEY)' if is_signed(bundle) else 'none'}")
