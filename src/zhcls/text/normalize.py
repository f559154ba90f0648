"""Text normalization: one function, used by training and serving alike, so they cannot drift apart."""

from __future__ import annotations

import unicodedata

# Characters that render as nothing but change the token sequence (zero-width spaces, direction marks,
# soft hyphens, BOMs). A fixed table keeps `str.translate` fast on the serving path.
INVISIBLE = (
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x180E, 0xFEFF]
    + list(range(0x200B, 0x2010))
    + list(range(0x202A, 0x202F))
    + list(range(0x2060, 0x2070))
)
CONTROL = [c for c in range(0x00, 0x20) if chr(c) not in "\t\n\r"] + list(range(0x7F, 0xA0))
_DELETE = {c: None for c in INVISIBLE + CONTROL}


def normalize(text: str, *, lowercase: bool = True) -> str:
    """NFKC (full-width letters, digits and punctuation become half-width), invisible and control
    characters removed, runs of white space folded to one space, Latin letters lowercased."""
    text = unicodedata.normalize("NFKC", text).translate(_DELETE)
    text = " ".join(text.split())
    return text.lower() if lowercase else text


def is_invisible(ch: str) -> bool:
    return ord(ch) in _DELETE


def is_fullwidth_ascii(ch: str) -> bool:
    """Full-width forms of ASCII letters, digits and punctuation (Ａ, １, ＂) and the ideographic space."""
    return 0xFF01 <= ord(ch) <= 0xFF5E or ch == "\u3000"
