"""The package's imports point down: no cycle, and none of the forbidden arrows.

The graph is read from the source (``ast``), so an import hidden inside a function counts
like one at the top; imports under ``if TYPE_CHECKING:`` do not (they never run). See
ARCHITECTURE.md for the layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import vividly_trace

PACKAGE = Path(vividly_trace.__file__).parent
ROOT = "vividly_trace"

# (from, to) prefixes that must never be joined by an import: the renovation's arrows.
FORBIDDEN = [
    ("vividly_trace.sinks", "vividly_trace._config"),
    ("vividly_trace.sinks", "vividly_trace._pipeline"),
    ("vividly_trace.sinks", "vividly_trace._decorator"),
    ("vividly_trace.sinks", "vividly_trace._api"),
    ("vividly_trace.sinks", ROOT),  # the face (``from .. import __version__``)
    ("vividly_trace.pricing", "vividly_trace._config"),
    ("vividly_trace.pricing", "vividly_trace._pipeline"),
    ("vividly_trace.pricing", ROOT),
    ("vividly_trace.usage", "vividly_trace.sinks"),
    ("vividly_trace.usage", "vividly_trace.pricing"),
    ("vividly_trace.usage", "vividly_trace._config"),
    ("vividly_trace.integrations", "vividly_trace._config"),
    (ROOT, "vividly_trace.analytics"),
]

# Layers, top to bottom: a module may import from its own layer or any layer below.
LAYERS: list[tuple[str, ...]] = [
    (
        "vividly_trace.cli",
        "vividly_trace.alerts",
        "vividly_trace.prompts",
        "vividly_trace.dashboard",
        "vividly_trace.analytics",
        "vividly_trace.testing",
        "vividly_trace.middleware",
    ),
    (ROOT, "vividly_trace.examples"),
    ("vividly_trace._decorator", "vividly_trace._api"),
    ("vividly_trace._config",),
    ("vividly_trace.integrations",),
    ("vividly_trace._pipeline",),
    ("vividly_trace._dispatch",),
    ("vividly_trace._build", "vividly_trace.sinks"),
    ("vividly_trace._call", "vividly_trace.pricing", "vividly_trace._trace"),
    (
        "vividly_trace.usage",
        "vividly_trace._content",
        "vividly_trace._context",
        "vividly_trace._scope",
        "vividly_trace._errors",
        "vividly_trace._spool",
        "vividly_trace._assign",
    ),
    (
        "vividly_trace._record",
        "vividly_trace._safety",
        "vividly_trace._ids",
        "vividly_trace._active",
        "vividly_trace._score",
    ),
    (
        "vividly_trace._jsonsafe",
        "vividly_trace._lazy",
        "vividly_trace._lifecycle",
        "vividly_trace._version",
        "vividly_trace.exceptions",
    ),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    found = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    assert len(found) > 40, "the package was not found"
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


@cache
def _imports(module: str) -> frozenset[str]:
    """The package modules ``module`` imports (at run time, anywhere in its code)."""
    path = _modules()[module]
    is_package = path.name == "__init__.py"
    modules = _modules()
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve(module, is_package, node.level, node.module)
            else:
                target = node.module or ""
            # ``from . import _call`` imports the submodule; ``from .. import x`` the face.
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            targets = subs if len(subs) == len(node.names) else [target, *subs]
        for target in targets:
            if target.startswith(ROOT):
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != module:
                    out.add(target)
    return frozenset(out)


def _edges() -> list[tuple[str, str]]:
    return [(m, t) for m in sorted(_modules()) for t in sorted(_imports(m))]


def _within(module: str, prefix: str) -> bool:
    if prefix == ROOT:
        return module == ROOT
    return module == prefix or module.startswith(prefix + ".")


def _layer(module: str) -> int:
    best = (-1, -1)  # (length of the matching prefix, layer index)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if _within(module, prefix) and len(prefix) > best[0]:
                best = (len(prefix), index)
    assert best[1] >= 0, f"{module} is in no layer: add it to LAYERS (and ARCHITECTURE.md)"
    return best[1]


class TestImportGraph:
    def test_the_graph_is_read(self) -> None:
        """The parser finds the imports it must (else every other test here passes idly)."""
        assert "vividly_trace._config" in _imports("vividly_trace._decorator")
        assert "vividly_trace._build" in _imports("vividly_trace._dispatch")
        assert "vividly_trace.sinks" in _imports("vividly_trace._config")  # inside a function
        assert "vividly_trace._call" not in _imports("vividly_trace._context")  # TYPE_CHECKING
        assert len(_edges()) > 100

    def test_no_cycle(self) -> None:
        """No module reaches itself through its imports."""
        graph = {m: _imports(m) for m in _modules()}
        cycles: list[list[str]] = []
        state: dict[str, int] = {}  # 1: on the current path, 2: done

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for nxt in sorted(graph[node]):
                if state.get(nxt) == 1:
                    cycles.append([*path[path.index(nxt) :], nxt])
                elif nxt not in state:
                    visit(nxt, [*path, nxt])
            state[node] = 2

        for module in sorted(graph):
            if module not in state:
                visit(module, [module])
        assert cycles == []

    @pytest.mark.parametrize(("source", "target"), FORBIDDEN)
    def test_forbidden_arrow(self, source: str, target: str) -> None:
        """None of the arrows the renovation removed is back."""
        bad = [(m, t) for m, t in _edges() if _within(m, source) and _within(t, target)]
        assert bad == []

    def test_arrows_point_down(self) -> None:
        """Every import goes to the module's own layer or a lower one (ARCHITECTURE.md)."""
        up = [f"{m} -> {t}" for m, t in _edges() if _layer(t) < _layer(m)]
        assert up == []

    def test_private_all_lists_what_others_import(self) -> None:
        """A name imported from a private module is in that module's ``__all__``."""
        missing = []
        for module, path in sorted(_modules().items()):
            is_package = path.name == "__init__.py"
            for node in _runtime_nodes(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or not node.level:
                    continue
                target = _resolve(module, is_package, node.level, node.module)
                if target not in _modules() or not target.rsplit(".", 1)[-1].startswith("_"):
                    continue
                exported = _all_of(target)
                for alias in node.names:
                    if alias.name not in exported:
                        missing.append(f"{module}: {target}.{alias.name}")
        assert missing == []


@cache
def _all_of(module: str) -> frozenset[str]:
    tree = ast.parse(_modules()[module].read_text())
    for node in tree.body:
        value = None
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        ) or (isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "__all__"):
            value = node.value
        if value is not None:
            return frozenset(ast.literal_eval(value))
    raise AssertionError(f"{module} has no literal __all__")


def test_every_package_is_installed() -> None:
    """Each package directory is in pyproject's ``packages`` (a wheel leaves out the rest)."""
    import tomllib

    pyproject = PACKAGE.parent / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    listed = set(tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["packages"])
    found = {
        _module_name(p)
        for p in PACKAGE.rglob("__init__.py")
        if not _module_name(p).startswith("vividly_trace.examples")
    }
    assert found - listed == set()


def test_import_loads_no_analytics_module() -> None:
    """``import vividly_trace`` (in a fresh interpreter) loads nothing of analytics."""
    code = (
        "import sys, vividly_trace; "
        "print(sorted(m for m in sys.modules if m.startswith('vividly_trace.analytics')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
