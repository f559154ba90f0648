"""zhcls registry add BUNDLE --name NAME [--version ID] | list [NAME] | promote NAME VERSION [--alias production] | resolve URI"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from . import _common

app = typer.Typer(help="Model registry of bundle versions and aliases.\n\nVersions are immutable; aliases move (registry://NAME@production).",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None)
RootOption = typer.Option(None, "--root", help="Registry directory (default: $ZHCLS_REGISTRY, else ./registry).")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="registry")


@app.command("add")
def add(
    bundle: Path = typer.Argument(..., help="A bundle directory (what `zhcls export` wrote)."),
    name: str = typer.Option(..., "--name", help="Model name, e.g. reviews-sentiment."),
    version: Optional[str] = typer.Option(None, "--version", help="Version id (default: a UTC timestamp with a random tail)."),
    root: Optional[Path] = RootOption,
) -> None:
    """Add a bundle to the registry as a new version.

    The bundle is verified and copied; the version is immutable. Prints NAME@VERSION."""
    from ..serve.model_registry import ModelRegistry

    row = ModelRegistry(root).add(bundle, name, version)
    print(f"{row['name']}@{row['version']}")
    _common.err(f"registered {bundle} -> {row['path']}")


@app.command("list")
def list_(
    name: Optional[str] = typer.Argument(None, help="Only this model's versions."),
    root: Optional[Path] = RootOption,
    as_json: bool = typer.Option(False, "--json", help="Print the versions as JSON."),
) -> None:
    """List registered versions with aliases and metrics.

    Oldest first, with their aliases and test metrics."""
    from ..serve.model_registry import ModelRegistry

    rows = ModelRegistry(root).list(name)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        _common.err("the registry is empty")
        return
    _table(rows)


@app.command("promote")
def promote(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="Version to promote (or an alias / 'latest')."),
    alias: str = typer.Option("production", "--alias", help="Alias to point at the version."),
    root: Optional[Path] = RootOption,
) -> None:
    """Point an alias (default: production) at a version."""
    from ..serve.model_registry import ModelRegistry

    row = ModelRegistry(root).promote(name, version, alias)
    print(f"{name}@{alias} -> {row['version']}")


@app.command("resolve")
def resolve(
    uri: str = typer.Argument(..., help="registry://NAME@production, registry://NAME@VERSION or registry://NAME@latest."),
    root: Optional[Path] = RootOption,
) -> None:
    """Print the bundle directory a registry URI stands for."""
    from ..serve.model_registry import resolve_bundle

    print(resolve_bundle(uri, root))


def _table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(show_edge=False)
    for col in ("name", "version", "aliases", "model", "test acc", "test macro_f1", "created"):
        table.add_column(col, justify="right" if col.startswith("test") else "left")
    for r in rows:
        test = (r.get("metrics") or {}).get("test") or {}
        cells = [f"{test[k]:.4f}" if isinstance(test.get(k), (int, float)) else "–" for k in ("accuracy", "macro_f1")]
        table.add_row(r["name"], r["version"], ", ".join(r["aliases"]) or "–", r["model"] or "?", *cells, r["created"][:19])
    _common.make_console().print(table)
