"""Data flows one way: no import cycle between the subpackages (and top-level modules) of zhcls.

Every `import` counts, at module level or inside a function, type-only ones too: a cycle deferred into
a function is still two packages that cannot be understood, tested or moved apart. The one edge left out
is the component registry loading the built-in components on first lookup (registry.py -> _builtins.py),
which is plugin discovery, like an entry point, not a dependency of the registry's code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import zhcls

ROOT = Path(zhcls.__file__).parent
ALLOWED = {("registry", "_builtins")}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for file in ROOT.rglob("*.py"):
        parts = list(file.relative_to(ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (file, is_package)
    return out


def _unit(module: str) -> str:
    """zhcls.models.base -> models; zhcls.config -> config; zhcls -> zhcls."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_graph() -> dict[str, dict[str, list[str]]]:
    """{unit: {imported unit: ["file:line", ...]}} over every import statement of zhcls."""
    modules = _modules()
    edges: dict[str, dict[str, list[str]]] = {}
    for module, (file, is_package) in modules.items():
        package = module if is_package else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target != "zhcls" and not target.startswith("zhcls."):
                    continue
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("zhcls.")]
            else:
                continue
            for target in targets:
                a, b = _unit(module), _unit(target)
                if a != b and b != "zhcls" and (a, b) not in ALLOWED:
                    edges.setdefault(a, {}).setdefault(b, []).append(f"{file.relative_to(ROOT)}:{node.lineno}")
    return edges


def cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(set(edges) | {w for targets in edges.values() for w in targets}):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_subpackages():
    edges = import_graph()
    found = cycles(edges)
    lines = [
        f"{a} -> {b}: {', '.join(edges[a][b][:3])}" for component in found for a in component for b in edges.get(a, {}) if b in component
    ]
    assert not found, "import cycles between subpackages:\n" + "\n".join(lines)


def test_the_check_finds_a_cycle():
    assert cycles({"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}, "d": {"a": ["w"]}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": ["x"]}}) == []


def test_models_do_not_import_training():
    assert "training" not in import_graph().get("models", {})
