"""The house: each stage in its folder, imports only downward, no cycle (issue 13).

Layers, lowest first: core → rulefiles → calc → workbook → runs → ops → web → the command line and the package's
front door (`allocation/__init__.py`, `__main__.py`, the `cli/` package). A module may import its own layer and
the layers below, never above, also not inside a function (a lazy import is still a dependency). Read from the
source with `ast`, so the test sees every import, whether or not it runs.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "allocation"
LAYERS = ["core", "rulefiles", "calc", "workbook", "runs", "ops", "web", "<top>"]


def _layer(module: str) -> str:
    """`allocation.calc.levies` -> `calc`; `allocation`, `allocation.cli` -> `<top>`."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in LAYERS else "<top>"


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of the package in the file, lazy ones included."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            else:
                names = [node.module or ""]
            found += [(node.lineno, name) for name in names if name == "allocation" or name.startswith("allocation.")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("allocation")]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "notice_templates" not in p.parts)


def test_every_module_sits_in_a_layer_folder_or_is_the_front_door():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert loose == [], "modules outside the layer folders"
    # the command line is the front door's one folder: a package of its own, on the top floor with `__init__.py`
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")} == {*LAYERS[:-1], "cli"}


def test_imports_only_go_downward():
    upward = []
    for path in _modules():
        own = LAYERS.index(_layer(_module_name(path)))
        for line, target in _imports(path):
            if target == "allocation":  # `from .. import __version__`: the version string of the front door
                continue
            if LAYERS.index(_layer(target)) > own:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert upward == []


def test_no_import_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    for path in _modules():
        graph[_module_name(path)] = {target for _, target in _imports(path)}
    modules = set(graph)
    graph = {m: {t for t in targets if t in modules and t != m} for m, targets in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # package __init__ files re-export their layer; a cycle through them is no dependency of substance
    assert [c for c in cycles if not any(part.count(".") < 2 for part in c.split(" -> ")[:-1])] == []
