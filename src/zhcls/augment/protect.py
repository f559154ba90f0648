"""Protected spans: numbers, dates and times, URLs, e-mail addresses and user terms.

No augmentation op splits, alters or partly removes a protected span; each span is one locked piece.
`find_spans` is also the after-the-fact check: an augmented text must show the same protected spans
as its source (truncation may drop whole spans; `equivalent.v1` may rewrite a standalone number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

_CN_DIGITS = "零〇一二三四五六七八九两壹贰叁肆伍陆柒捌玖"
_CN_UNITS = "十百千万亿拾佰仟萬億"
_CN_NUM = f"[{_CN_DIGITS}{_CN_UNITS}]"
# A single Chinese numeral is a number only before a measure word ("三个", "五年"); longer runs
# ("一百", "二十五") always are. This keeps "一起" and "万一" free for the other ops.
_MEASURE = "个只条件次年月日号天岁元块角分秒斤克米里名位家台部本张人倍成层份项颗辆"
_DIGIT = r"[0-9０-９]"

PATTERNS: list[tuple[str, str]] = [
    ("url", r"(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+;=%]+"),
    ("email", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"),
    ("date", rf"{_DIGIT}{{2,4}}[-/.]{_DIGIT}{{1,2}}[-/.]{_DIGIT}{{1,2}}"),
    ("date", rf"(?:(?:{_DIGIT}{{2,4}}|[{_CN_DIGITS}]{{2,4}})年)?(?:{_DIGIT}{{1,2}}|{_CN_NUM}{{1,3}})月(?:(?:{_DIGIT}{{1,2}}|{_CN_NUM}{{1,3}})[日号])?"),
    ("date", rf"(?:{_DIGIT}{{2,4}}|[{_CN_DIGITS}]{{4}})年"),
    ("time", rf"{_DIGIT}{{1,2}}[:：]{_DIGIT}{{2}}(?:[:：]{_DIGIT}{{2}})?"),
    ("number", rf"[+\-−]?{_DIGIT}+(?:[.,，．]{_DIGIT}+)*(?:[%％‰])?"),
    ("number", rf"{_CN_NUM}{{2,}}|[{_CN_DIGITS}十](?=[{_MEASURE}])"),
]
_COMPILED = [(kind, re.compile(p)) for kind, p in PATTERNS]


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str  # "url", "email", "date", "time", "number", "term"

    def text(self, s: str) -> str:
        return s[self.start : self.end]


def find_spans(text: str, terms: Sequence[str] = ()) -> list[Span]:
    """Non-overlapping protected spans in order. User terms win, then the patterns in list order
    (a URL before the number inside it, a date before its digits); a longer match wins a tie."""
    taken = [False] * len(text)
    spans: list[Span] = []

    def claim(start: int, end: int, kind: str) -> None:
        if end > start and not any(taken[start:end]):
            spans.append(Span(start, end, kind))
            for i in range(start, end):
                taken[i] = True

    for term in sorted({t for t in terms if t}, key=len, reverse=True):
        i = text.find(term)
        while i >= 0:
            claim(i, i + len(term), "term")
            i = text.find(term, i + len(term))
    for kind, rx in _COMPILED:
        for m in rx.finditer(text):
            claim(m.start(), m.end(), kind)
    return sorted(spans, key=lambda s: s.start)


def protected_texts(text: str, terms: Sequence[str] = ()) -> list[str]:
    return [s.text(text) for s in find_spans(text, terms)]


# -- numbers written in other forms (for equivalent.v1) ---------------------------------------------
_CN_LOWER = "零一二三四五六七八九"
_CN_UPPER = "零壹贰叁肆伍陆柒捌玖"
_CIRCLED = "⓪①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
_DIGIT_VALUE = {c: i for i, c in enumerate(_CN_LOWER)} | {c: i for i, c in enumerate(_CN_UPPER)} | {"〇": 0, "两": 2}
_UNIT_VALUE = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_BIG_VALUE = {"万": 10_000, "萬": 10_000, "亿": 100_000_000, "億": 100_000_000}


def number_value(s: str) -> int | None:
    """The integer a standalone number piece stands for (`15`, `１５`, `十五`, `壹拾伍`, `⑮`), or None
    for anything else (decimals, percentages, separators), which equivalent.v1 then leaves alone."""
    if not s:
        return None
    if all(c in _CIRCLED for c in s) and len(s) == 1:
        return _CIRCLED.index(s)
    half = s.translate({0xFF10 + i: 0x30 + i for i in range(10)})
    if half.isascii() and half.isdigit():
        return int(half) if (half == "0" or not half.startswith("0")) else None
    if not all(c in _DIGIT_VALUE or c in _UNIT_VALUE or c in _BIG_VALUE for c in s):
        return None
    if all(c in _DIGIT_VALUE for c in s):  # digit by digit: 二〇二三
        return None if len(s) > 1 else _DIGIT_VALUE[s]
    total, section, digit = 0, 0, None
    for c in s:
        if c in "零〇" and (total or section):
            continue  # 一百零三: the zero only marks a skipped place
        if c in _DIGIT_VALUE:
            if digit is not None:
                return None  # two digits in a row with a unit: not a well-formed numeral
            digit = _DIGIT_VALUE[c]
        elif c in _UNIT_VALUE:
            section += (1 if digit is None else digit) * _UNIT_VALUE[c]
            digit = None
        else:
            section += digit or 0
            total += max(section, 1) * _BIG_VALUE[c]
            section, digit = 0, None
    return total + section + (digit or 0)


def chinese_numeral(n: int, upper: bool = False) -> str:
    """0 <= n < 10^8 written in Chinese numerals (十五, 一百零三, 壹仟贰佰)."""
    digits = _CN_UPPER if upper else _CN_LOWER
    units = ("", "拾", "佰", "仟") if upper else ("", "十", "百", "千")
    if n == 0:
        return digits[0]

    def four(x: int) -> str:
        out, zero = "", False
        for pos in (3, 2, 1, 0):
            d = x // 10**pos % 10
            if d == 0:
                zero = bool(out)
                continue
            if zero:
                out += digits[0]
                zero = False
            out += digits[d] + units[pos]
        return out

    high, low = divmod(n, 10_000)
    text = (four(high) + "万" + (digits[0] if 0 < low < 1000 else "") + four(low)) if high else four(low)
    if not upper and text.startswith("一十"):
        text = text[1:]  # 十五, not 一十五
    return text


def number_forms(n: int) -> list[str]:
    """Equivalent spellings of a non-negative integer: Arabic, full-width, Chinese lower and upper
    (financial) numerals, and the circled digit for 0..20."""
    forms = [str(n), str(n).translate({0x30 + i: 0xFF10 + i for i in range(10)})]
    if n < 10**8:
        forms += [chinese_numeral(n), chinese_numeral(n, upper=True)]
    if n <= 20:
        forms.append(_CIRCLED[n])
    return list(dict.fromkeys(forms))
