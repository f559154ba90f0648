"""Run reports: `build_report` computes, `write_report` renders Markdown (+ PNGs), HTML or JSON.

    report = build_report("runs/new", baseline="runs/main")
    write_report(report, "report.md")          # report.md + report_figures/*.png
    report["gate"]["passed"]                   # False: a gated metric dropped more than max_drop
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from ..artifact import atomic_dir, write_text
from .build import DEFAULT_GATE, ReportError, build_report, load_source

__all__ = ["DEFAULT_GATE", "ReportError", "build_report", "load_source", "write_report"]

Format = Literal["md", "html", "json"]


def write_report(report: dict[str, Any], out: str | Path, fmt: Format | None = None) -> list[Path]:
    """Render `report` to `out`; the format defaults to the file's suffix (.html, .json, else Markdown).
    Markdown figures go to `<stem>_figures/` beside it. Every file is written atomically."""
    from . import html, markdown
    from .figures import render_report_figures
    from .layout import blocks

    out = Path(out)
    fmt = fmt or {".html": "html", ".htm": "html", ".json": "json"}.get(out.suffix.lower(), "md")
    if fmt == "json":
        write_text(out, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        return [out]
    figures, warnings = render_report_figures(report)
    report["figure_warnings"] = warnings
    layout = blocks(report, figures, warnings)
    if fmt == "html":
        write_text(out, html.render(layout, figures))
        return [out]
    if fmt != "md":
        raise ReportError(f"unknown report format {fmt!r}", hint="choose md, html or json")
    fig_dir = out.parent / f"{out.stem}_figures"
    with atomic_dir(fig_dir) as tmp:
        for name, data in figures.items():
            (tmp / name).write_bytes(data)
    write_text(out, markdown.render(layout, fig_dir.name))
    return [out] + [fig_dir / name for name in sorted(figures)]


