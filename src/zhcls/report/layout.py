"""The report's reading order as a list of plain blocks, which markdown.py and html.py each render.

Blocks: ("h1"|"h2"|"h3"|"p", text), ("list", [text]), ("table", headers, rows), ("image", file name, alt).
Cells and texts are plain strings: renderers escape them for their format.
"""

from __future__ import annotations

from typing import Any

Block = tuple[Any, ...]
SHA_CHARS = 12


def num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def delta(value: float | None, digits: int = 4, worse_below: float | None = None) -> str:
    """+0.0123 / -0.0200; a drop beyond `worse_below` is marked."""
    if value is None:
        return "–"
    mark = " ▼" if worse_below is not None and value < -worse_below else ""
    return f"{value:+.{digits}f}{mark}"


def nbytes(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def blocks(report: dict[str, Any], figures: dict[str, Any], figure_warnings: list[str]) -> list[Block]:
    out: list[Block] = []
    gate = report["gate"]
    base = report.get("baseline")
    out.append(("h1", f"zhcls report: {report['title']}"))
    facts = [f"run `{report['run']}`", f"model {report.get('model') or '?'}", f"split {report['split']} (n = {report.get('n')})"]
    if report.get("git_commit"):
        facts.append(f"commit {report['git_commit'][:10]}")
    if base:
        facts.append(f"baseline `{base['path']}`" + (f" (commit {base['git_commit'][:10]})" if base.get("git_commit") else ""))
    out.append(("p", " · ".join(facts)))
    out.append(("p", _gate_line(gate, base is not None)))
    notes = list(report.get("notes", []))
    if notes:
        out.append(("list", [f"⚠ {n}" for n in notes]))

    out.append(("h2", "Headline metrics"))
    gated = {r["metric"] for r in gate["results"]}
    rows = [[r["metric"] + (" (gated)" if r["metric"] in gated else ""), num(r["value"]), num(r["baseline"]),
             delta(r["delta"], worse_below=gate["max_drop"] if r["metric"] in gated else None)] for r in report["headline"]]
    out.append(("table", ["metric", "run", "baseline", "Δ"], rows))
    if report.get("training"):
        t = report["training"]
        out.append(("p", ", ".join(f"{k} = {num(v, 2)}" for k, v in t.items())))

    out.append(("h2", "Per class"))
    rows = [[r["label"] + (" (new)" if r.get("new") else ""), num(r["precision"]), num(r["recall"]), num(r["f1"]), num(r["support"]),
             delta(r["delta_precision"]), delta(r["delta_recall"]), delta(r["delta_f1"])] for r in report["per_class"]]
    out.append(("table", ["label", "precision", "recall", "F1", "support", "ΔP", "ΔR", "ΔF1"], rows))
    _image(out, figures, "per_class.png", "per-class F1")

    if report.get("entities"):
        out.extend(_entity_blocks(report["entities"]))

    out.append(("h2", "Confusion matrix"))
    out.append(("p", "Rows are true labels, columns predicted; colour is the share of the true class."))
    _image(out, figures, "confusion.png", "confusion matrix")

    out.append(("h2", "Learning curves"))
    if report["curves"]["records"]:
        _image(out, figures, "curves.png", "learning curves")
    else:
        out.append(("p", "The run has no log.jsonl, so there is nothing to plot."))

    out.append(("h2", "Most confused pairs"))
    pairs = report["confused_pairs"]
    if not pairs:
        out.append(("p", "No mistakes on this split."))
    for p in pairs:
        share = f", {p['share']:.0%} of {p['true']}" if p.get("share") is not None else ""
        out.append(("h3", f"{p['true']} → {p['pred']}: {p['count']}{share}"))
        if p["examples"]:
            out.append(("list", [f"{e['text'][:120]} (p = {e['score']:.3f})" for e in p["examples"]]))
        elif p["examples"] is None:
            out.append(("p", "No example texts (see the notes above)."))

    out.append(("h2", "Calibration"))
    cal = report.get("calibration")
    if cal:
        out.append(("p", f"ECE = {cal['ece']:.4f} (expected calibration error over {cal['n_bins']} bins; 0 is perfect), "
                         f"MCE = {cal['mce']:.4f}, mean top-1 confidence = {num(cal['mean_confidence'])}, accuracy = {num(cal['accuracy'])}."))
        _image(out, figures, "calibration.png", "reliability diagram")
    else:
        out.append(("p", "Not computed: the split's data or the model could not be read (see the notes above)."))

    out.append(("h2", "Latency and size"))
    out.extend(_bundle_blocks(report.get("bundle")))

    out.append(("h2", "Data"))
    out.extend(_data_blocks(report["data"], base is not None))

    out.append(("h2", "Config diff against the baseline"))
    diff = report.get("config_diff")
    if diff is None:
        out.append(("p", "No baseline run to compare with." if not base else "The baseline is a metrics file, not a run: no config to compare."))
    elif not diff:
        out.append(("p", "Same config as the baseline."))
    else:
        out.append(("table", ["key", "baseline", "run"], [[d["key"], _cfg(d["baseline"]), _cfg(d["run"])] for d in diff]))
    # A missing font is about this machine, not the run: one line at the end, not a warning at the top.
    out.append(("p", " ".join([f"Generated by zhcls on {report['created']}."] + [f"Note: {w}." for w in figure_warnings])))
    return out


def _entity_blocks(e: dict[str, Any]) -> list[Block]:
    """Entity-level scores per type and micro/macro (strict: exact span and type), then the most frequent span errors."""
    out: list[Block] = [("h2", "Entities"), ("p", f"{e['n_gold']} gold entities, {e['n_pred']} predicted, in {e['n']} texts; "
                                                     "an entity counts only with its exact span and type (seqeval, strict).")]
    rows = [[t, num(r["precision"]), num(r["recall"]), num(r["f1"]), num(r["support"])] for t, r in e["per_type"].items()]
    rows += [[avg, num(e[f"{avg}_precision"]), num(e[f"{avg}_recall"]), num(e[f"{avg}_f1"]), ""] for avg in ("micro", "macro")]
    out.append(("table", ["type", "precision", "recall", "F1", "support"], rows))
    errors = e.get("span_errors") or []
    out.append(("h3", "Most frequent span errors"))
    if errors:
        out.append(("table", ["error", "gold", "predicted", "count", "example"],
                    [[r["error"], r["gold"] or "–", r["pred"] or "–", str(r["count"]), r.get("example", "")] for r in errors]))
    else:
        out.append(("p", "No span errors on this split."))
    return out


def _gate_line(gate: dict[str, Any], has_baseline: bool) -> str:
    if not has_baseline:
        return "Quality gate: no baseline given, nothing to compare."
    if not gate["compared"]:
        return "Quality gate: the baseline has no metrics for this split, nothing to compare."
    if gate["passed"]:
        return f"✅ Quality gate passed: no gated metric ({', '.join(r['metric'] for r in gate['results'])}) dropped by more than {gate['max_drop']:g}."
    failed = [r for r in gate["results"] if not r["passed"]]
    what = "; ".join(f"{r['metric']} {num(r['baseline'])} → {num(r['value'])} (−{r['drop']:.4f})" for r in failed)
    return f"❌ Quality gate failed (max drop {gate['max_drop']:g}): {what}."


def _image(out: list[Block], figures: dict[str, Any], name: str, alt: str) -> None:
    if name in figures:
        out.append(("image", name, alt))


def _bundle_blocks(b: dict[str, Any] | None) -> list[Block]:
    if b is None:
        return [("p", "No bundle for this run (export one with `zhcls export RUN -o RUN/bundle`, or pass --bundle DIR).")]
    lat, base = b.get("latency") or {}, b.get("baseline") or {}
    blat = base.get("latency") or {}
    rows = [
        ["p50 latency (ms, one text, 1 thread)", num(lat.get("p50_ms"), 3), num(blat.get("p50_ms"), 3)],
        ["p99 latency (ms)", num(lat.get("p99_ms"), 3), num(blat.get("p99_ms"), 3)],
        ["size", nbytes(b.get("size_bytes_total")), nbytes(base.get("size_bytes_total"))],
        ["precision", num(b.get("precision")), num(base.get("precision"))],
    ]
    out: list[Block] = [("p", f"Bundle `{b['path']}` ({b.get('backend')} backend)."),
                        ("table", ["", "bundle", "baseline bundle"], rows)]
    files = b.get("size_bytes") or {}
    if files:
        out.append(("table", ["file", "size"], [[name, nbytes(n)] for name, n in files.items()]))
    return out


def _data_blocks(data: dict[str, Any], has_baseline: bool) -> list[Block]:
    rows, dists = [], []
    for s in data["splits"]:
        same = {None: "–", True: "same", False: "differs"}[s.get("same_as_baseline")]
        row = [s["split"], num(s.get("n")), (s.get("sha256") or "–")[:SHA_CHARS], s.get("path") or "–"]
        rows.append(row + ([same] if has_baseline else []))
        if s.get("labels"):
            total = sum(s["labels"].values())
            dist = ", ".join(f"{label} {n} ({n / total:.0%})" for label, n in s["labels"].items())
            dists.append(f"{s['split']}: {dist}" + (" (from the metrics' support)" if s.get("labels_from") == "metrics" else ""))
    headers = ["split", "n", "sha256", "path"] + (["vs baseline"] if has_baseline else [])
    out: list[Block] = [("table", headers, rows)]
    if dists:
        out.append(("p", "Label distribution:"))
        out.append(("list", dists))
    return out


def _cfg(value: Any) -> str:
    return "(absent)" if value is None else repr(value) if isinstance(value, str) else str(value)
