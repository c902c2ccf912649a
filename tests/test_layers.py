"""The layering ARCHITECTURE.md promises, checked on the source: which packages each layer may import
(module-level and function-level imports alike), and the pairs of modules that must not import
each other."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "shoprec"

#: layer → the shoprec packages it may import (besides itself, exceptions and progress)
ALLOWED = {
    "data": set(),
    "strategies": {"data"},
    "evaluation": {"data", "strategies"},
    "scenarios": {"data", "strategies", "evaluation"},
    "online": {"data", "strategies", "evaluation", "scenarios"},
    "health": {"data", "strategies", "evaluation", "scenarios"},
    "logistics": {"data"},
    "privacy": {"data"},
}
COMMON = {"exceptions", "progress", "__init__", "__version__"}


def shoprec_imports(path: Path) -> set[str]:
    """Dotted names (below shoprec) a module imports, resolving relative imports."""
    mod = path.relative_to(SRC.parent).with_suffix("").parts
    package = mod[:-1] if path.name != "__init__.py" else mod[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ((node.module,) if node.module else ()))
            else:
                name = node.module or ""
            targets = [name] + [f"{name}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out.update(t for t in targets if t.startswith("shoprec"))
    return out


def modules(layer: str):
    return sorted((SRC / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below(layer):
    bad = []
    for path in modules(layer):
        for name in shoprec_imports(path):
            parts = name.split(".")
            top = parts[1] if len(parts) > 1 else "__init__"
            if top != layer and top not in ALLOWED[layer] | COMMON:
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts)


@pytest.mark.parametrize(("a", "b"), [("scenarios/pipeline.py", "scenarios/fusion"),
                                      ("scenarios/artifact.py", "scenarios/engine.py"),
                                      ("service/store.py", "service/store_sqlite.py"),
                                      ("service/store.py", "service/store_postgres.py"),
                                      ("service/bus.py", "service/bus_redis.py")])
def test_these_modules_do_not_import_each_other(a, b):
    """The pipeline may use fusion, but fusion never reaches back into the pipeline; the artifact
    knows the pipeline, not the Recommender; a backend's base class knows none of its backends."""
    first = [SRC / a] if (SRC / a).is_file() else sorted((SRC / a).rglob("*.py"))
    second = [SRC / b] if (SRC / b).is_file() else sorted((SRC / b).rglob("*.py"))
    names_b = {module_name(p) for p in second}
    names_a = {module_name(p) for p in first}
    a_to_b = any(i in names_b or any(i.startswith(n + ".") for n in names_b)
                 for p in first for i in shoprec_imports(p))
    b_to_a = any(i in names_a or any(i.startswith(n + ".") for n in names_a)
                 for p in second for i in shoprec_imports(p))
    assert not (a_to_b and b_to_a), f"{a} and {b} import each other"
    if b.startswith("service/store_") or b.startswith("service/bus_") or b == "scenarios/engine.py":
        assert not a_to_b, f"{a} must not import {b}"
    if b == "scenarios/fusion":
        assert not b_to_a, f"{b} must not import {a}"
