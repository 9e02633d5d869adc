"""The layers, read from the source with `ast` (nothing is imported): no module imports from a
layer above its own, and no two modules import each other, directly or round a loop, counting
imports inside functions. `docs/architecture.md` draws the same order."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cadenza"

# Lowest first. A module may import from its own layer and the layers before it, never after.
LAYERS = [
    ("base", ["cadenza.errors", "cadenza.paths", "cadenza.pypi_parts", "cadenza.hookspecs", "cadenza.prompts"]),
    ("core", ["cadenza.media", "cadenza.runtime", "cadenza.workspace"]),
    ("llm", ["cadenza.llm"]),
    ("tools", ["cadenza.tools"]),
    ("engine", ["cadenza.engine"]),
    ("agent", ["cadenza.agent"]),
    ("front", ["cadenza.cli", "cadenza.doctor", "cadenza.progress", "cadenza.server", "cadenza.__main__", "cadenza"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index of the layer whose longest prefix matches `module`."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    if best is None:
        raise AssertionError(f"module {module} is in no layer: add it to LAYERS and docs/architecture.md")
    return best


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str) -> list[tuple[str, int]]:
    """(imported cadenza module, line) for every import statement in the module, at any depth.
    Imports under `if TYPE_CHECKING:` never run, so they are left out."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # `from . import speak` names a module; `from .x import f` names a value
                sub = f"{target}.{a.name}"
                found.append((sub if sub in MODULES else target, node.lineno))
    return [(m, line) for m, line in found if m == "cadenza" or m.startswith("cadenza.")]


def internal(name: str) -> str:
    """The module an import names: itself, or the nearest enclosing module we have."""
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name


GRAPH = {m: sorted({internal(t) for t, _ in imports_of(m)} - {m}) for m in MODULES}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_no_import_reaches_up_a_layer():
    bad = []
    for m in MODULES:
        for target, line in imports_of(m):
            t = internal(target)
            if layer_of(t) > layer_of(m):
                bad.append(f"{MODULES[m].relative_to(ROOT)}:{line}: {m} ({LAYERS[layer_of(m)][0]}) imports "
                           f"{t} ({LAYERS[layer_of(t)][0]})")
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for d in graph.get(n, ()):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        path.pop()
        state[n] = 2
        return None

    for n in graph:
        if n not in state:
            cycle = visit(n)
            if cycle:
                return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_what_they_should(tmp_path):
    """The cycle finder finds a loop through a function-level import, and the import reader sees
    imports inside functions and resolves relative ones."""
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None
    inner = {t for t, _ in imports_of("cadenza.engine.workflow")}
    assert "cadenza.engine.executor" in inner
    deferred = {t for t, _ in imports_of("cadenza.llm.chat")}  # LocalChatModel is imported inside a function
    assert "cadenza.llm.local" in deferred


def test_architecture_doc_names_the_same_layers():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    positions = [doc.find(f"`{name}`") for name, _ in LAYERS]
    assert all(p >= 0 for p in positions), [name for (name, _), p in zip(LAYERS, positions) if p < 0]
    assert positions == sorted(positions), "docs/architecture.md lists the layers in another order"


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_every_package_says_what_lives_there(package):
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text()))
    assert doc and len(doc.split()) >= 8, f"{package} needs a docstring saying what lives there"
