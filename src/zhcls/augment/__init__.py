"""Data augmentation for Chinese text: registered strategies, a composable Augmenter, label-safe mode.

    from zhcls.augment import Augmenter, DEFAULT_RECIPE
    aug = Augmenter.from_recipe(DEFAULT_RECIPE, n=4, seed=1).fit(train_texts)
    more = aug.augment(train_examples)          # Examples with meta aug_source / aug_strategy

Strategies (`zhcls.registry.augmenters`): unk.v1, delete.v1, truncate.v1, swap.v1, insert.v1,
homophone.v1, equivalent.v1, pos.v1, synonym.v1, vectors.v1. See docs/augmentation.md.
"""

from .base import Piece, Strategy, StrategyParams, join, segment
from .guard import GuardResult, guard
from .pipeline import DEFAULT_RECIPE, Augmenter, Variant, augment_train, build_strategy
from .protect import find_spans

__all__ = [
    "DEFAULT_RECIPE", "Augmenter", "GuardResult", "Piece", "Strategy", "StrategyParams", "Variant",
    "augment_train", "build_strategy", "find_spans", "guard", "join", "segment",
]
