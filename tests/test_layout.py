"""The house's layout holds: no import cycles between its parts, and the domain stays pure.

Imports are read from the source (module level, function level alike; `if TYPE_CHECKING:`
blocks left out, they never run). A part is a package under `queue_service/` (`web`,
`store`, `engine`, ...), a top-level module of it (`read_models`, `stream`, ...), or
`devices`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("queue_service", "devices")
# What the domain may import of Antrian besides itself: the exception root.
DOMAIN_MAY_IMPORT = frozenset({"queue_service.domain", "queue_service.errors"})
# The standard library's I/O the domain must not reach for (its clock is injected).
DOMAIN_NO_IO = frozenset({"asyncio", "asyncpg", "aiohttp", "socket", "serial", "subprocess"})


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                if not is_package:
                    anchor.pop()
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _without_type_checking(tree: ast.Module) -> ast.Module:
    class Strip(ast.NodeTransformer):
        def visit_If(self, node: ast.If) -> ast.AST | None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                return None
            self.generic_visit(node)
            return node

    stripped = Strip().visit(tree)
    assert isinstance(stripped, ast.Module)
    return stripped


def imports() -> dict[str, set[str]]:
    """Each module of ours -> the modules of ours it imports, and the outside names too."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for module, path in mods.items():
        tree = _without_type_checking(ast.parse(path.read_text(encoding="utf-8")))
        targets: set[str] = set()
        for name in _imported_names(tree, module, path.name == "__init__.py"):
            target = name
            while target and target not in mods and target.partition(".")[0] in PACKAGES:
                target = target.rpartition(".")[0]
            if target and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def part(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "queue_service" else parts[0]


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules_or_parts() -> None:
    graph = imports()
    ours = {m: {t for t in targets if t in graph} for m, targets in graph.items()}
    assert cycles(ours) == []
    parts: dict[str, set[str]] = {}
    for module, targets in ours.items():
        parts.setdefault(part(module), set()).update(
            part(t) for t in targets if part(t) != part(module)
        )
    assert cycles(parts) == [], "parts import each other in a cycle"


def test_the_domain_imports_only_itself_the_error_root_and_no_io() -> None:
    problems = []
    for module, targets in imports().items():
        if not module.startswith("queue_service.domain"):
            continue
        for target in sorted(targets):
            top = target.partition(".")[0]
            if top in PACKAGES and not any(
                target == allowed or target.startswith(allowed + ".")
                for allowed in DOMAIN_MAY_IMPORT
            ):
                problems.append(f"{module} imports {target}")
            if top in DOMAIN_NO_IO:
                problems.append(f"{module} imports {target} (I/O)")
    assert problems == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The check above could pass by finding nothing at all: it finds a planted cycle.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
