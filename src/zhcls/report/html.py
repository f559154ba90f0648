"""Report blocks -> one self-contained HTML page, figures embedded as base64 data URIs."""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from .layout import Block

CSS = """
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", system-ui, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.5; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
code { background: #f4f4f4; padding: 0 0.2em; }
img { max-width: 100%; }
h2 { border-bottom: 1px solid #eee; padding-bottom: 0.2em; margin-top: 1.6em; }
"""


def render(blocks: list[Block], figures: dict[str, bytes]) -> str:
    title = next((b[1] for b in blocks if b[0] == "h1"), "zhcls report")
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{kind}>{_inline(block[1])}</{kind}>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "image":
            data = base64.b64encode(figures[block[1]]).decode("ascii")
            body.append(f'<p><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}"></p>')
    return (
        '<!DOCTYPE html>\n<html lang="zh">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(str(title))}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _inline(text: Any) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))
