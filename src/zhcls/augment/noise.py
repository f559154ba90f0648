"""Strategies that need no dictionary: UNK masking, deletion, truncation, adjacent swap, insertion,
homophones (pypinyin) and equivalent characters. Each is Params + class + registration."""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..registry import augmenters
from .base import Level, Piece, Strategy, StrategyParams, bernoulli, editable_indices, sample_weighted
from .protect import _CN_DIGITS, _CN_UNITS, number_forms, number_value

_NUMERAL_CHARS = set(_CN_DIGITS + _CN_UNITS + "十")


def _is_cjk(c: str) -> bool:
    return "\u4e00" <= c <= "\u9fff"


class LevelParams(StrategyParams):
    level: Level = "char"


class UnkParams(LevelParams):
    unk: str = "\ufffd"  # one character, so char.v1 and jieba.v1 both read it as one unknown token; "[UNK]" for BERT vocabularies


@augmenters.register("unk.v1", params=UnkParams)
class UnkMask(Strategy):
    """Each free piece becomes the unknown token with probability `rate`."""

    name = "unk.v1"

    def __init__(self, params: UnkParams) -> None:
        super().__init__(params)
        self.level = params.level
        self.unk = params.unk

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        idx = editable_indices(pieces)
        hit = bernoulli(rng, len(idx), self.rate)
        out = list(pieces)
        for i, h in zip(idx, hit):
            if h:
                out[i] = Piece(self.unk, "unk")  # locked: a later op must not edit the mask itself
        return out


@augmenters.register("delete.v1", params=LevelParams)
class RandomDelete(Strategy):
    """Each free piece is deleted with probability `rate`; at least one free piece stays."""

    name = "delete.v1"

    def __init__(self, params: LevelParams) -> None:
        super().__init__(params)
        self.level = params.level

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        idx = editable_indices(pieces)
        hit = bernoulli(rng, len(idx), self.rate)
        if len(idx) and hit.all():
            hit[rng.integers(len(idx))] = False
        drop = {i for i, h in zip(idx, hit) if h}
        return [p for i, p in enumerate(pieces) if i not in drop]


@augmenters.register("truncate.v1", params=StrategyParams)
class Truncate(Strategy):
    """N-sampling: keep one random contiguous span of about (1 - rate) of the pieces. Piece bounds
    are the cut points, so a protected span is kept whole or left out whole."""

    name = "truncate.v1"
    may_drop_spans = True

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        n = len(pieces)
        keep = max(1, math.ceil(n * (1.0 - self.rate)))
        if keep >= n:
            return list(pieces)
        start = int(rng.integers(0, n - keep + 1))
        return pieces[start : start + keep]


@augmenters.register("swap.v1", params=StrategyParams)
class AdjacentSwap(Strategy):
    """Each free character trades places with the next one (also free) with probability `rate`."""

    name = "swap.v1"

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        out = list(pieces)
        draws = rng.random(len(out))
        i = 0
        while i < len(out) - 1:
            if draws[i] < self.rate and out[i].editable and out[i + 1].editable and out[i].text != out[i + 1].text:
                out[i], out[i + 1] = out[i + 1], out[i]
                i += 2
            else:
                i += 1
        return out


@augmenters.register("insert.v1", params=LevelParams)
class RandomInsert(Strategy):
    """After each free piece, with probability `rate`, insert a Chinese character (or word) drawn by
    frequency from the training corpus (from the text itself before `fit`). Numerals are never drawn,
    so no number grows a digit."""

    name = "insert.v1"

    def __init__(self, params: LevelParams) -> None:
        super().__init__(params)
        self.level = params.level
        self._items: list[str] = []
        self._cum = np.zeros(0)

    def fit(self, texts: Sequence[str]) -> "RandomInsert":
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(u for u in self._units(t) if _insertable(u))
        self._items = sorted(counts)
        self._cum = np.cumsum([counts[u] for u in self._items], dtype=np.float64)
        return self

    def _units(self, text: str) -> list[str]:
        if self.level == "char":
            return list(text)
        from .base import posseg

        return [w for w, _ in posseg(text)]

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        items, cum = self._items, self._cum
        if not items:
            own = sorted({p.text for p in pieces if p.editable and _insertable(p.text)})
            if not own:
                return list(pieces)
            items, cum = own, np.arange(1, len(own) + 1, dtype=np.float64)
        out: list[Piece] = []
        draws = rng.random(len(pieces))
        for p, d in zip(pieces, draws):
            out.append(p)
            if p.editable and d < self.rate:
                out.append(Piece(sample_weighted(rng, items, cum)))
        return out


def _insertable(unit: str) -> bool:
    return bool(unit) and all(_is_cjk(c) and c not in _NUMERAL_CHARS for c in unit)


class HomophoneParams(StrategyParams):
    near: bool = False  # also other tones and the usual confusions (z/zh, c/ch, s/sh, n/l, -n/-ng)


@augmenters.register("homophone.v1", params=HomophoneParams)
class Homophone(Strategy):
    """Each free Chinese character becomes, with probability `rate`, another common character with
    the same pinyin (with `near`: a near-homophone), preferring characters seen in the corpus."""

    name = "homophone.v1"

    def __init__(self, params: HomophoneParams) -> None:
        super().__init__(params)
        self.near = params.near
        self._seen: set[str] | None = None

    def fit(self, texts: Sequence[str]) -> "Homophone":
        self._seen = {c for t in texts for c in t if _is_cjk(c)}
        return self

    def candidates(self, ch: str) -> list[str]:
        key = _reading(ch)
        if key is None:
            return []
        table = _homophone_table()
        keys = _near_keys(key) if self.near else [key]
        cands = sorted({c for k in keys for c in table.get(k, ()) if c != ch})
        if self._seen:
            preferred = [c for c in cands if c in self._seen]
            if preferred:
                return preferred
        return cands

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        out = list(pieces)
        draws = rng.random(len(out))
        for i, (p, d) in enumerate(zip(pieces, draws)):
            if d < self.rate and p.editable and len(p.text) == 1 and _is_cjk(p.text) and p.text not in _NUMERAL_CHARS:
                cands = self.candidates(p.text)
                if cands:
                    out[i] = Piece(cands[int(rng.integers(len(cands)))])
        return out


_TONES = {}
for _base, _marks in (("a", "āáǎà"), ("e", "ēéěè"), ("i", "īíǐì"), ("o", "ōóǒò"), ("u", "ūúǔù"), ("v", "ǖǘǚǜ"), ("n", "\0ńňǹ"), ("m", "ḿ\0\0\0")):
    for _t, _m in enumerate(_marks, 1):
        if _m != "\0":
            _TONES[_m] = (_base, _t)


def _pypinyin_dict() -> dict[int, str]:
    try:
        from pypinyin.pinyin_dict import pinyin_dict
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("homophone.v1 needs the pypinyin package", hint="pip install 'zhcls[augment]'") from None
    return pinyin_dict


def _tone3(marked: str) -> str:
    """'zhōng' -> 'zhong1'; 'lü' -> 'lv5' (no mark: the neutral tone, 5)."""
    out, tone = [], 5
    for c in marked:
        if c in _TONES:
            base, tone = _TONES[c]
            out.append(base)
        else:
            out.append("v" if c == "ü" else c)
    return "".join(out) + str(tone)


def _reading(ch: str) -> str | None:
    value = _pypinyin_dict().get(ord(ch))
    return _tone3(value.split(",")[0]) if value else None


def _is_common(ch: str) -> bool:
    """GB2312 level 1: the 3,755 most common characters (lead bytes 0xB0-0xD7)."""
    try:
        b = ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return len(b) == 2 and 0xB0 <= b[0] <= 0xD7


@lru_cache(maxsize=1)
def _homophone_table() -> dict[str, tuple[str, ...]]:
    table: dict[str, list[str]] = {}
    for code, value in _pypinyin_dict().items():
        ch = chr(code)
        if _is_cjk(ch) and _is_common(ch) and ch not in _NUMERAL_CHARS:
            table.setdefault(_tone3(value.split(",")[0]), []).append(ch)
    return {k: tuple(v) for k, v in table.items()}


_FUZZY_INITIALS = [("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l")]
_FUZZY_FINALS = [("ang", "an"), ("eng", "en"), ("ing", "in")]


def _near_keys(key: str) -> list[str]:
    syllable = key[:-1]
    variants = {syllable}
    for a, b in _FUZZY_INITIALS:
        for s in list(variants):
            if s.startswith(a):
                variants.add(b + s[len(a) :])
            elif s.startswith(b) and not s.startswith(a):
                variants.add(a + s[len(b) :])
    for a, b in _FUZZY_FINALS:
        for s in list(variants):
            if s.endswith(a):
                variants.add(s[: -len(a)] + b)
            elif s.endswith(b):
                variants.add(s + a[len(b) :])
    return [v + str(t) for v in sorted(variants) for t in range(1, 6)]


@augmenters.register("equivalent.v1", params=StrategyParams)
class EquivalentChars(Strategy):
    """Equivalent forms, each free unit with probability `rate`: a standalone integer is rewritten whole
    in another form of the same value (1 / 一 / 壹 / ① / １), Latin letters and digits swap between
    half and full width, full-width symbols become half-width."""

    name = "equivalent.v1"
    changes_numbers = True

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        out = list(pieces)
        draws = rng.random(len(out))
        for i, (p, d) in enumerate(zip(pieces, draws)):
            if d >= self.rate:
                continue
            if p.locked == "number":
                value = number_value(p.text)
                if value is None:
                    continue
                forms = [f for f in number_forms(value) if f != p.text]
                if forms:
                    out[i] = Piece(forms[int(rng.integers(len(forms)))], "number")
            elif not p.locked:
                width = _toggle_width(p.text)
                if width != p.text:
                    out[i] = Piece(width)
        return out


def _toggle_width(s: str) -> str:
    out = []
    for c in s:
        o = ord(c)
        if 0x21 <= o <= 0x7E and c.isalnum():
            out.append(chr(o + 0xFEE0))
        elif 0xFF01 <= o <= 0xFF5E:
            out.append(chr(o - 0xFEE0))
        else:
            out.append(c)
    return "".join(out)
