"""Recipes, overrides and the errors a user can cause."""

import pytest
from omegaconf import OmegaConf

from dcsched.config import load_recipe, load_scenario
from dcsched.errors import ConfigError


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_recipe_composes_scenario_and_overrides(tmp_path):
    recipe = write(tmp_path, "r.yaml", "name: demo\nscenario: paper3\nseed: 3\nenv:\n  num_envs: 8\n")
    cfg = load_recipe(recipe, ["optim.lr_actor=1e-3", "scenario.energy.price_scale=2"])
    assert cfg.name == "demo" and cfg.seed == 3 and cfg.env.num_envs == 8
    assert cfg.optim.lr_actor == pytest.approx(1e-3)
    assert cfg.scenario.energy.price_scale == 2.0
    assert cfg.scenario.dcs[1].region == "US-CAL-CISO"


def test_scenario_base_chain_applies_revenue_scale():
    base, energy = load_scenario("paper3"), load_scenario("paper3_energy")
    assert energy.revenue_scale < 0.1 and base.revenue_scale == 1.0
    assert [d.num_gpus for d in energy.dcs] == [d.num_gpus for d in base.dcs]


def test_misspelt_key_names_file_key_and_allowed(tmp_path):
    recipe = write(tmp_path, "bad.yaml", "scenario: paper3\nenv:\n  num_env: 8\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe)
    msg = str(err.value)
    assert str(recipe) in msg and "env.num_env" in msg and "num_envs" in msg


def test_wrong_type_fails_at_load(tmp_path):
    recipe = write(tmp_path, "bad.yaml", "scenario: paper3\nseed: abc\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe)
    assert "seed" in str(err.value) and str(recipe) in str(err.value)


def test_bad_override_names_command_line(tmp_path):
    recipe = write(tmp_path, "r.yaml", "scenario: paper3\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe, ["trainer.total_frame=10"])
    assert "command line" in str(err.value) and "trainer.total_frame" in str(err.value)
    assert "total_frames" in str(err.value)


def test_enum_value_lists_allowed(tmp_path):
    recipe = write(tmp_path, "r.yaml", "scenario: paper3\nenv:\n  reward_mode: denser\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe)
    assert "env.reward_mode" in str(err.value) and "dense, sparse, episodic" in str(err.value)


def test_unknown_scenario_suggests_closest(tmp_path):
    recipe = write(tmp_path, "r.yaml", "scenario: paper33\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe)
    assert "paper3" in str(err.value)


@pytest.mark.parametrize("override,key", [
    ("energy.soc_min=0.95", "scenario.energy.soc_min"),
    ("dcs.0.num_gpus=0", "scenario.dcs.0.num_gpus"),
    ("dcs.1.tau_step_s=-1", "scenario.dcs.1.tau_step_s"),
    ("dcs.2.region=US-XYZ", "scenario.dcs.2.region"),
    ("dcs.0.model=sd9", "scenario.dcs.0.model"),
    ("steps_grid=[0,10,20]", "scenario.steps_grid"),
    ("steps_grid=[-4,10]", "scenario.steps_grid"),
    ("classes.mix=[0.7,0.7]", "scenario.classes.mix"),
    ("energy.control=magic", "scenario.energy.control"),
])
def test_scenario_validation_names_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_scenario("paper3", [override])
    assert key in str(err.value), str(err.value)


def test_quality_artifact_must_cover_step_grid(tmp_path):
    art = tmp_path / "q.json"
    art.write_text('{"schema_version": 1, "curve": {"family": "sigmoid", "params": {"A": 2.0, "kappa": 0.3, "s0": 10, "B": 0.2}}}')
    with pytest.raises(ConfigError) as err:
        load_scenario("paper3", [f"dcs.0.quality_artifact={art}"])
    assert "dcs.0.quality_artifact" in str(err.value) and "[0, 1]" in str(err.value)


def test_resolved_config_is_written(tmp_path):
    from dcsched.config import save_resolved

    cfg = load_recipe(write(tmp_path, "r.yaml", "scenario: paper3\n"))
    path = save_resolved(cfg, tmp_path / "run")
    again = OmegaConf.load(path)
    assert again.scenario.dcs[2].num_gpus == cfg.scenario.dcs[2].num_gpus


@pytest.mark.parametrize("old", ["agent.batch_size", "agent.utd", "agent.hidden_sizes"])
def test_a_moved_key_is_refused_with_its_new_name(tmp_path, old):
    """The keys that moved to replay_buffer / optim / network: an old recipe or override fails at
    load with the new name, never silently ignored or applied to a default."""
    from dcsched.config import MOVED_KEYS

    value = "[32,32]" if old.endswith("hidden_sizes") else "64"
    with pytest.raises(ConfigError) as err:
        load_recipe("quick/sac", [f"{old}={value}"])
    assert old in str(err.value) and MOVED_KEYS[old] in str(err.value)
    group, leaf = old.split(".")
    recipe = write(tmp_path, "old.yaml", f"scenario: paper3\n{group}:\n  name: sac\n  {leaf}: {value}\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe)
    assert str(recipe) in str(err.value) and old in str(err.value) and MOVED_KEYS[old] in str(err.value)


def test_a_stored_config_of_the_old_layout_is_migrated_and_hashes_as_before():
    """A checkpoint's stored config from before the move loads onto the schema with every value at
    its new place; the hash layout is the exact inverse, so recorded cells keep their hash."""
    import copy

    from dcsched.agents.checkpoint_format import typed_config
    from dcsched.config import MOVED_KEYS, legacy_layout, migrate_moved_keys, to_container

    cfg = load_recipe("quick/sac", ["replay_buffer.batch_size=64", "optim.utd_ratio=0.25",
                                    "network.hidden_sizes=[32,16]", "optim.lr_alpha=3e-4"])
    new = to_container(cfg)
    old = legacy_layout(copy.deepcopy(new))
    assert not {"replay_buffer", "optim", "network"} & set(old)
    assert old["agent"]["batch_size"] == 64 and old["agent"]["utd"] == 0.25 and old["agent"]["hidden_sizes"] == [32, 16]
    assert migrate_moved_keys(copy.deepcopy(old)) == new
    restored = typed_config(old)
    for old_key, new_key in MOVED_KEYS.items():
        assert OmegaConf.select(restored, new_key) == OmegaConf.select(cfg, new_key), new_key


# --------------------------------------------------------------------------- one config per algorithm
@pytest.mark.parametrize("recipe,foreign", [("quick/sac", "agent.ppo_epochs=2"), ("quick/sac", "agent.policy_delay=3"),
                                            ("quick/ppo", "agent.alpha_init=0.5"), ("quick/mappo", "agent.tau=0.01")])
def test_a_key_of_another_algorithm_is_refused_with_this_algorithms_keys(recipe, foreign, tmp_path):
    from dataclasses import fields

    from dcsched.config import agent_config_class

    name = load_recipe(recipe).agent.name
    own = [f.name for f in fields(agent_config_class(name))]
    key = foreign.partition("=")[0]
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe, [foreign])
    assert err.value.key == key and err.value.problem == "unknown key" and err.value.source == "command line"
    assert err.value.allowed.startswith(", ".join(own))  # the chosen algorithm's keys, not the union
    group, leaf = key.split(".")
    file = write(tmp_path, "r.yaml", f"scenario: paper3\nagent:\n  name: {name}\n  {leaf}: 2\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(file)
    assert err.value.source == str(file) and err.value.key == key and err.value.problem == "unknown key"


def test_agent_name_on_the_command_line_chooses_the_agent_keys():
    from omegaconf import OmegaConf

    from dcsched.agents.configs import TD3Config

    cfg = load_recipe("quick/sac", ["agent.name=td3", "agent.policy_delay=3"])
    assert OmegaConf.get_type(cfg.agent) is TD3Config and cfg.agent.policy_delay == 3 and "alpha_init" not in cfg.agent
    with pytest.raises(ConfigError) as err:
        load_recipe("quick/sac", ["agent.name=sax"])
    assert err.value.source == "command line" and err.value.key == "agent.name" and "sac" in err.value.allowed


def test_a_checkpoint_config_of_the_flat_agent_layout_loads_with_its_algorithms_keys():
    """Checkpoints written while `agent` was one group for every algorithm carry every algorithm's
    keys; loading keeps the algorithm's own (with their stored values) and drops the rest."""
    from omegaconf import OmegaConf

    from dcsched.agents.checkpoint_format import typed_config
    from dcsched.agents.configs import PPOConfig, flat_agent_defaults
    from dcsched.config import to_container

    stored = to_container(load_recipe("quick/ppo", ["agent.clip_epsilon=0.3"]))
    stored["agent"] = {**flat_agent_defaults(), **stored["agent"], "alpha_init": 0.5}  # as a flat-layout checkpoint held it
    typed = typed_config(stored)
    assert OmegaConf.get_type(typed.agent) is PPOConfig
    assert typed.agent.clip_epsilon == 0.3 and typed.agent.ppo_epochs == 2 and "alpha_init" not in typed.agent


def test_the_flat_agent_layout_of_the_recorded_hashes_is_unchanged():
    """Experiment cells are hashed with the agent group in the flat layout (every built-in
    algorithm's keys). Its keys are those the records were hashed with; a key added to an algorithm
    later must also go to LATER_KEYS_DEFAULTS (experiments/spec.py), or every recorded cell's hash changes."""
    from dcsched.agents.configs import flat_agent_defaults
    from dcsched.experiments.spec import LATER_KEYS_DEFAULTS

    later = {k.split(".", 1)[1] for k in LATER_KEYS_DEFAULTS if k.startswith("agent.")}
    assert set(flat_agent_defaults()) - later == {
        "gamma", "alpha_init", "fixed_alpha", "tau", "critic_loss", "warmup_frames", "policy_noise", "noise_clip",
        "exploration_noise", "policy_delay", "clip_epsilon", "entropy_coef", "gae_lambda", "ppo_epochs",
        "minibatch_size", "constraint", "cost_limit", "lr_lagrange", "lagrange_init"}
