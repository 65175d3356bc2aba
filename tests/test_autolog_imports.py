"""Autologging's module structure, and what happens when the library it patches is missing.

No import cycles between a flavor and its autologging integration: the integration logs
models through the flavor module, which hands itself over, so neither imports the other
in both directions.  Without scikit-learn (or XGBoost) installed, autolog() raises
gitexp's MissingDependency naming the extra to install -- checked in a real interpreter
where the library is made unimportable (``sys.modules[name] = None``, Python's own way
of marking a module as not importable).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gitexp"


def _imports(path: Path) -> set[str]:
    """Every gitexp module `path` imports, at module level or inside functions."""
    package = ["gitexp", *path.relative_to(SRC).with_suffix("").parts]
    if package[-1] == "__init__":
        package = package[:-1]
    else:
        package = package[:-1]  # the module's package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("gitexp")}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if not module.startswith("gitexp"):
                continue
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _module_name(path: Path) -> str:
    parts = ["gitexp", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_its_own_importer_among_flavors_and_integrations():
    graph = {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}
    modules = set(graph)
    graph = {m: {i for i in deps if i in modules and i != m} for m, deps in graph.items()}
    for flavor in ("sklearn", "xgboost"):
        public, integration = f"gitexp.{flavor}", f"gitexp._autolog.{flavor}"
        assert integration in graph[public]
        assert public not in graph[integration], f"{integration} imports {public}: an import cycle"
    # No submodule of _autolog reaches back into the package's __init__, nor into a flavor.
    for name, deps in graph.items():
        if name.startswith("gitexp._autolog."):
            assert "gitexp._autolog" not in deps, f"{name} imports gitexp._autolog (its own package's __init__)"
            assert not deps & {"gitexp.sklearn", "gitexp.xgboost"}, name


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_the_autolog_modules_form_no_cycle():
    graph = {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}
    modules = {m for m in graph if m.startswith("gitexp._autolog") or m in ("gitexp.sklearn", "gitexp.xgboost")}
    graph = {m: {i for i in graph[m] if i in modules and i != m} for m in modules}
    for module in modules:
        assert module not in _reachable(graph, module), f"{module} is part of an import cycle"


_WITHOUT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # "import name" now raises ModuleNotFoundError
import gitexp.{flavor}
from gitexp.exceptions import MissingDependency
try:
    gitexp.{flavor}.autolog()
except MissingDependency as exc:
    print("MissingDependency", exc.extra, exc.library)
    print(exc)
gitexp.{flavor}.autolog(disable=True)  # turning it off needs nothing
print("disable ok")
"""


@pytest.mark.parametrize("flavor,blocked,library", [
    ("sklearn", ["sklearn"], "scikit-learn"),
    ("xgboost", ["xgboost"], "xgboost"),
    ("xgboost", ["sklearn"], "scikit-learn"),
])
def test_autolog_without_the_library_names_the_extra(tmp_path, flavor, blocked, library):
    result = subprocess.run([sys.executable, "-c", _WITHOUT.format(flavor=flavor, blocked=blocked)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    first, message, last = result.stdout.splitlines()[-3:]
    assert first == f"MissingDependency {flavor} {library}"
    assert f"pip install 'gitexp[{flavor}]'" in message and library in message
    assert f"gitexp.{flavor}.autolog()" in message
    assert last == "disable ok"
    assert "ModuleNotFoundError" not in result.stderr
