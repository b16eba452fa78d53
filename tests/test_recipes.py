"""Every shipped recipe loads; every quick recipe trains a few batches, checkpoints and evaluates."""

from pathlib import Path

import pytest

from dcsched.config import load_recipe
from dcsched.paths import RECIPES_DIR

RECIPES = sorted(p for p in RECIPES_DIR.rglob("*.yaml") if not {"scenario", "calibrate", "experiments"} & set(p.parts))
QUICK = sorted((RECIPES_DIR / "quick").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(RECIPES_DIR)))
def test_recipe_loads(path):
    from dcsched.registry import AGENTS

    cfg = load_recipe(path)
    assert cfg.agent.name in AGENTS.names() and cfg.agent.name in ("sac", "td3", "ppo", "mappo", "ippo")


@pytest.mark.parametrize("name", ["digits", "train_digits"])
def test_calibration_recipe_loads(name):
    from dcsched.calibration.calibrate import load_calibration_recipe

    cfg = load_calibration_recipe(str(RECIPES_DIR / "calibrate" / f"{name}.yaml"), [])
    assert cfg.kind == name and min(cfg.steps) > 0


@pytest.mark.parametrize("path", QUICK, ids=lambda p: p.stem)
def test_quick_recipe_trains_and_evaluates(path, tmp_path):
    from dcsched.training.train import train_and_evaluate

    cfg = load_recipe(path, [
        f"out_dir={tmp_path}", "trainer.total_frames=2048", "trainer.frames_per_batch=512",
        "trainer.checkpoint_every_batches=2", "agent.warmup_frames=512", "trainer.progress=false",
        "logger.wandb_mode=disabled", "eval.max_days=1", "eval.policies=[local_only]",
        "shaper.rs_learning_starts=512", "eval.with_bound=false"])
    module, run_dir = train_and_evaluate(cfg)
    assert int(module.frames) == 2048 and int(module.updates) > 0
    assert (run_dir / "config.yaml").exists() and (run_dir / "checkpoints" / "last.ckpt").exists()
    metrics = (run_dir / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/utility_usd_per_slot" in metrics and "train/violation_rate" in metrics
    if cfg.agent.get("constraint", "none") != "none":  # Lagrangian PPO logs its multiplier and cost
        assert "lagrange/multiplier" in metrics and "lagrange/cost" in metrics
    if cfg.shaper.name != "none":
        for key in ("rs/r_aux_mean", "rs/r_aux_std", "rs/active", "diag/corr_r_aux_r_env", "diag/corr_r_aux_advantage"):
            assert key in metrics, key
        if cfg.shaper.name in ("dress", "mlp_rs"):  # a trained reward agent: its loss, temperature, critic slope
            for key in ("rs/loss_actor", "rs/alpha", "diag/dq_ra_dr_aux_abs_mean"):
                assert key in metrics, key
    summary = (run_dir / "eval" / "comparison.md").read_text()
    assert run_dir.name in summary and "local_only" in summary
    from dcsched.eval.plots import plot_learning_curves

    assert plot_learning_curves({"run": [run_dir]}, tmp_path / "curves.png").stat().st_size > 5000


def test_wandb_offline_run_and_resume_keep_one_id(tmp_path, monkeypatch):
    from dcsched.training.train import train_from_config

    monkeypatch.delenv("WANDB_MODE", raising=False)
    base = [f"out_dir={tmp_path}", "trainer.total_frames=1024", "trainer.frames_per_batch=512",
            "trainer.checkpoint_every_batches=1", "agent.warmup_frames=512", "trainer.progress=false",
            "logger.wandb_mode=offline", "eval.policies=null", "network.hidden_sizes=[32,32]"]
    module, run_dir = train_from_config(load_recipe(RECIPES_DIR / "quick" / "sac.yaml", base))
    first_id = module.wandb_id
    assert list((run_dir / "wandb").glob(f"offline-run-*-{first_id}"))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    module2, run_dir2 = train_from_config(load_recipe(RECIPES_DIR / "quick" / "sac.yaml", base + [
        f"resume={ckpt}", "trainer.total_frames=2048"]))
    assert run_dir2 == run_dir and module2.wandb_id == first_id and int(module2.frames) == 2048
    assert (run_dir / "csv" / "version_0" / "metrics.csv").exists() and (run_dir / "csv" / "version_1" / "metrics.csv").exists()


def test_training_stops_at_the_frame_budget_mid_epoch(tmp_path):
    from dcsched.agents.checkpoint_format import load_checkpoint
    from dcsched.training.train import train_from_config

    cfg = load_recipe(RECIPES_DIR / "quick" / "sac.yaml", [
        f"out_dir={tmp_path}", "trainer.total_frames=1536", "trainer.frames_per_batch=512",
        "trainer.checkpoint_every_batches=2", "agent.warmup_frames=512", "trainer.progress=false",
        "logger.wandb_mode=disabled", "eval.policies=null", "network.hidden_sizes=[32,32]"])
    module, run_dir = train_from_config(cfg)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert int(module.frames) == 1536 and int(ckpt["state_dict"]["frames"]) == 1536
