"""A Hugging Face fast tokenizer at serving time, through the `tokenizers` package alone (no torch, no
transformers), with the Featurizer's interface that the Predictor uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .normalize import normalize


class HFTokenIds:
    """full_tokens(text) -> the text's ids without special tokens; encode_tokens(ids) -> with them.

    Truncation keeps the special tokens, as transformers' `truncation=True` does: `max_len` is the
    checkpoint's max_length less the specials, so [CLS] ... [SEP] survive a long text.
    """

    def __init__(self, path: Path, spec: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path / spec["file"]))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.lowercase = bool(spec.get("lowercase", False))
        plain = self._tok.encode("中", add_special_tokens=False).ids
        full = self._tok.encode("中", add_special_tokens=True).ids
        at = next((i for i in range(len(full)) if full[i : i + len(plain)] == plain), 0)
        self._prefix, self._suffix = full[:at], full[at + len(plain) :]
        self.max_len = int(spec["max_length"]) - len(self._prefix) - len(self._suffix)

    def full_tokens(self, text: str) -> list[int]:
        return self._tok.encode(normalize(text, lowercase=self.lowercase), add_special_tokens=False).ids

    def encode_tokens(self, ids: list[int]) -> list[int]:
        return self._prefix + list(ids) + self._suffix
