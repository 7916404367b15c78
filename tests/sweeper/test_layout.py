"""The package layout as a newcomer reads it: the sweeper's modules import each other at the top of the
file and without a cycle; an import inside a function is a heavy, optional dependency and says why;
the front door (`sweeper.cli`) loads none of Ray, Aim, Optuna, scipy, matplotlib or pandas, and the
trainable's module (which Ray imports in every worker before its trial starts) loads no torch; every
module imports in a fresh interpreter."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sweeper"
TORCH_MODULES = ("trm_core.train", "trm_core.infer", "trm_core.model", "trm_core.checkpoint", "trm_core.runtime",
                 "trm_core.names", "trm_core.data.load")
"""trm_core's modules that import torch (the trainer, the test-time engine and what they share)."""
HEAVY = ("ray", "aim", "optuna", "matplotlib", "scipy", "requests", "torch", *TORCH_MODULES)
"""Packages that take about a second or more to import, or that only some commands need."""
COMMANDS = ("sweeper.run.runner", "sweeper.run.replicate", "sweeper.aim.sync", "sweeper.report.command",
            "sweeper.report.ensemble")
"""The modules cli.py imports when their command runs (they import the heavy packages at their top)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py"}


def _targets(node: ast.AST) -> list[str]:
    """The sweeper modules an import statement loads (a name of a package that is a module counts)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _top_level_imports(tree: ast.Module) -> list[ast.AST]:
    """Imports at the top of a module (`if TYPE_CHECKING:` blocks are for annotations only)."""
    return [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        graph[name] = {t for n in _top_level_imports(tree) for t in _targets(n) if t in MODULES and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_sweeper_imports_form_no_cycle():
    graph = import_graph()
    assert set(graph) >= {"sweeper.cli", "sweeper.spec.spec", "sweeper.run.phase", "sweeper.aim.callback",
                          "sweeper.report.report"}
    assert graph["sweeper.run.runner"] >= {"sweeper.run.phase"}  # the graph sees submodule imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_inside_functions_are_heavy_and_commented():
    bad = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        top = {id(n) for n in _top_level_imports(tree)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top:
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            targets = _targets(node)
            type_only = any(isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test) and node in p.body
                            for p in ast.walk(tree))
            heavy = all(t.split(".")[0] in HEAVY or t.startswith(TORCH_MODULES) or t in COMMANDS for t in targets)
            commented = "#" in lines[node.lineno - 1]
            if not (type_only or (heavy and commented)):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not bad, "imports inside functions: only of a heavy optional package, with a comment why:\n" + "\n".join(bad)


def _run(code: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": path},
                          capture_output=True, text=True, timeout=300)


def test_the_front_door_loads_no_heavy_package():
    """`ls`, `--dry-run` and a refused input wait for none of these (torch they do: the trainer's CLI and
    the spec's checks against the trainer load it)."""
    heavy = ("ray", "aim", "optuna", "matplotlib", "scipy", "requests", "pandas")
    proc = _run(f"import sys, sweeper.cli\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))")
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_a_worker_imports_the_trainable_without_torch():
    """Ray starts as many workers at once as a node has CPUs: the trainable's import stays light, so
    trials start together (torch and the trainer load when the trial runs)."""
    proc = _run("import sys, sweeper.run.trainable\nprint('torch' in sys.modules, 'aim' in sys.modules)")
    assert proc.returncode == 0 and proc.stdout.split() == ["False", "False"], proc.stdout + proc.stderr


def test_every_module_imports_in_a_fresh_interpreter():
    proc = _run("import importlib\nfor m in " + repr(sorted(MODULES)) + ":\n    importlib.import_module(m)")
    assert proc.returncode == 0, proc.stderr[-3000:]
