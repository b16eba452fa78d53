"""Never lose a run: a training process killed (SIGKILL) or interrupted (Ctrl-C) leaves a
last.ckpt from its last checkpoint interval, resuming from it ends exactly where an uninterrupted
run ends, Ctrl-C exits 130, and nothing is overwritten or left half-made."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dcsched.agents.checkpoint_format import load_checkpoint
from dcsched.training.train import train_from_config
from dcsched.config import load_recipe
from dcsched.errors import ConfigError

from test_agents import TINY, fit, params

EPOCHS = 12  # checkpoint intervals of the run (64 frames x 2 batches each)
TOTAL = 64 * 2 * EPOCHS
ROOT = Path(__file__).resolve().parent.parent


def start_training(out: Path, recipe="recipes/sac.yaml", extra=()) -> subprocess.Popen:
    args = [sys.executable, "-m", "dcsched.cli", "train", recipe, *TINY, f"trainer.total_frames={TOTAL}",
            f"out_dir={out}", "name=victim", "seed=4", "eval.policies=null", *extra]
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_intervals(proc: subprocess.Popen, out: Path, rewrites: int, timeout_s: float = 240) -> Path:
    """Block until last.ckpt has been written ``rewrites`` + 1 times; returns its path."""
    deadline = time.time() + timeout_s
    seen, last_mtime = 0, None
    while time.time() < deadline:
        found = list(out.glob("victim-*/checkpoints/last.ckpt"))
        if found:
            mtime = found[0].stat().st_mtime_ns
            if mtime != last_mtime:
                seen, last_mtime = seen + 1, mtime
                if seen > rewrites:
                    return found[0]
        assert proc.poll() is None, f"training ended before it could be interrupted:\n{proc.stdout.read()}"
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("no checkpoint interval was written in time")


def frames_in(ckpt: Path) -> int:
    return int(load_checkpoint(ckpt, "cpu")["state_dict"]["frames"])


@pytest.mark.slow  # about 38 s: in `make test-slow` and CI, not the default suite (15-minute line)
def test_sigkill_then_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    proc = start_training(tmp_path / "killed")
    ckpt = wait_for_intervals(proc, tmp_path / "killed", rewrites=1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    saved = frames_in(ckpt)
    assert 0 < saved < TOTAL, "the kill must land mid-run for this test to mean anything"
    # a kill during a write can leave a hidden .tmp, never a half-written last.ckpt (it loaded above)
    assert [p.name for p in ckpt.parent.glob("*.ckpt")] == ["last.ckpt"]
    resumed = fit("recipes/sac.yaml", ["seed=4"], tmp_path / "resumed", epochs=EPOCHS, resume=str(ckpt))
    full = fit("recipes/sac.yaml", ["seed=4"], tmp_path / "full", epochs=EPOCHS)
    assert int(resumed.frames) == int(full.frames) == TOTAL
    assert int(resumed.updates) == int(full.updates)
    assert torch.equal(params(resumed), params(full)), "resuming after SIGKILL must continue exactly"


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_exits_with_its_code(tmp_path, sig, code):
    """Ctrl-C exits 130; SIGTERM (a scheduler's preemption) 143, which schedulers requeue on. Both
    finish the batch and write last.ckpt first (Lightning alone exits 0 on SIGTERM, without one)."""
    proc = start_training(tmp_path / "stop")
    ckpt = wait_for_intervals(proc, tmp_path / "stop", rewrites=0)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, output
    assert "interrupted at" in output and "resume" in output
    saved = frames_in(ckpt)
    assert 0 < saved < TOTAL and saved % 64 == 0, "the checkpoint is taken at a batch boundary"


def test_sigterm_before_the_first_checkpoint_interval_keeps_the_batches_trained(tmp_path):
    """With no checkpoint interval reached yet, SIGTERM still ends with last.ckpt at a batch boundary
    (the run folder is kept) and exit 143; the printed resume command continues the run."""
    long_run = TOTAL * 100  # far beyond 3 s on any machine: the signal must land mid-run, not after it
    proc = start_training(tmp_path / "early", extra=["trainer.checkpoint_every_batches=100000",
                                                     f"trainer.total_frames={long_run}"])
    deadline = time.time() + 120
    while not list((tmp_path / "early").glob("victim-*/csv")) and not list((tmp_path / "early").glob("victim-*/config.yaml")):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    time.sleep(3.0)  # into the first batches (the agent and trainer are built by now)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output
    ckpt = next((tmp_path / "early").glob("victim-*/checkpoints/last.ckpt"))
    saved = frames_in(ckpt)
    assert 0 < saved < long_run and saved % 64 == 0, output
    flat = " ".join(output.split())  # the console wraps long lines
    assert "interrupted at" in flat and "resume: dcsched train RECIPE resume=" in flat


def _limit_file_size(limit_bytes: int):
    """A child's file-size limit: a write beyond it fails with EFBIG, as a full disk fails with ENOSPC
    (SIGXFSZ ignored, so the write returns the error instead of killing the process)."""
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return apply


def test_a_full_disk_during_a_checkpoint_rewrite_exits_2_and_keeps_the_last_checkpoint(tmp_path):
    """A real process whose writes fail past 500 kB: the tiny SAC checkpoint (its replay buffer grows
    with the frames) is written at 128 and 256 frames and fails at 384. The run exits 2 with one line
    naming the file and the resume command; the 256-frame last.ckpt is whole, no temporary file is left."""
    out = tmp_path / "full"
    args = [sys.executable, "-m", "dcsched.cli", "train", "recipes/sac.yaml", *TINY, f"trainer.total_frames={TOTAL}",
            f"out_dir={out}", "name=victim", "seed=4", "eval.policies=null"]
    proc = subprocess.run(args, cwd=ROOT, env=dict(os.environ, WANDB_MODE="disabled"), capture_output=True, text=True,
                          timeout=300, preexec_fn=_limit_file_size(500_000))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("dcsched: error:")]
    assert len(error) == 1 and "Traceback" not in proc.stderr, proc.stderr
    ckpt = next(out.glob("victim-*/checkpoints/last.ckpt"))
    assert f"cannot write {ckpt}: File too large" in error[0]
    assert f"the previous {ckpt} (256 frames) is intact" in error[0] and f"resume={ckpt}" in error[0]
    assert frames_in(ckpt) == 256
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.ckpt"], "no half-written temporary file is left"


def test_sigterm_during_evaluate_exits_143_and_leaves_nothing(tmp_path):
    """Outside training SIGTERM unwinds like Ctrl-C: the output folder is never half-made."""
    out = tmp_path / "eval"
    args = [sys.executable, "-m", "dcsched.cli", "evaluate", "--policy", "mpc", "--scenario", "paper3", "--max-days", "3",
            "--out", str(out), "--no-plots"]
    proc = subprocess.Popen(args, cwd=ROOT, env=dict(os.environ, WANDB_MODE="disabled"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".eval*")):  # the temporary folder evaluate writes into
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output
    assert "terminated (SIGTERM)" in output
    assert list(tmp_path.iterdir()) == [], "nothing half-written is left"


def test_a_mistyped_resume_creates_nothing(tmp_path):
    cfg = load_recipe("recipes/sac.yaml", TINY + [f"out_dir={tmp_path}", f"resume={tmp_path}/nope/checkpoints/last.ckpt"])
    with pytest.raises(ConfigError, match="not found"):
        train_from_config(cfg)
    assert list(tmp_path.iterdir()) == []


def test_resume_with_another_method_is_refused_and_keeps_the_run(tmp_path):
    fit("recipes/dress_sac.yaml", [], tmp_path, epochs=1)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    cfg = load_recipe("recipes/sac.yaml", TINY + [f"resume={ckpt}"])
    with pytest.raises(ConfigError, match="shaper.name=dress; the recipe has shaper.name=none"):
        train_from_config(cfg)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before, "a refused resume touches nothing"


def test_resume_keeps_config_and_writes_a_versioned_one(tmp_path):
    cfg = load_recipe("recipes/sac.yaml", TINY + ["trainer.total_frames=128", f"out_dir={tmp_path}"])
    _, run = train_from_config(cfg)
    original = (run / "config.yaml").read_text()
    ckpt = run / "checkpoints" / "last.ckpt"
    cfg2 = load_recipe("recipes/sac.yaml", TINY + ["trainer.total_frames=256", f"resume={ckpt}"])
    module, run2 = train_from_config(cfg2)
    assert run2 == run and int(module.frames) == 256
    assert (run / "config.yaml").read_text() == original
    assert "total_frames: 256" in (run / "config.resume.yaml").read_text()


def test_an_error_after_the_run_folder_was_made_removes_it(tmp_path, monkeypatch):
    import dcsched.training.train as train_mod

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(train_mod, "build_trainer", broken)
    cfg = load_recipe("recipes/sac.yaml", TINY + [f"out_dir={tmp_path}"])
    with pytest.raises(RuntimeError, match="boom"):
        train_from_config(cfg)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_never_overwrites_without_overwrite(tmp_path, capsys):
    from dcsched.cli import main

    out = tmp_path / "eval"
    base = ["evaluate", "--policy", "local_only", "--policy", "random", "--scenario", "paper3",
            "--days", "2023-01-06", "--out", str(out), "--no-plots"]
    assert main(base) == 0
    first = (out / "comparison.md").read_text()
    assert main(["evaluate", "--policy", "local_only", "--scenario", "paper3", "--days", "2023-01-06",
                 "--out", str(out), "--no-plots"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "comparison.md").read_text() == first and (out / "random").is_dir()
    # with --overwrite the folder is replaced whole: no stale per-policy folder from the old run
    assert main(["evaluate", "--policy", "local_only", "--scenario", "paper3", "--days", "2023-01-06",
                 "--out", str(out), "--no-plots", "--overwrite"]) == 0
    assert not (out / "random").exists() and (out / "summary.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["eval"], "no temporary folders left behind"


def test_calibrate_refuses_to_overwrite_an_artifact(tmp_path):
    from dcsched.calibration.calibrate import load_calibration_recipe, run_calibration

    (tmp_path / "digits_ddpm.json").write_text("{}")
    cfg = load_calibration_recipe("recipes/calibrate/digits.yaml", [f"out_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="overwrite=true"):
        run_calibration(cfg)
    assert (tmp_path / "digits_ddpm.json").read_text() == "{}"


def test_a_dead_attempts_rows_past_the_checkpoint_leave_the_curve():
    import pandas as pd

    from dcsched.eval.plots import merge_attempts

    dead = pd.DataFrame({"frames": [1024, 2048, 3072, 4096, 5120], "x": [1, 2, 3, 4, 5]})  # killed after 5120
    resumed = pd.DataFrame({"frames": [3072, 4096, 5120, 6144], "x": [30, 40, 50, 60]})  # last.ckpt at 2048
    merged = merge_attempts([dead, resumed])
    assert merged["frames"].is_monotonic_increasing
    assert merged["x"].tolist() == [1, 2, 30, 40, 50, 60]


EXPERIMENT = """
name: victim
kind: table
scenarios: [paper3]
seeds: [4]
max_days: 1
with_bound: false
overrides: [{overrides}]
methods:
  - {{label: local_only, policy: local_only}}
  - {{label: SAC, recipe: sac}}
"""


@pytest.mark.slow  # about 47 s: in `make test-slow` and CI, not the default suite (15-minute line)
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_during_an_experiment_exits_and_the_rerun_resumes_the_cell(tmp_path, sig, code):
    overrides = ", ".join(f"'{o}'" for o in TINY if not o.startswith("logger.")) + f", 'trainer.total_frames={TOTAL}'"
    spec = tmp_path / "victim.yaml"
    spec.write_text(EXPERIMENT.format(overrides=overrides))
    args = [sys.executable, "-m", "dcsched.cli", "experiment", str(spec), f"out_dir={tmp_path / 'out'}",
            "wandb_mode=disabled"]
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cell = tmp_path / "out" / "victim" / "runs" / "paper3__default__SAC__s4"
    deadline, ckpt = time.time() + 240, cell / "train" / "checkpoints" / "last.ckpt"
    while not ckpt.exists():
        assert proc.poll() is None and time.time() < deadline, f"no checkpoint in time:\n{proc.stdout.read()}"
        time.sleep(0.01)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, output
    flat = " ".join(output.split())  # the console wraps long lines
    assert "victim: interrupted" in flat and "Run the same command again to resume" in flat
    assert "GPU available" not in output and "[torchrl][INFO]" not in output, "library chatter is kept out"
    assert not (cell / "result.json").exists()
    assert (cell.parent / "paper3__default__local_only" / "result.json").exists(), "finished cells are kept"
    saved = frames_in(ckpt)
    assert 0 < saved < TOTAL, "the interrupt must land mid-run for this test to mean anything"

    rerun = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    import json

    result = json.loads((cell / "result.json").read_text())
    assert result["train"]["resumed"] is True and result["train"]["frames"] == TOTAL
