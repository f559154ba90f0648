"""Report blocks -> GitHub-flavoured Markdown; figures are PNG files beside it, linked relatively (as CML expects)."""

from __future__ import annotations

import re
from typing import Any

from .layout import Block

NUMBER = re.compile(r"^(–|[+-]?\d[\d.,]*( ▼)?( [KMG]?i?B)?)$")


def render(blocks: list[Block], figure_dir: str) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            lines += [f"{'#' * int(kind[1])} {_inline(block[1])}", ""]
        elif kind == "p":
            lines += [_inline(block[1]), ""]
        elif kind == "list":
            lines += [f"- {_inline(item)}" for item in block[1]] + [""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines.append("| " + " | ".join(_cell(h) for h in headers) + " |")
            first = rows[0] if rows else [""] * len(headers)
            lines.append("|" + "|".join("---:" if _numeric(c) else ":---" for c in first) + "|")
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "image":
            lines += [f"![{block[2]}]({figure_dir}/{block[1]})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _numeric(text: Any) -> bool:
    return bool(NUMBER.match(str(text)))


def _inline(text: Any) -> str:
    # Texts from the data may hold Markdown characters; code spans written by layout.py are kept.
    return str(text).replace("\n", " ").replace("<", "&lt;")


def _cell(text: Any) -> str:
    return _inline(text).replace("|", "\\|")
