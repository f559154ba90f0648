"""Latency and size budgets, applied alike by `zhcls build` and `zhcls compress` to their candidates'
rows ({"p50_ms", "size_mb", ...}: p50 per text on one thread, tokenization included; bundle size)."""

from __future__ import annotations

from typing import Any


def within(row: dict[str, Any], budget_ms: float | None, budget_mb: float | None) -> bool:
    return (budget_ms is None or row["p50_ms"] <= budget_ms) and (budget_mb is None or row["size_mb"] <= budget_mb)


def budget_text(budget_ms: float | None, budget_mb: float | None) -> str:
    """"p50 <= 0.1 ms, size <= 20 MB", or "no budget"."""
    parts = ([f"p50 <= {budget_ms} ms"] if budget_ms is not None else []) + ([f"size <= {budget_mb} MB"] if budget_mb is not None else [])
    return ", ".join(parts) or "no budget"
