"""Checkpoints cannot run code: every load is torch.load(weights_only=True) with TensorDicts the only
objects allowed besides tensors and plain containers (dcsched.agents.checkpoint_format). A real
checkpoint carrying a pickled os.system call is refused with exit 2 by `dcsched evaluate` and by
`dcsched train ... resume=`, in real processes, and the command never runs; the same file loaded
the old way (weights_only=False) does run it (the payload is live). Truncated or random files are
refused with one line naming the file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dcsched.agents.checkpoint_format import load_checkpoint
from dcsched.config import load_recipe
from dcsched.errors import ConfigError
from dcsched.training.train import train_from_config

from test_agents import TINY

ROOT = Path(__file__).resolve().parent.parent


class _Payload:
    """Unpickling this calls os.system(command)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = load_recipe("recipes/sac.yaml", [*TINY, "trainer.total_frames=128", f"out_dir={out}", "eval.policies=null"])
    _, run_dir = train_from_config(cfg)
    return run_dir / "checkpoints" / "last.ckpt"


def poisoned(checkpoint: Path, folder: Path, marker: Path) -> Path:
    """``checkpoint`` with one extra entry whose unpickling touches ``marker``."""
    ckpt = load_checkpoint(checkpoint)
    ckpt.setdefault("dcsched", {})["note"] = _Payload(f"touch {marker}")
    path = folder / "poisoned.ckpt"
    torch.save(ckpt, path)
    return path


def cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="disabled")
    return subprocess.run([sys.executable, "-m", "dcsched.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_payload_is_live_when_loaded_the_old_way(checkpoint, tmp_path):
    """Positive control: without weights_only the file runs its command on load."""
    marker = tmp_path / "ran"
    torch.load(poisoned(checkpoint, tmp_path, marker), weights_only=False)
    assert marker.exists()


def test_evaluate_refuses_a_checkpoint_that_would_run_code(checkpoint, tmp_path):
    marker = tmp_path / "ran"
    path = poisoned(checkpoint, tmp_path, marker)
    run = cli("evaluate", "--policy", str(path), "--scenario", "paper3", "--max-days", "1", "--out",
              str(tmp_path / "ev"), "--no-plots")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "refused" in run.stderr and "posix.system" in run.stderr and str(path) in run.stderr
    assert not marker.exists(), "loading the checkpoint ran its command"
    assert not (tmp_path / "ev").exists()


def test_resume_refuses_a_checkpoint_that_would_run_code(checkpoint, tmp_path):
    marker = tmp_path / "ran"
    path = poisoned(checkpoint, tmp_path, marker)
    run = cli("train", "recipes/sac.yaml", *TINY, "trainer.total_frames=256", f"out_dir={tmp_path / 'runs'}",
              "eval.policies=null", f"resume={path}")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "refused" in run.stderr and "resume" in run.stderr
    assert not marker.exists(), "resuming ran the checkpoint's command"


@pytest.mark.parametrize("damage", ["truncated", "random", "empty"])
def test_a_damaged_checkpoint_is_refused_with_the_file_named(checkpoint, tmp_path, damage):
    data = checkpoint.read_bytes()
    path = tmp_path / f"{damage}.ckpt"
    path.write_bytes({"truncated": data[: len(data) // 3], "random": os.urandom(4096), "empty": b""}[damage])
    with pytest.raises(ConfigError, match="not a readable checkpoint") as err:
        load_checkpoint(path, key="--policy")
    assert err.value.source == str(path) and err.value.key == "--policy"
    run = cli("evaluate", "--policy", str(path), "--scenario", "paper3", "--max-days", "1", "--out", str(tmp_path / "ev"))
    assert run.returncode == 2 and "Traceback" not in run.stderr and str(path) in run.stderr


def test_a_torch_file_that_is_no_training_checkpoint_is_refused(tmp_path):
    path = tmp_path / "weights.ckpt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ConfigError, match="not a dcsched training checkpoint"):
        load_checkpoint(path)
