"""Quality estimator: reference calibration, artifacts consumed by the env, the SD path, errors."""

import json

import numpy as np
import pytest
import torch

from dcsched.config import load_scenario
from dcsched.errors import ConfigError
from dcsched.calibration.calibrate import load_calibration_recipe, run_calibration
from dcsched.quality.curves import load_curve, quality_on_grid, sigmoid
from dcsched.quality.fitting import fit_family


def test_fit_recovers_known_sigmoid():
    s = np.array([6, 10, 14, 18, 22, 26, 30, 34, 38, 42], dtype=float)
    q = sigmoid(s, 0.55, 0.25, 12, 0.25)
    fit = fit_family("sigmoid", s, q)
    assert fit["r2"] > 0.9999
    assert fit["params"]["s0"] == pytest.approx(12, abs=0.05) and fit["params"]["A"] == pytest.approx(0.55, abs=0.01)


def test_reference_calibration_reduced_budget(tmp_path):
    torch.set_num_threads(1)
    cfg = load_calibration_recipe("recipes/calibrate/digits.yaml", [
        "steps=[1,2,3,5,10]", "seeds=[0,1]", "num_images=300", f"out_dir={tmp_path}", "name=digits_small"])
    path, art = run_calibration(cfg)
    mean = np.array(art["summary"]["mean_quality"])
    assert (np.diff(mean) >= -0.02).all() and mean[-1] > mean[0] + 0.05, mean
    assert art["fits"][cfg.family]["r2"] > 0.9
    assert path.exists() and path.with_suffix(".png").stat().st_size > 5000
    m = art["measurements"][0]
    assert {"steps", "seed", "metrics", "quality", "time_per_step_s", "energy_per_step_j"} <= set(m)
    assert art["hardware"]["device"] == "cpu" and art["date"] and art["command"]


def write_artifact(path, A):
    path.write_text(json.dumps({"schema_version": 1, "name": "t", "curve": {
        "family": "sigmoid", "params": {"A": A, "kappa": 0.25, "s0": 12, "B": 0.2}}}))
    return path


def test_artifact_round_trip_and_env_uses_it(tmp_path):
    from dcsched.baselines.rules import LocalOnly
    from dcsched.config import EnvConfig
    from dcsched.envs import make_env
    from dcsched.eval.rollout import run_days

    low, high = write_artifact(tmp_path / "low.json", 0.3), write_artifact(tmp_path / "high.json", 0.6)
    fam, params, _ = load_curve(low)
    assert fam == "sigmoid" and params["A"] == 0.3
    revenue = {}
    for name, art in (("low", low), ("high", high)):
        cfg = load_scenario("paper3", [f"dcs.0.quality_artifact={art}"])
        env = make_env(cfg, EnvConfig(dtype="float64"), days=[5], sequential_days=True, stochastic=False)
        q = env.params.quality[0].numpy()
        np.testing.assert_allclose(q, quality_on_grid(art, list(cfg.steps_grid)))
        revenue[name] = run_days(env, LocalOnly().bind(env).bind(env))["revenue_usd"][..., 0].sum()
    q30 = {k: sigmoid(30, a, 0.25, 12, 0.2) for k, a in (("low", 0.3), ("high", 0.6))}
    assert revenue["high"] / revenue["low"] == pytest.approx(q30["high"] / q30["low"], rel=1e-9)


@pytest.mark.parametrize("content,key", [
    ('{"schema_version": 9, "curve": {}}', "schema_version"),
    ('{"schema_version": 1, "curve": {"family": "spline", "params": {}}}', "curve.family"),
    ('{"schema_version": 1, "curve": {"family": "hill", "params": {"top": 1}}}', "curve.params.s50"),
    ("not json", "<file>"),
])
def test_malformed_artifact_is_rejected(tmp_path, content, key):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_curve(path)
    assert key in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("override,key", [
    ("steps=[0,5,10]", "steps"), ("steps=[-2,5]", "steps"), ("metrics=[digits_fd,fid9]", "metrics"),
    ("kind=sd_local", "model_path"), ("family=cubic", "family"), ("model_path=/nonexistent/x", "model_path"),
])
def test_bad_calibration_inputs(override, key):
    with pytest.raises(ConfigError) as err:
        load_calibration_recipe("recipes/calibrate/digits.yaml", [override])
    assert f"key '{key}'" in str(err.value)


def test_sd_local_path_end_to_end_with_tiny_pipeline(tmp_path):
    from tiny_pipeline import build_tiny_clip, build_tiny_sd

    sd, clip = build_tiny_sd(tmp_path), build_tiny_clip(tmp_path)
    cfg = load_calibration_recipe("recipes/calibrate/sd_local.yaml", [
        f"model_path={sd}", f"clip_model_path={clip}", "device=cpu", "steps=[1,2,4]", "seeds=[0,1]",
        "num_images=2", "height=32", "width=32", f"out_dir={tmp_path}", "name=tiny"])
    path, art = run_calibration(cfg)
    assert len(art["measurements"]) == 6 and art["model"]["family"] == "StableDiffusionPipeline"
    assert all(0 <= m["quality"] <= 1 for m in art["measurements"])
    assert set(art["fits"]) == {"sigmoid", "hill", "saturating_exp"}
    again = json.loads(path.read_text())
    assert again["curve"]["family"] == "sigmoid" and "clip_score" in again["measurements"][0]["metrics"]
