"""The GPU install line keeps the machine's torch: requirements-gpu.txt is pyproject's pins minus torch."""

import tomllib
from pathlib import Path

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
