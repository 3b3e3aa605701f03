"""The package's shape (docs/architecture.md): the commands' modules are imported by no other module, and
the host side's functions stay short enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hipi_jax"
COMMANDS = {"cli", "bc_cli", "eval_cli", "plot_cli"}


def imported_modules(tree: ast.Module) -> set[str]:
    """Every hipi_jax module `tree` imports (`from hipi_jax import x`, `from hipi_jax.x import y`,
    `import hipi_jax.x`), by its first name below the package, at any depth (lazy imports too)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hipi_jax":
            parts = node.module.split(".")
            names |= {alias.name for alias in node.names} if len(parts) == 1 else {parts[1]}
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("hipi_jax.")}
    return names


def test_no_module_but_a_command_imports_a_command():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.stem in COMMANDS or path.name == "__main__.py":
            continue
        if used := imported_modules(ast.parse(path.read_text())) & COMMANDS:
            offenders[str(path.relative_to(PACKAGE))] = sorted(used)
    assert not offenders, offenders


def test_the_import_scan_sees_lazy_imports():
    tree = ast.parse("def f():\n    from hipi_jax import cli, runner\n    from hipi_jax.eval_cli import main\n")
    assert imported_modules(tree) == {"cli", "runner", "eval_cli"}


@pytest.mark.parametrize("module", ["runner", "training", "programs"])
def test_no_function_of_the_loop_is_over_60_lines(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    long = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert {name: lines for name, lines in long.items() if lines > 60} == {}
