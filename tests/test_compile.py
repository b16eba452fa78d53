"""The trainer.compile switch: the compiled loss is the same function as the eager one."""

import pytest
import torch

import dcsched.agents  # noqa: F401 (registers the agents)
from dcsched.agents.compilation import compiled_loss
from dcsched.config import load_recipe, to_container
from dcsched.training.harness import Agent

SMALL = ["env.num_envs=4", "network.hidden_sizes=[32,32]", "logger.wandb_mode=disabled", "logger.csv=false"]


def _losses_and_grads(module, loss_fn, data):
    torch.manual_seed(0)  # SAC's loss samples actions: the same draws for both calls
    module.zero_grad(set_to_none=True)
    out = loss_fn(data.clone())
    terms = {k: v for k, v in out.items() if k.startswith("loss_")}
    sum(terms.values()).backward()
    grads = torch.cat([p.grad.flatten() for p in module.algorithm.loss.parameters() if p.grad is not None])
    return {k: v.detach() for k, v in terms.items()}, grads


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["quick/ppo_parallel", "quick/sac"])
def test_compiled_loss_equals_the_eager_loss_and_its_gradients(recipe):
    """torch.compile of the agent's loss (trainer.compile=true): losses and gradients on one batch
    agree with eager to float rounding (compiled random draws fall back to eager's generator)."""
    import torch._inductor.config as inductor_config

    cfg = load_recipe(recipe, SMALL + ["trainer.compile=true"])
    module = Agent(to_container(cfg))
    assert module.algorithm.loss_call is not module.algorithm.loss  # the switch reached the agent
    with torch.no_grad():
        data = module.env.rollout(8, module.exploration_module(), break_when_any_done=False).reshape(-1)
        if cfg.agent.name == "ppo":
            module.algorithm.advantage(data)
    eager, eager_grads = _losses_and_grads(module, module.algorithm.loss, data)
    with inductor_config.patch(fallback_random=True):
        compiled, compiled_grads = _losses_and_grads(module, module.algorithm.loss_call, data)
    assert eager.keys() == compiled.keys() and eager
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled_grads, eager_grads, rtol=1e-3, atol=1e-5)
    assert float(eager_grads.abs().sum()) > 0


def test_compile_is_off_by_default_and_leaves_the_hash_of_older_runs():
    """Off by default: the loss is called as it is, and the switch's defaults are not in the run
    hash (cells recorded before the switch keep theirs)."""
    from dcsched.experiments.spec import run_config_hash

    cfg = load_recipe("quick/ppo_parallel", SMALL)
    module = Agent(to_container(cfg))
    assert module.algorithm.loss_call is module.algorithm.loss
    on = load_recipe("quick/ppo_parallel", SMALL + ["trainer.compile=true"])
    mode = load_recipe("quick/ppo_parallel", SMALL + ["trainer.compile=true", "trainer.compile_mode=max-autotune"])
    assert len({run_config_hash(cfg), run_config_hash(on), run_config_hash(mode)}) == 3
    plain = to_container(cfg)
    del plain["trainer"]["compile"], plain["trainer"]["compile_mode"]
    from omegaconf import OmegaConf

    assert run_config_hash(OmegaConf.create(plain)) == run_config_hash(cfg)
