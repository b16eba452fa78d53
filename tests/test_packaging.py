"""The GPU install line keeps the machine's torch: requirements-gpu.txt is pyproject's pins minus torch."""

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines):
    return {ln.split("==")[0].strip().lower(): ln.split("==")[1].split("#")[0].strip().strip('",')
            for ln in lines if "==" in ln and not ln.lstrip().startswith("#")}


def test_gpu_requirements_are_pyproject_pins_without_torch():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    project = _pins(deps)
    gpu = _pins((ROOT / "requirements-gpu.txt").read_text().splitlines())
    assert "torch" in project and project["torch"] == "2.13.0"
    assert "torch" not in gpu, "requirements-gpu.txt must never name torch (it would replace the CUDA build)"
    assert gpu == {k: v for k, v in project.items() if k != "torch"}


def test_cli_bench_runs_package_code_not_repo_scripts():
    from dcsched.cli import BENCHMARKS

    import importlib

    for name, module in BENCHMARKS.items():
        assert callable(importlib.import_module(module).main), name


@pytest.mark.slow  # about 58 s: in `make test-slow` and CI, not the default suite (15-minute line)
def test_a_non_editable_install_runs_shipped_recipes_from_another_directory(tmp_path):
    """pip install (not editable) of a copy of the project, then from an unrelated folder: the shipped
    recipes, scenarios, data, quality curves and experiments are found by name and by their
    checkout path, and the quick recipe trains and evaluates."""
    import os
    import shutil
    import subprocess
    import sys

    source = tmp_path / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".whl", "wandb"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--no-compile", "--target", str(site), str(source)], check=True, timeout=300)
    shutil.rmtree(source)  # nothing may come from the copy: only from the installed package
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), WANDB_MODE="disabled")

    def dcsched(*args):
        return subprocess.run([sys.executable, "-m", "dcsched.cli", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=600)

    where = subprocess.run([sys.executable, "-c", "import dcsched; print(dcsched.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where
    listed = dcsched("list")
    assert listed.returncode == 0 and "dress" in listed.stdout, listed.stderr
    tiny = ["trainer.total_frames=256", "trainer.frames_per_batch=128", "agent.warmup_frames=128",
            "env.num_envs=4", "eval.max_days=1", "eval.policies=[local_only]", "eval.with_bound=false",
            "trainer.progress=false", f"out_dir={elsewhere / 'runs'}"]
    run = dcsched("train", "quick/sac", *tiny)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(list((elsewhere / "runs").glob("*/eval/comparison.md"))) == 1
    by_path = subprocess.run([sys.executable, "-c", "from dcsched.config import load_recipe; "
                              "print(load_recipe('recipes/quick/dress_sac.yaml').shaper.name)"],
                             cwd=elsewhere, env=env, capture_output=True, text=True)
    assert by_path.returncode == 0 and by_path.stdout.strip() == "dress", by_path.stderr
    cells = dcsched("experiment", "no_conditioning", "tier=quick", "max_runs=0", "only=^$",
                    f"out_dir={elsewhere / 'exp'}")
    assert cells.returncode == 0 and "no_conditioning (quick)" in cells.stdout, cells.stdout + cells.stderr
