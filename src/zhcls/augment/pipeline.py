"""The Augmenter: a recipe of strategies that turns one text into `n` distinct, checked variants.

    aug = Augmenter.from_recipe({"delete.v1": 0.1, "swap.v1": 0.1}, n=4, seed=1).fit(train_texts)
    for variant in aug.variants("价格199元，物流很快", rng=np.random.default_rng(0)):
        variant.text, variant.strategy

Copy k of a text uses the strategies in a per-text shuffled order, cycled, so every strategy gets its
share; a draw that is empty, equals the source or an earlier copy, or breaks a protected span is
drawn again (up to `tries` times per strategy, then the next strategy). Each example gets its own
generator, `default_rng([seed, index])`, so the output does not depend on batching or on the order
examples are processed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..data.example import Example
from ..errors import ConfigError
from ..registry import augmenters
from ..tagging.spans import Entity
from ..text.normalize import normalize
from .base import ENTITY, Piece, Strategy, join, segment
from .protect import find_spans, number_value

log = logging.getLogger(__name__)

# What `zhcls augment` uses when no strategy is named (and the recipe the benchmark calls "default").
# Char-level noise plus same-POS replacement: no dictionary or vectors needed.
DEFAULT_RECIPE: dict[str, float] = {"delete.v1": 0.1, "swap.v1": 0.1, "insert.v1": 0.1, "pos.v1": 0.2}


@dataclass(frozen=True)
class Variant:
    text: str
    strategy: str
    entities: tuple[Entity, ...] | None = None  # the source's entities at their offsets in `text` (tagging data)


def build_strategy(name: str, options: Mapping[str, Any] | None = None) -> Strategy:
    from pydantic import ValidationError

    from ..config import format_validation_error

    entry = augmenters.get(name)
    try:
        params = entry.params.model_validate(dict(options or {}))
    except ValidationError as exc:
        raise ConfigError(
            f"augment {name}: {format_validation_error(exc)}",
            hint=f"valid keys for {name}: {', '.join(entry.params.model_fields)}",
        ) from None
    return entry.factory(params)


@dataclass
class Augmenter:
    strategies: list[Strategy]
    n: int = 4
    seed: int = 0
    protect: tuple[str, ...] = ()  # user terms kept whole and unchanged
    tries: int = 8
    fitted: bool = field(default=False, init=False, repr=False)

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, float | Mapping[str, Any]], **kwargs: Any) -> "Augmenter":
        """`{"delete.v1": 0.1, "synonym.v1": {"rate": 0.2, "path": "cilin.txt"}}` -> Augmenter."""
        strategies = [build_strategy(name, v if isinstance(v, Mapping) else {"rate": v}) for name, v in recipe.items()]
        return cls(strategies, **kwargs)

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ConfigError("no augmentation strategy given", hint=f"available: {', '.join(augmenters.names())}")
        self.protect = tuple(self.protect)

    def fit(self, texts: Sequence[str]) -> "Augmenter":
        """Corpus resources (the POS vocabulary, insertion and homophone frequencies) from `texts`."""
        for s in self.strategies:
            s.fit(texts)
        self.fitted = True
        return self

    def variants(self, text: str, rng: np.random.Generator, n: int | None = None, entities: tuple[Entity, ...] | None = None) -> list[Variant]:
        """Up to `n` distinct variants of `text`: never empty, never equal to `text`, protected spans
        intact. Fewer when the text is too short to vary (a one-character text, say). `entities`: annotated
        spans, each kept whole and unchanged, and given in each variant at its new offsets."""
        n = self.n if n is None else n
        spans = [s.text(text) for s in find_spans(text, self.protect)]
        cache: dict[str, list] = {}
        seen = {text}
        out: list[Variant] = []
        order = rng.permutation(len(self.strategies))
        for k in range(n):
            for j in range(len(self.strategies)):
                strategy = self.strategies[order[(k + j) % len(order)]]
                found = self._draw(strategy, text, spans, cache, seen, rng, entities)
                if found is not None:
                    seen.add(found[0])
                    out.append(Variant(found[0], strategy.name, found[1]))
                    break
        return out

    def _draw(self, strategy: Strategy, text: str, spans: list[str], cache: dict, seen: set[str], rng: np.random.Generator,
              entities: tuple[Entity, ...] | None = None) -> tuple[str, tuple[Entity, ...] | None] | None:
        if strategy.level not in cache:
            cache[strategy.level] = segment(text, strategy.level, self.protect, [(e.start, e.end) for e in entities or ()])
        pieces = cache[strategy.level]
        types = {id(p): e.type for p, e in zip((p for p in pieces if p.locked == ENTITY), entities or ())}
        for _ in range(self.tries):
            drawn = strategy.apply(pieces, rng)
            candidate = join(drawn)
            if candidate in seen or not normalize(candidate) or not spans_kept(spans, candidate, strategy, self.protect):
                continue
            if entities is None:
                return candidate, None
            moved = shifted_entities(drawn, types, strategy.may_drop_spans)
            if moved is not None:
                return candidate, moved
        return None

    def augment(self, examples: Sequence[Example], *, keep_original: bool = False) -> list[Example]:
        """Augmented examples (labels kept; meta: aug_source, aug_strategy), after each original if
        `keep_original`. Example i draws from `default_rng([seed, i])`."""
        out: list[Example] = []
        for i, ex in enumerate(examples):
            if keep_original:
                out.append(ex)
            rng = np.random.default_rng([self.seed, i])
            for k, v in enumerate(self.variants(ex.text, rng, entities=ex.entities)):
                meta = {**ex.meta, "aug_source": ex.source, "aug_strategy": v.strategy, "aug_index": i}
                out.append(replace(ex, text=v.text, copy=k + 1, meta=meta, entities=v.entities))
        return out


def shifted_entities(pieces: Sequence[Piece], types: dict[int, str], may_drop: bool) -> tuple[Entity, ...] | None:
    """The entities at their offsets in the joined `pieces` (`types`: id of each source entity piece -> its
    type). None when an entity piece is missing (unless the strategy may drop whole spans) or repeated."""
    out, seen, at = [], set(), 0
    for p in pieces:
        if id(p) in types:
            if id(p) in seen:
                return None
            seen.add(id(p))
            out.append(Entity(at, at + len(p.text), types[id(p)]))
        at += len(p.text)
    if len(seen) < len(types) and not may_drop:
        return None
    return tuple(sorted(out))


def spans_kept(spans: list[str], candidate: str, strategy: Strategy, terms: Sequence[str] = ()) -> bool:
    """The candidate shows the source's protected spans: the same ones in the same order; a
    sub-sequence for truncation; for equivalent.v1, numbers may be respelled with the same value."""
    found = [s.text(candidate) for s in find_spans(candidate, terms)]
    if found == spans:
        return True
    if strategy.may_drop_spans:
        it = iter(spans)
        return all(any(f == s for s in it) for f in found)
    if strategy.changes_numbers and len(found) == len(spans):
        return all(f == s or (number_value(f) is not None and number_value(f) == number_value(s)) for f, s in zip(found, spans))
    return False


# -- [[augment]] in training ------------------------------------------------------------------------
def augment_train(
    train: Sequence[Example], steps: Iterable[Any], *, held_out: Iterable[Example] = (), seed: int = 42
) -> tuple[list[Example], dict[str, int]]:
    """The train split plus the copies each `[[augment]]` step makes (`n` per example, its own seed,
    default `seed + step index`). A copy whose normalized text equals any train, dev or test text, or
    an earlier copy, is dropped, so augmentation never leaks an evaluation text into training."""
    taken = {normalize(e.text) for e in train} | {normalize(e.text) for e in held_out}
    texts = [e.text for e in train]
    added: list[Example] = []
    stats = {"augmented": 0, "duplicates_dropped": 0}
    for k, step in enumerate(steps):
        aug = Augmenter([build_strategy(step.name, step.options())], n=step.n, seed=seed + k if step.seed is None else step.seed).fit(texts)
        for ex in aug.augment(train):
            key = normalize(ex.text)
            if key in taken:
                stats["duplicates_dropped"] += 1
                continue
            taken.add(key)
            added.append(ex)
    stats["augmented"] = len(added)
    return list(train) + added, stats


def augment_for_run(cfg: Any, splits: Mapping[str, Sequence[Example]]) -> tuple[list[Example], dict[str, Any] | None]:
    """The train examples a run fits on: `splits["train"]` plus its `[[augment]]` copies (dev and test
    are never augmented, and no copy equals one of their texts). Without [[augment]]: train as it is."""
    train = list(splits["train"])
    if not cfg.augment:
        return train, None
    held_out = [e for name in ("dev", "test") for e in splits.get(name) or ()]
    out, stats = augment_train(train, cfg.augment, held_out=held_out, seed=cfg.training.seed)
    log.info("[[augment]]: %d copies added to %d train examples (%d dropped as duplicates)", stats["augmented"], len(train), stats["duplicates_dropped"])
    return out, {**stats, "n_original": len(train), "steps": [s.name for s in cfg.augment]}
