"""The package layout's rules, read from the source: no import cycle, one place that runs programs, and
a short top level (the architecture is in the packages' names)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "src/imagepipe"


def module_name(path: Path) -> str:
    parts = ["imagepipe", *path.relative_to(PKG).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports at module level (lazy imports inside functions are excluded:
    they are how a cycle is broken on purpose)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("imagepipe"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    return {name: {dep for dep in imports(path, set(files))
                   # a module importing its own package's __init__ (and the reverse, for re-exports) is no cycle
                   if dep != name and not name.startswith(dep + ".") and not dep.startswith(name + ".")}
            for name, path in files.items()}


def test_no_module_imports_itself_through_others():
    try:
        order = list(graphlib.TopologicalSorter(graph()).static_order())
    except graphlib.CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None
    assert "imagepipe.exec.runner" in order


def test_no_module_but_the_runner_imports_subprocess():
    users = sorted(module_name(p) for p in PKG.rglob("*.py")
                   if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "subprocess" in
                          ([a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""])
                          for n in ast.walk(ast.parse(p.read_text()))))
    assert users == ["imagepipe.exec.runner"]


def test_the_top_level_holds_packages_and_at_most_eight_modules():
    modules = sorted(p.name for p in PKG.glob("*.py"))
    assert len(modules) <= 8, modules
    assert all(len(p.read_text().splitlines()) > 3 for p in PKG.glob("*.py") if p.name != "__init__.py")
