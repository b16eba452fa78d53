"""PPO over the factorised discrete schedule: the distribution, exact resume, checkpoint evaluation."""

import math

import pytest
import torch
from torch import distributions as D

from dcsched.agents.distributions import ComponentGroup, FactorisedCategorical, groups_for
from dcsched.training.harness import Agent
from dcsched.training.train import build_trainer
from dcsched.config import load_recipe, to_container
from dcsched.envs.actions import discrete_nvec
from dcsched.agents.checkpoint_format import safe_globals

GROUPS = (ComponentGroup(2, 3, False), ComponentGroup(3, 4, True))


def _ordinal_logits(s):
    """Tang & Agrawal (2020) eq. 4, written out level by level (not TorchRL's vectorised form)."""
    L = s.shape[-1]
    out = torch.empty_like(s)
    for k in range(L):
        up = torch.nn.functional.logsigmoid(s[..., : k + 1]).sum(-1)
        down = torch.nn.functional.logsigmoid(-s[..., k + 1 :]).sum(-1)
        out[..., k] = up + down
    return out


def test_factorised_categorical_is_the_product_of_its_components():
    torch.manual_seed(0)
    scores = torch.randn(5, 2 * 3 + 3 * 4)
    dist = FactorisedCategorical(scores, GROUPS)
    x = dist.sample()
    assert x.shape == (5, 5) and x.dtype == torch.int64
    assert (x[:, :2] < 3).all() and (x[:, 2:] < 4).all() and (x >= 0).all()
    unordered = D.Categorical(logits=scores[:, :6].reshape(5, 2, 3))
    ordered = D.Categorical(logits=_ordinal_logits(scores[:, 6:].reshape(5, 3, 4)))
    hand = unordered.log_prob(x[:, :2]).sum(-1) + ordered.log_prob(x[:, 2:]).sum(-1)
    torch.testing.assert_close(dist.log_prob(x), hand)
    torch.testing.assert_close(dist.entropy(), unordered.entropy().sum(-1) + ordered.entropy().sum(-1))
    best = torch.cat([unordered.probs.argmax(-1), ordered.probs.argmax(-1)], -1)
    assert torch.equal(dist.deterministic_sample, best)


def test_zero_scores_give_the_uniform_policy():
    dist = FactorisedCategorical(torch.zeros(2, 18), GROUPS)
    assert dist.entropy().tolist() == pytest.approx([2 * math.log(3) + 3 * math.log(4)] * 2)


def test_a_chunked_block_acts_as_its_expected_split_rounded():
    """Four chunks of one row, each 60/40/0 over three DCs: each chunk's argmax would send the
    whole row to DC 0; the deterministic action is the mean split rounded to quarters (2/2/0)."""
    groups = (ComponentGroup(8, 3, False, chunks=4),)  # two rows of four chunks
    row0 = torch.log(torch.tensor([0.6, 0.4, 1e-12])).repeat(4)
    row1 = torch.log(torch.tensor([[0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])).flatten()
    dist = FactorisedCategorical(torch.cat([row0, row1]).unsqueeze(0), groups)
    # row 1: mean (0.3, 0.2625, 0.4375) x 4 = (1.2, 1.05, 1.75) -> floors (1, 1, 1), the last to DC 2
    assert dist.deterministic_sample.tolist() == [[0, 0, 1, 1, 0, 1, 2, 2]]
    one = FactorisedCategorical(row0.reshape(4, 3)[:1], (ComponentGroup(1, 3, False),))
    assert one.deterministic_sample.tolist() == [[0]]  # one chunk: the argmax


def test_wrong_score_width_is_refused():
    with pytest.raises(ValueError, match="scores have 17 entries"):
        FactorisedCategorical(torch.zeros(2, 17), GROUPS)


def test_groups_follow_the_env_encoding():
    cfg = load_recipe("quick/ppo_parallel")
    from dcsched.sim.params import build_params

    p = build_params(cfg.scenario)
    nvec = [g.levels for g in groups_for(p) for _ in range(g.count)]
    assert nvec == discrete_nvec(p)
    assert [g.ordinal for g in groups_for(p)] == [False, True, True]
    assert [g.levels for g in groups_for(p, 4) for _ in range(g.count)] == discrete_nvec(p, 4)


TINY = ["env.num_envs=8", "network.hidden_sizes=[16,16]", "agent.minibatch_size=64", "agent.ppo_epochs=2",
        "trainer.frames_per_batch=128", "trainer.checkpoint_every_batches=2", "trainer.progress=false",
        "logger.wandb_mode=disabled", "logger.csv=false", "seed=3"]


def _fit(tmp_path, batches, resume=None, extra=()):
    cfg = load_recipe("quick/ppo_parallel", TINY + [f"trainer.total_frames={128 * batches}", f"out_dir={tmp_path}",
                                                    *extra])
    module = Agent(to_container(cfg))
    with safe_globals():  # dcsched's one checkpoint allow-list, as `dcsched train` resumes
        build_trainer(cfg, tmp_path, []).fit(module, ckpt_path=resume, weights_only=True)
    return module


def _weights(module):
    return torch.cat([p.detach().flatten() for p in [*module.algorithm.actor.parameters(), *module.algorithm.critic.parameters()]])


@pytest.fixture(scope="module")
def two_batches(tmp_path_factory):
    """A plain discrete-PPO run of two batches: its folder (checkpoints/last.ckpt) and its weights."""
    folder = tmp_path_factory.mktemp("two_batches")
    return folder, _weights(_fit(folder, 2))


def test_discrete_ppo_resumes_exactly_and_its_checkpoint_acts_as_trained(tmp_path, two_batches):
    import shutil

    full = _fit(tmp_path / "full", 4)
    shutil.copytree(two_batches[0], tmp_path / "part")
    resumed = _fit(tmp_path / "part", 4, resume=str(tmp_path / "part" / "checkpoints" / "last.ckpt"))
    assert int(resumed.updates) == int(full.updates) > 0
    assert torch.equal(_weights(resumed), _weights(full)), "resumed PPO updates differ from the uninterrupted run"
    assert not torch.equal(_weights(full), two_batches[1]), "training changed nothing"

    from dcsched.agents.checkpoint_policy import load_checkpoint_policy
    from dcsched.envs import make_env

    cfg = load_recipe("quick/ppo_parallel")
    env = make_env(cfg.scenario, cfg.env, num_envs=6, seed=1)
    policy = load_checkpoint_policy(tmp_path / "full" / "checkpoints" / "last.ckpt", env)
    td = env.reset()
    action = policy.act(td)
    assert action.dtype == torch.int64 and action.shape == (6, len(discrete_nvec(env.params)))
    with torch.no_grad():
        scores = full.algorithm.actor.module[0](td["observation"])
    assert torch.equal(action, FactorisedCategorical(scores, groups_for(env.params)).deterministic_sample)
    env.step(td.set("action", action))  # a valid action of the env's encoding


def test_a_discrete_checkpoint_refuses_another_scenario(two_batches):
    from dcsched.agents.checkpoint_policy import load_checkpoint_policy
    from dcsched.envs import make_env
    from dcsched.errors import ConfigError

    cfg = load_recipe("quick/ppo_parallel", ["scenario=global8"])
    env = make_env(cfg.scenario, cfg.env, num_envs=2)
    with pytest.raises(ConfigError, match="trained on 'paper3'"):
        load_checkpoint_policy(two_batches[0] / "checkpoints" / "last.ckpt", env)


def test_sac_refuses_the_discrete_encoding():
    from dcsched.training.harness import Agent
    from dcsched.errors import ConfigError

    cfg = load_recipe("quick/sac", ["env.action_encoding=discrete", "env.num_envs=2"])
    with pytest.raises(ConfigError, match="continuous"):
        Agent(to_container(cfg))


def test_learning_curve_benchmark_scores_each_checkpoint_against_the_bound(tmp_path, capsys):
    """`dcsched bench curve`: one row per kept checkpoint, frames and training time from metrics.csv,
    share = the checkpoint's utility on the day / that day's bound (a made-up bound of $10,000)."""
    import json

    from dcsched.baselines.lp_bound import bound_scenario_hash
    from dcsched.bench.learning_curve import main
    from dcsched.envs import make_env
    from dcsched.data.exogenous import day_dates
    from dcsched.eval.rollout import run_days

    cfg = load_recipe("quick/ppo_parallel", TINY + ["trainer.total_frames=512", f"out_dir={tmp_path}",
                                                    "trainer.keep_all_checkpoints=true", "logger.csv=true"])
    module = Agent(to_container(cfg))
    from dcsched.tracking import make_loggers

    build_trainer(cfg, tmp_path, make_loggers(cfg, tmp_path, run_id="t", config=to_container(cfg))).fit(module)
    day = day_dates(cfg.scenario, [5])[0]  # 2023-01-06, the first test day
    bounds = tmp_path / "bounds.json"
    bounds.write_text(json.dumps({"scenario": "paper3", "scenario_hash": bound_scenario_hash(cfg.scenario),
                                  "per_day": [{"day": day, "lp_bound_usd": 10_000.0}]}))
    main([str(tmp_path), "--bounds", str(bounds), "--max-days", "1", "--baseline", "local_only",
          "--out", str(tmp_path / "curve")])
    rows = (tmp_path / "curve" / "curve.csv").read_text().split()[1:]
    assert len(rows) == 2  # two checkpoint intervals of 2 batches
    epochs, frames, wall, share = zip(*[map(float, r.split(",")) for r in rows])
    assert frames == (256.0, 512.0) and 0 < wall[0] <= wall[1]  # metrics.csv keeps 0.1 s: two fast batches may tie
    env = make_env(cfg.scenario, cfg.env, days=[5], sequential_days=True, stochastic=False)
    from dcsched.agents.checkpoint_policy import load_checkpoint_policy

    utility = run_days(env, load_checkpoint_policy(tmp_path / "checkpoints" / "epoch001.ckpt", env))["utility_usd"].sum()
    assert share[1] == pytest.approx(utility / 10_000.0, rel=1e-4)
    assert "local_only" in capsys.readouterr().out


def test_lagrangian_ppo_with_a_frozen_zero_multiplier_is_plain_ppo(tmp_path, two_batches):
    """constraint=violation with lambda 0 and no dual step trains exactly as plain PPO; a cost above
    a zero limit raises lambda, and a positive lambda changes the updates (the decrease and the
    projection at 0 are checked by hand below)."""
    frozen = _fit(tmp_path / "frozen", 2, extra=["agent.constraint=violation", "agent.lr_lagrange=0"])
    assert torch.equal(two_batches[1], _weights(frozen))
    assert float(frozen.algorithm.lagrange) == 0.0
    pushed = _fit(tmp_path / "pushed", 2, extra=["agent.constraint=violation", "agent.cost_limit=0",
                                                  "agent.lr_lagrange=10"])
    assert float(pushed.algorithm.lagrange) > 0, "a cost above a zero limit must raise the multiplier"
    assert not torch.equal(two_batches[1], _weights(pushed)), "a positive multiplier must change the updates"


def test_penalised_reward_and_dual_step_by_hand():
    from dcsched.agents.ppo import dual_step, penalised_reward

    r = torch.tensor([[[1.0], [0.5]]])
    c = torch.tensor([[0.2, 0.0]])
    torch.testing.assert_close(penalised_reward(r, c, torch.tensor(2.0)), torch.tensor([[[0.6], [0.5]]]))
    assert float(dual_step(torch.tensor(1.0), 0.15, 0.05, 2.0)) == pytest.approx(1.2)
    assert float(dual_step(torch.tensor(0.1), 0.0, 0.05, 10.0)) == 0.0  # projected onto lambda >= 0


def test_sac_refuses_a_constraint():
    """SAC's config has no constraint key: refused as the recipe loads. MAPPO's has one (it derives
    from PPO's), and its capabilities refuse a constraint before anything is built."""
    from dcsched.errors import ConfigError
    from dcsched.training.harness import Agent

    with pytest.raises(ConfigError, match="agent.constraint") as err:
        load_recipe("quick/sac", ["agent.constraint=violation", "env.num_envs=2"])
    assert err.value.problem == "unknown key"
    cfg = load_recipe("quick/mappo", ["agent.constraint=violation", "env.num_envs=2"])
    with pytest.raises(ConfigError, match="agent.constraint") as err:
        Agent(to_container(cfg))
    assert err.value.allowed == "none"


def test_lagrangian_keys_enter_the_run_hash_only_when_a_constraint_is_on():
    """Unconstrained runs keep the hash they had before the Lagrangian keys existed (finished
    experiment cells stay valid); a constrained run's hash depends on them."""
    from dcsched.experiments.spec import run_config_hash

    base = run_config_hash(load_recipe("ppo_parallel"))
    assert run_config_hash(load_recipe("ppo_parallel", ["agent.cost_limit=0.2", "agent.lr_lagrange=3"])) == base
    on = run_config_hash(load_recipe("ppo_parallel", ["agent.constraint=violation"]))
    assert on != base
    assert run_config_hash(load_recipe("ppo_parallel", ["agent.constraint=violation", "agent.cost_limit=0.2"])) != on


def test_transfer_chunks_enter_the_run_hash_only_off_their_default():
    """A run with one transfer chunk hashes as before the key existed; another count changes it."""
    from omegaconf import OmegaConf

    from dcsched.experiments.spec import run_config_hash

    cfg = load_recipe("ppo_parallel")
    before = to_container(cfg)
    del before["env"]["transfer_chunks"]
    assert run_config_hash(cfg) == run_config_hash(OmegaConf.create(before))
    assert run_config_hash(load_recipe("ppo_parallel", ["env.transfer_chunks=4"])) != run_config_hash(cfg)


def test_chunked_discrete_ppo_trains_and_its_checkpoint_acts_in_chunks(tmp_path):
    """env.transfer_chunks=2: the actor scores two destinations per (origin, class); evaluation
    rebuilds the env with the checkpoint's chunks, and the greedy action splits rows in halves."""
    from dcsched.agents.checkpoint_policy import load_checkpoint_policy
    from dcsched.config import EnvConfig
    from dcsched.envs import make_env
    from dcsched.eval.evaluate import checkpoint_env_config

    _fit(tmp_path, 1, extra=["env.transfer_chunks=2"])
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    cfg = load_recipe("quick/ppo_parallel")
    env_cfg = checkpoint_env_config(str(ckpt), EnvConfig())
    assert env_cfg.transfer_chunks == 2 and env_cfg.action_encoding == "discrete"
    env = make_env(cfg.scenario, env_cfg, num_envs=3, seed=1)
    td = env.reset()
    action = load_checkpoint_policy(ckpt, env).act(td)
    assert action.shape == (3, len(discrete_nvec(env.params, 2)))
    shares = env.decode(action).transfer
    assert torch.equal(shares * 2, (shares * 2).round())
    with pytest.raises(Exception, match="action scores"):
        load_checkpoint_policy(ckpt, make_env(cfg.scenario, cfg.env, num_envs=2))


def test_resuming_a_finished_run_trains_nothing(tmp_path, two_batches):
    """A checkpoint that already holds trainer.total_frames is not trained further (a fit would
    collect and train one more batch): re-evaluating a finished experiment cell changes nothing."""
    import shutil

    from dcsched.training.train import train_from_config

    shutil.copytree(two_batches[0], tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = ckpt.read_bytes()
    cfg = load_recipe("quick/ppo_parallel", TINY + ["trainer.total_frames=256", f"out_dir={tmp_path}",
                                                    f"resume={ckpt}"])
    module, _ = train_from_config(cfg, run_dir=tmp_path / "run")
    assert int(module.frames) == 256 and ckpt.read_bytes() == before
    assert torch.equal(_weights(module), two_batches[1])
