"""The house plan, checked: allocation/ imports run one way only and never import Airflow.

entry points (cli) -> rounds -> publish / explain -> solve -> model -> intake / scoring -> contracts.
Every import counts, module-level and function-local alike; a function-local import is not
allowed at all (it is how a circle hides).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "allocation"
LAYERS = {   # top-level part of allocation -> layer; an import may only go to the same or a lower layer
    "schema": 0, "config": 0, "errors": 0, "identifiers": 0, "files": 0, "text": 0,
    "intake": 1, "scoring": 1,
    "model": 2,
    "solve": 3,
    "explain": 4, "publish": 4,
    "rounds": 5,
    "cli": 6, "__main__": 6,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path):
    """(target module, line, function-local?) for every import of the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            yield target, node.lineno, id(node) in local


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(name, path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + ".") \
                    and not target.startswith(name + "."):
                edges[name].add(target)
    return edges


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1]] if "." in module else 99


def test_every_part_of_the_package_has_a_layer():
    parts = {m.split(".")[1] for m in _modules() if "." in m}
    assert parts <= set(LAYERS), parts - set(LAYERS)


def test_imports_only_run_downwards():
    upward = [(m, t) for m, targets in _graph().items() for t in targets
              if m != "allocation" and t != "allocation" and _layer(t) > _layer(m)]
    assert upward == []


def test_no_import_circle():
    edges = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_no_function_local_import_and_no_airflow():
    local, airflow = [], []
    for name, path in _modules().items():
        for target, line, is_local in _imports(name, path):
            if is_local:
                local.append(f"{name}:{line} {target}")
            if target.split(".")[0] == "airflow":
                airflow.append(f"{name}:{line}")
    assert local == [] and airflow == []
