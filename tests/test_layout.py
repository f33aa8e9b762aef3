"""The package's layering (README, Layout): each layer imports only from the layers below it.

``errors``/``console`` and ``cpu`` <- ``formats`` <- ``model``, ``data`` <- ``embedding`` <-
``training`` <- ``commands``; ``cpu`` imports nothing else from elmo_lm. Imports inside
functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "elmo_lm"
LAYER = {
    "errors": 0,
    "console": 0,
    "cpu": 0,
    "formats": 1,
    "model": 2,
    "data": 2,
    "embedding": 3,
    "training": 4,
    "commands": 5,
}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts): p
        for p in sorted(PACKAGE.rglob("*.py"))
    }


def _imports(path: Path, module: str) -> set[str]:
    """The elmo_lm modules ``path`` imports (``from elmo_lm.x import y`` names ``elmo_lm.x``,
    or ``elmo_lm.x.y`` where y is a module)."""
    modules = _modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("elmo_lm")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("elmo_lm"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(
                        sub if sub in modules or f"{sub}.__init__" in modules else node.module
                    )
    found.discard(module)
    return found


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__init__" else None


def test_every_module_has_a_layer():
    homeless = [m for m in _modules() if _part(m) not in LAYER and m != "elmo_lm.__init__"]
    assert not homeless


def test_no_module_imports_from_its_own_layer_or_above():
    wrong = []
    for module, path in _modules().items():
        part = _part(module)
        if part is None:  # the package face, elmo_lm/__init__.py
            continue
        for imported in _imports(path, module):
            other = _part(imported)
            if other is None:
                wrong.append(f"{module} imports the package face {imported}")
            elif other == part:
                continue
            elif LAYER[other] >= LAYER[part]:
                wrong.append(f"{module} (layer {LAYER[part]}) imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_cpu_imports_nothing_else_from_the_package():
    wrong = [
        (module, imported)
        for module, path in _modules().items()
        if _part(module) == "cpu"
        for imported in _imports(path, module)
        if _part(imported) != "cpu"
    ]
    assert not wrong


def test_no_import_cycle():
    graph = {m: {i for i in _imports(p, m) if i in _modules()} for m, p in _modules().items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError(" -> ".join([*stack[stack.index(n) :], n]))
            if n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_modules_stay_readable():
    long = {
        m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these (over {MAX_LINES} lines): {long}"
