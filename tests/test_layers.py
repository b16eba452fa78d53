"""The floors of docs/architecture.md hold: every import in dcsched/ points down a floor and no two
modules of a package import each other, as the import-linter contracts in pyproject.toml say.

Two more tests break a copy of the package on purpose, once with an upward import and once with a
circle inside one package, and check that the matching contract then fails: the first test cannot
pass for want of looking."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package under ``root`` with ``root``'s pyproject.toml (that package first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([*LINT, "--no-cache", str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_import_points_down_a_floor_and_no_package_has_a_circle():
    run = lint(REPO)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "dcsched floors: every import points down KEPT" in run.stdout
    assert "no import circles between the modules of any package KEPT" in run.stdout


def broken_copy(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess:
    """`lint-imports` on a copy of dcsched/ whose ``module`` (a path under dcsched/) gains a function importing ``line``."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "dcsched", tmp_path / "dcsched",
                    ignore=shutil.ignore_patterns("raw", "checkpoints", "recipes", "__pycache__"))
    target = tmp_path / "dcsched" / module
    target.write_text(target.read_text() + f"\n\ndef _injected():\n    {line}  # noqa: F401\n")
    return lint(tmp_path)


def test_an_upward_import_breaks_the_floors(tmp_path):
    run = broken_copy(tmp_path, "sim/kernels.py", "from dcsched.cli import main")  # the physics reaching up to the CLI
    assert run.returncode != 0
    assert "dcsched floors: every import points down BROKEN" in run.stdout
    assert "dcsched.sim.kernels -> dcsched.cli" in run.stdout


def test_a_circle_inside_a_package_breaks_the_acyclic_contract(tmp_path):
    # day_pool.py sits below evaluate.py, which imports it: importing back closes a circle inside eval/
    run = broken_copy(tmp_path, "eval/day_pool.py", "from dcsched.eval.evaluate import evaluate_policies")
    assert run.returncode != 0
    assert "dcsched floors: every import points down KEPT" in run.stdout  # no floor is crossed
    assert "no import circles between the modules of any package BROKEN" in run.stdout
    assert "No cycles are allowed in dcsched.eval" in run.stdout
