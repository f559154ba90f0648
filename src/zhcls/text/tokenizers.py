"""Tokenizers: `text -> list[str]`, registered by versioned name. They see normalized text."""

from __future__ import annotations

import re
from typing import Callable

from pydantic import BaseModel, ConfigDict

from ..registry import tokenizers

Tokenizer = Callable[[str], list[str]]

# A run of Latin letters or digits is one token (an English word or a number, "iphone13"), every
# other visible character is its own token: Chinese is read character by character.
_CHAR_RE = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]", re.IGNORECASE)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@tokenizers.register("char.v1", params=NoParams)
def make_char(params: NoParams | None = None) -> Tokenizer:
    return _CHAR_RE.findall


@tokenizers.register("jieba.v1", params=NoParams)
def make_jieba(params: NoParams | None = None) -> Tokenizer:
    try:
        import jieba
    except ImportError as exc:  # pragma: no cover - depends on the install
        from ..errors import ConfigError

        raise ConfigError("tokenizer 'jieba.v1' needs the jieba package", hint="pip install 'zhcls[jieba]'") from exc
    import logging

    jieba.setLogLevel(logging.WARNING)

    def tokenize(text: str) -> list[str]:
        return [t for t in jieba.lcut(text) if not t.isspace()]

    return tokenize


def get_tokenizer(name: str) -> Tokenizer:
    return tokenizers.get(name).factory()
