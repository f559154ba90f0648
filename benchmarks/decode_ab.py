"""A tagger bundle's decoding: this checkout's zhcls/tagging/decode.py against an earlier revision's, in one process.

    .venv/bin/python benchmarks/decode_ab.py BUNDLE --base REV --texts FILE.jsonl

The base revision's decode.py is read with `git show` and loaded beside the current one, so both decode
the same emissions of the same bundle, rounds interleaved (every variant sees the same load, and each goes
first in every other round); the median of the rounds' p50s is reported, and the ratio to the base. Timed
on --n texts of --chars characters cut from FILE's texts (JSON lines with a `text`) joined, as
benchmarks/joint.py's latency cells do: decoding alone (emissions computed beforehand) and the bundle's
whole `predict_spans` call (features, ONNX Runtime, decoding). Before timing, every text of FILE at full
length must decode to the same entities under both variants and to Viterbi's path under the current one;
the share of positions each variant left to Viterbi is reported with it.

Results: benchmarks/results/decode_ab.{json,md}; each run is added to the earlier ones.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import _harness as h

SOURCE = "src/zhcls/tagging/decode.py"


def load_revision(rev: str) -> ModuleType:
    """decode.py as it was at `rev`, as module zhcls.tagging._decode_base (its relative imports then resolve)."""
    import zhcls.tagging

    shown = subprocess.run(["git", "show", f"{rev}:{SOURCE}"], cwd=h.REPO, capture_output=True, text=True)
    if shown.returncode:
        raise SystemExit(f"--base {rev}: git has no {SOURCE} there ({shown.stderr.strip()})")
    text = shown.stdout
    name = "zhcls.tagging._decode_base"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=f"{rev}:{SOURCE}")
    module = importlib.util.module_from_spec(spec)
    module.__package__ = zhcls.tagging.__name__
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    exec(compile(text, f"{rev}:{SOURCE}", "exec"), module.__dict__)
    return module


def viterbi_share(module: ModuleType, emissions: Sequence[Any], tags: Sequence[str], crf: Any, lengths: Sequence[int]) -> float:
    """The share of positions `module`'s decode hands to its Viterbi."""
    real, ran = module._viterbi, []
    module._viterbi = lambda em, *rest: ran.append(len(em)) or real(em, *rest)
    try:
        for em, n in zip(emissions, lengths):
            module.decode(em, tags, crf, n)
    finally:
        module._viterbi = real
    return sum(ran) / sum(lengths)


def measure(bundle: Path, base_rev: str, all_texts: list[str], n: int, chars: int, rounds: int) -> dict[str, Any]:
    import numpy as np

    import zhcls.serve.tagger as serving
    import zhcls.tagging.decode as current
    from zhcls.serve.predictor import Predictor

    base = load_revision(base_rev)
    predictor = Predictor(bundle, threads=1)
    runtime = predictor._tagger
    if runtime is None or runtime.crf is None:
        raise SystemExit(f"{bundle}: not a tagger bundle with a CRF head")
    crf = runtime.crf
    variants = {"base": (base, base.Crf(crf.start, crf.end, crf.transitions)), "current": (current, crf)}
    full = [runtime.run([t], 0)[1][0] for t in all_texts]
    outside = current._tag_parts(tuple(runtime.tags))[2]  # O's tag id, as decode finds it
    for t, em in zip(all_texts, full):
        got = {name: m.decode(em, runtime.tags, c, len(t))[0] for name, (m, c) in variants.items()}
        if got["base"] != got["current"] or not np.array_equal(current.best_path(em, crf, outside), current.viterbi(em, crf)):
            raise SystemExit(f"the two decoders disagree (or the current one leaves Viterbi's path) on {t!r}")
    joined = "".join(all_texts)  # as benchmarks/joint.py's latency cells: the texts joined and cut into pieces of `chars`
    texts = [joined[i : i + chars] for i in range(0, min(len(joined), chars * n) - chars + 1, chars)]
    emissions = [runtime.run([t], 0)[1][0] for t in texts]
    pairs = list(zip(texts, emissions))
    rows: dict[str, dict[str, list[float]]] = {name: {"decode": [], "predict_spans": []} for name in variants}
    try:
        for r in range(rounds):
            for name, (module, c) in list(variants.items())[:: 1 if r % 2 == 0 else -1]:  # each goes first in every other round
                serving.decode, runtime.crf = module.decode, c
                rows[name]["decode"].append(h.p50_us(lambda p, m=module, c=c: m.decode(p[1], runtime.tags, c, len(p[0])), pairs))
                rows[name]["predict_spans"].append(h.p50_us(lambda t: predictor.predict_spans([t]), texts))
    finally:
        serving.decode, runtime.crf = current.decode, crf
    median = {name: {k: round(statistics.median(v), 1) for k, v in d.items()} for name, d in rows.items()}
    return {
        "bundle": str(bundle), "base": base_rev, "base_commit": h.git("rev-parse", base_rev), "n_texts": len(texts), "chars": chars, "rounds": rounds,
        "checked_texts": len(all_texts), "order": "alternating", "p50_us": median, "rounds_p50_us": rows,
        "ratio": {k: round(median["current"][k] / median["base"][k], 3) for k in ("decode", "predict_spans")},
        "viterbi_share": {name: round(viterbi_share(m, emissions, runtime.tags, c, [len(t) for t in texts]), 4) for name, (m, c) in variants.items()},
    }


def render(results: dict[str, Any]) -> str:
    lines = ["# Tagger decoding against an earlier revision's (benchmarks/decode_ab.py)", "",
             "Per run: the same bundle and texts in one process, the base revision's decode.py and the current one, rounds interleaved, "
             "median of the rounds' p50s (us). `Viterbi share`: the positions each decoder ran Viterbi on (the rest it proved O). "
             "Before timing, every text of the file decoded to the same entities under both.", ""]
    rows = []
    for i, r in enumerate(results["runs"], 1):
        env = r["environment"]
        lines.append(f"{i}. `{env['command']}` on {env['machine']['cpu_model']}, {env['started']}, git {env['git']['commit'][:12]}: "
                     f"base {r['base']} ({r['base_commit'][:12]}), {r['n_texts']} texts of {r['chars']} characters, {r['rounds']} rounds, "
                     f"{r['checked_texts']} texts checked; " + ("each variant first in every other round" if r.get("order") == "alternating" else "the base first in every round"))
        for k in ("decode", "predict_spans"):
            rows.append([i, Path(r["bundle"]).name, k, r["p50_us"]["base"][k], r["p50_us"]["current"][k], f"{r['ratio'][k]:.2f}x",
                         h.pct(r["viterbi_share"]["base"]), h.pct(r["viterbi_share"]["current"])])
    lines += ["", *h.md_table(["run", "bundle", "timed", "base us", "current us", "current / base", "Viterbi share, base %", "current %"], rows)]
    fair = [r for r in results["runs"] if r.get("order") == "alternating"]  # the runs free of an order bias
    if fair:
        lines += ["", "Median ratio over the runs in which each variant went first in every other round:", ""]
        lines += h.md_table(["bundle", "base", "runs", "decode", "predict_spans"], [
            [Path(b).name, base, len(group), *(f"{statistics.median(r['ratio'][k] for r in group):.2f}x" for k in ("decode", "predict_spans"))]
            for (b, base), group in _grouped(fair).items()])
    return "\n".join(lines) + "\n"


def _grouped(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["bundle"], r["base_commit"][:12]), []).append(r)
    return groups


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--base", required=True, help="the git revision whose decode.py is the baseline")
    ap.add_argument("--texts", type=Path, required=True, help="JSON lines with a `text` field, e.g. benchmarks/joint.py's msra_test.json")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--chars", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    texts = [json.loads(line)["text"] for line in args.texts.read_text(encoding="utf-8").splitlines() if line.strip()]
    run = {"environment": h.environment("benchmarks/decode_ab.py", argv, "onnxruntime", "numpy"),
           **measure(args.bundle, args.base, texts, args.n, args.chars, args.rounds)}
    results = h.add_run(h.RESULTS / "decode_ab.json", run, render)
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
