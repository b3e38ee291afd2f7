"""The package's shape, read from its source with ``ast``: one-way imports, no cycles, no method names in the
generic layers, small workflow functions and click commands."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import camkit.methods

PACKAGE = Path(camkit.methods.__file__).resolve().parents[1]
# Lower layers first: a module may import its own layer, lower layers and the base modules, nothing above.
LAYERS = ("data", "models", "methods", "metrics", "plots", "workflows", "cli")
BASE = ("camkit", "camkit.errors", "camkit.io", "camkit.config")
GENERIC = ("workflows", "cli", "plots", "metrics")  # no registered method name as a string literal here


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """camkit modules that ``path`` imports anywhere (module level or inside functions)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: up (level - 1) packages from this module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imported(path, set(mods)) - {name} for name, path in mods.items()}


def layer(module: str) -> int:
    """Index in LAYERS of a module's subpackage; -1 for the base modules."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_imports_go_one_way() -> None:
    graph = import_graph()
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                    if (d not in BASE and layer(d) > layer(m)) or (layer(m) == -1 and d not in BASE))
    assert upward == []


def test_nothing_imports_the_root_package() -> None:
    graph = import_graph()
    assert sorted(m for m, deps in graph.items() if "camkit" in deps and m != "camkit") == []


def test_top_level_holds_only_entry_points() -> None:
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py")
    assert top == ["__init__.py", "config.py", "errors.py", "io.py"]
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)


def string_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """String constants that are not docstrings."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


@pytest.mark.parametrize("package", GENERIC)
def test_no_method_name_literals_in_generic_code(package: str) -> None:
    names = set(camkit.methods())
    found = [f"{path.relative_to(PACKAGE)}:{line}: {value!r}" for path in sorted((PACKAGE / package).rglob("*.py"))
             for line, value in string_literals(ast.parse(path.read_text())) if value in names]
    assert found == []


def functions(path: Path) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def n_params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    named = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    return len([p for p in named if p.arg not in ("self", "cls")])


def test_workflow_functions_are_small() -> None:
    too_big = [f"{path.relative_to(PACKAGE)}:{fn.lineno} {fn.name}: {fn.end_lineno - fn.lineno + 1} lines, "
               f"{n_params(fn)} parameters"
               for path in sorted((PACKAGE / "workflows").rglob("*.py")) for fn in functions(path)
               if fn.end_lineno - fn.lineno + 1 > 60 or n_params(fn) > 10]
    assert too_big == []


def is_click_command(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
               for d in fn.decorator_list)


def test_click_commands_only_parse_and_call() -> None:
    long = [f"{path.relative_to(PACKAGE)}:{fn.lineno} {fn.name}: {fn.end_lineno - fn.lineno + 1} lines"
            for path in sorted((PACKAGE / "cli").rglob("*.py")) for fn in functions(path)
            if is_click_command(fn) and fn.end_lineno - fn.lineno + 1 > 60]
    commands = [fn for path in sorted((PACKAGE / "cli").rglob("*.py")) for fn in functions(path)
                if is_click_command(fn)]
    assert len(commands) >= 8  # convert-sktime, make-benchmark, models, train, evaluate, run, explain, ...
    assert long == []


def test_no_module_imports_another_modules_private_names() -> None:
    private = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("camkit"):
                private += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.module}.{a.name}"
                            for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []
