"""Named, versioned components (`textcnn.v1`). Configs pick them by name, never by import path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from pydantic import BaseModel

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    params: type[BaseModel]
    factory: Callable[..., T]


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, params: type[BaseModel]) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, params, factory)
            return factory

        return decorator

    def names(self) -> list[str]:
        _load_builtins()
        return sorted(self._entries)

    def get(self, name: str) -> Entry[T]:
        _load_builtins()
        if name not in self._entries:
            import difflib

            close = difflib.get_close_matches(name, self._entries, n=1)
            guess = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}",
                hint=f"{guess}available: {', '.join(sorted(self._entries))}",
            )
        return self._entries[name]


def _load_builtins() -> None:
    # Registration happens on import; importing here keeps `registry.models.names()` complete
    # without making every caller remember which modules to import first.
    from . import _builtins  # noqa: F401


models: Registry[Any] = Registry("model")
tokenizers: Registry[Any] = Registry("tokenizer")
augmenters: Registry[Any] = Registry("augmenter")
