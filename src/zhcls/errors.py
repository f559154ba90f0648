"""Errors a user can fix. The CLI prints them as `error:` + `hint:` and exits 2."""

from __future__ import annotations


class ZhclsError(Exception):
    """Base of every error caused by input the user controls (files, configs, requests)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class ConfigError(ZhclsError):
    """A config file, a `--set` override or a registry name is wrong."""


class DataError(ZhclsError):
    """A data file is missing, unreadable or malformed."""


class NotFittedError(ZhclsError):
    """A model was used before `fit` or `load`."""


class RunError(ZhclsError):
    """A run directory is in a state the command cannot continue from."""


class ExportError(ZhclsError):
    """The model cannot be exported, or the exported model disagrees with it."""
