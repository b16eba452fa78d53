"""Off-policy agents (SAC, TD3) as LightningModules on a TorchRL Collector.

The collector steps the batched env with the module's own actor (in-process: no weight sync),
and feeds ``training_step`` through an IterableDataset. ``training_step`` takes the dataloader
iterator itself, so Lightning never prefetches a batch: a checkpoint taken after batch k holds
exactly k batches, which is what makes resume exact. Counters are environment frames and
gradient updates (``self.frames``, ``self.updates``), not Lightning's global_step.

An optional shaper (``dcsched.shaping``, chosen by registry name) acts on each sampled batch like a
transform: it annotates each collected batch with the auxiliary reward it proposes, and per update
runs its own step and writes r^E + eta * F to ("next", "shaped_reward"); the policy agent's loss
is pointed at that key with ``set_keys`` (the sampled r^E is never overwritten).
"""

from __future__ import annotations

import copy
import math
import time

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from tensordict import TensorDictBase
from torch.utils.data import DataLoader, IterableDataset
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.objectives import SACLoss, SoftUpdate, TD3Loss

from dcsched.agents import networks
from dcsched.agents.collection import make_collector
from dcsched.agents.compilation import compiled_loss
from dcsched.agents.episode_stats import EPISODE_REWARD, STEP_COUNT, finished_episodes, with_episode_stats
from dcsched.agents.torchrl_adapter import (collector_state, compact_state, expand_state, load_collector_state,
                                            storage_tensors)
from dcsched.agents.placement import check_placement, resolve_device
from dcsched.config import RunConfig, migrate_moved_keys
from dcsched.envs.dc_env import make_env
from dcsched.shaping.base import R_AUX_NOW_KEY, SHAPED_REWARD, correlation


def _identity(x):
    return x


class CollectorStream(IterableDataset):
    """An endless stream of collector batches (Collector(total_frames=-1))."""

    def __init__(self, collector: Collector):
        self.collector = collector
        self._batches = None

    def __iter__(self):
        # one collector iterator for the whole fit: Lightning asks for a new one each epoch, and a
        # multi-process collector cannot restart its workers' protocol mid-run. No `yield from`:
        # closing an epoch's generator must not close the collector's iterator.
        if self._batches is None:
            self._batches = iter(self.collector)
        while True:
            yield next(self._batches)


def typed_config(cfg) -> DictConfig:
    """A run config (a DictConfig or a checkpoint's stored one, with keys of older layouts moved:
    :data:`~dcsched.config.MOVED_KEYS`) merged onto the :class:`RunConfig` schema."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else copy.deepcopy(dict(cfg))
    return OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.create(migrate_moved_keys(data)))


class CollectorAgent(L.LightningModule):
    """Shared machinery of every agent: env, collector stream, counters, metrics, checkpoints.
    Subclasses build their networks and loss in ``build`` and implement ``training_step``."""

    algo = "agent"
    uses_replay = True
    reward_key: str | tuple = "reward"  # the env reward the episode statistics sum
    shaping = "off_policy"  # how a shaper (shaper.name) plugs in: off_policy (on sampled batches) | per_agent | none
    action_encodings: tuple[str, ...] = ("continuous",)  # env.action_encoding values this agent can act in
    constraints: tuple[str, ...] = ("none",)  # agent.constraint values this agent implements
    collector_backends: tuple[str, ...] = ("inprocess", "process", "ray")  # collector.backend values it runs on

    def __init__(self, cfg: dict):
        super().__init__()
        self.save_hyperparameters({"cfg": cfg})
        self.automatic_optimization = False
        self.cfg = c = typed_config(cfg)
        self.train_device = resolve_device(c.env.device, c.trainer.accelerator)
        c.env.device = str(self.train_device)
        torch.manual_seed(c.seed)
        # not a child module: Lightning must not move the env's tensors (it keeps its own device)
        object.__setattr__(self, "env", make_env(c.scenario, c.env, seed=c.seed, report_outcome=True))
        self.obs_dim = self.env.obs_dim
        self.act_dim = self.env.action_spec.shape[-1]
        if c.env.action_encoding not in self.action_encodings:
            from dcsched.errors import ConfigError

            raise ConfigError("recipe", "env.action_encoding", f"agent {self.algo} cannot act in the "
                              f"'{c.env.action_encoding}' encoding", " | ".join(self.action_encodings))
        if c.agent.constraint not in self.constraints:
            from dcsched.errors import ConfigError

            raise ConfigError("recipe", "agent.constraint", f"agent {self.algo} has no '{c.agent.constraint}' "
                              "constraint", " | ".join(self.constraints))
        if c.collector.backend not in self.collector_backends:
            from dcsched.errors import ConfigError

            raise ConfigError("recipe", "collector.backend", f"agent {self.algo} cannot collect with the "
                              f"'{c.collector.backend}' backend", " | ".join(self.collector_backends))
        self.shaper = None
        if c.shaper.name != "none":
            from dcsched.errors import ConfigError
            from dcsched.registry import SHAPERS

            if self.shaping == "none":
                raise ConfigError("recipe", "shaper.name", f"agent {self.algo} takes no shaper",
                                  "none (or use agent.name=sac|td3, or mappo|ippo for per-provider reward agents)")
            SHAPERS.get(c.shaper.name)  # an unknown name fails here, with the registry's choices
            if self.shaping == "off_policy":
                self.shaper = SHAPERS.get(c.shaper.name)(self.obs_dim, self.act_dim, c.shaper, c.seed,
                                                         device=self.train_device)
        self.build(c)  # a per_agent agent builds its shaper here, on its own view's dimensions
        if self.shaper is not None and self.shaping == "off_policy":
            self.loss.set_keys(reward=SHAPED_REWARD)
        # what the updates call: the loss module, or its torch.compile'd wrapper (trainer.compile);
        # not a child module, so checkpoints keep the same keys either way
        object.__setattr__(self, "loss_call", compiled_loss(self.loss, c.trainer.compile, c.trainer.compile_mode))
        size = c.replay_buffer.size if self.uses_replay else 1
        self.rb = TensorDictReplayBuffer(storage=LazyTensorStorage(size, device=self.train_device),
                                         batch_size=c.replay_buffer.batch_size)
        self.register_buffer("frames", torch.zeros((), dtype=torch.long))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("update_credit", torch.zeros((), dtype=torch.float64))
        self.collector: Collector | None = None
        self._pending: dict | None = None
        self._pending_rng: torch.Tensor | None = None
        self.wandb_id: str | None = None
        self.interrupt_requested = False
        self._t0 = time.perf_counter()
        self.to(self.train_device)

    def placed(self) -> dict[str, object]:
        """Every part that must live on the training device (see :func:`check_placement`)."""
        parts: dict[str, object] = {"agent": self}
        if self.shaper is not None:
            parts["shaper.gen"] = self.shaper.gen
        tensors = storage_tensors(self.rb.storage)
        if tensors:
            parts["replay_buffer"] = tensors
        parts["env.params"] = {k: v for k, v in vars(self.env.params).items() if isinstance(v, torch.Tensor)}
        parts["env.rng"] = self.env.rng
        return parts

    # ------------------------------------------------------------------ to implement
    def build(self, c) -> None:
        raise NotImplementedError

    def exploration_module(self):
        return self.actor

    def gradient_update(self, sample: TensorDictBase) -> dict[str, float]:
        raise NotImplementedError

    def next_batch(self, dataloader_iter) -> TensorDictBase:
        """Pull one collector batch (Lightning does not prefetch: exact resume) and count frames.
        Remote workers first receive the current policy weights (TorchRL weight sync)."""
        if self.collector is not None and self.cfg.collector.backend != "inprocess" and int(self.updates) > 0:
            self.collector.update_policy_weights_(self.exploration_module())
        if self._pending_rng is not None:  # resume: the global stream continues where it was saved
            torch.set_rng_state(self._pending_rng)
            self._pending_rng = None
        batch = next(dataloader_iter)
        if isinstance(batch, tuple):  # Lightning yields (batch, batch_idx, dataloader_idx)
            batch = batch[0]
        self.frames += batch.numel()
        return batch

    def stop_at_budget(self) -> None:
        """Stop after the batch that reaches trainer.total_frames (not at the end of a whole epoch),
        or after this batch when Ctrl-C asked for it (dcsched.agents.train.deferred_interrupt)."""
        if self._trainer is None:
            return
        if int(self.frames) >= self.cfg.trainer.total_frames or self.interrupt_requested:
            self.trainer.should_stop = True

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.stop_at_budget()
        metrics["frames"] = float(self.frames)
        metrics["updates"] = float(self.updates)
        metrics["fps"] = float(self.frames) / max(time.perf_counter() - self._t0, 1e-9)
        self.log_dict(metrics, on_step=True, prog_bar=False, batch_size=1)
        self.log("utility_per_slot", metrics["train/utility_usd_per_slot"], prog_bar=True, batch_size=1)
        self.log("violation", metrics["train/violation_rate"], prog_bar=True, batch_size=1)

    def last_logged(self, keys) -> dict[str, float]:
        """The last logged value of each of ``keys`` that this run logged (after fitting)."""
        logged = self._trainer.callback_metrics if self._trainer is not None else {}
        return {k: float(logged[k]) for k in keys if k in logged}

    # ------------------------------------------------------------------ data
    def train_dataloader(self):
        if self.collector is None:
            c = self.cfg
            # the collector steps the env with RewardSum and StepCounter (episode statistics)
            object.__setattr__(self, "collector_env", with_episode_stats(self.env, self.reward_key))
            self.collector = make_collector(c, self.collector_env, self.exploration_module(),
                                            c.agent.warmup_frames if c.agent.warmup_frames > 0 else None)
        # own generator: creating the loader's iterator must not draw from the global RNG
        return DataLoader(CollectorStream(self.collector), batch_size=None, num_workers=0, collate_fn=_identity,
                          generator=torch.Generator())

    def _episode_metrics(self, batch: TensorDictBase) -> dict[str, float]:
        """True utility and its components and the violation rate of this batch; the env return and
        length of the episodes that ended in it (RewardSum, StepCounter). batch: [num_envs, steps]."""
        out = {}
        oc = batch["next", "outcome"]
        arrived = oc["arrivals"].sum()
        bad = oc["late"].sum() + oc["dropped"].sum()
        out["train/violation_rate"] = float(bad / arrived.clamp(min=1e-9))
        for key in ("revenue_usd", "energy_cost_usd", "transfer_cost_usd", "penalty_usd", "utility_usd"):
            out[f"train/{key}_per_slot"] = float(oc[key].sum(-1).mean())
        episodes = finished_episodes(batch, self.reward_key)
        if episodes:
            done = batch["next", "done"]
            episodes["train/episode_utility_usd"] = float(batch["next", "episode_utility_usd"][done].to(torch.float64).mean())
        out.update(episodes)
        return out

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        extra = {
            "rb": compact_state(self.rb.state_dict()),
            "env_rng": self.env.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "wandb_id": self.wandb_id,
        }
        if self.train_device.type == "cuda":
            extra["cuda_rng"] = torch.cuda.get_rng_state(self.train_device)
        if self.collector is not None and self.cfg.collector.backend == "inprocess":
            # exact resume needs the in-process collector's state; remote workers restart their envs
            extra.update(collector_state(self.collector))
        if self.shaper is not None:
            extra["shaper_opt"] = self.shaper.optimizer_state()
        checkpoint["dcsched"] = extra

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # checkpoints written while the env was a child module carry its buffers: not state
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith("env.")]:
            del state[key]
        state.pop("episode_return", None)  # before RewardSum kept the episode returns (dcsched.agents.episode_stats)
        extra = checkpoint["dcsched"]
        if "rb" in extra:
            self.rb.load_state_dict(expand_state(extra["rb"], device=self.train_device))
        else:  # a slimmed evaluation checkpoint (the experiment layer drops the buffer of finished runs)
            import warnings

            warnings.warn("checkpoint has no replay buffer: training resumes with an empty one", stacklevel=2)
        if self.shaper is not None and "shaper_opt" in extra:
            self.shaper.load_optimizer_state(extra["shaper_opt"])
        self.wandb_id = extra.get("wandb_id")
        self._pending = extra

    def on_train_start(self) -> None:
        self._t0 = time.perf_counter()
        check_placement(self.placed(), self.train_device, f"{self.algo} at the start of training")
        if self._pending is None:
            return
        extra, self._pending = self._pending, None
        self.env.rng.set_state(extra["env_rng"])
        if "collector" in extra and self.collector is not None:
            load_collector_state(self.collector, extra, self.collector_env.state_dict())  # env buffers: from the config
        self._pending_rng = extra["torch_rng"]
        if "cuda_rng" in extra and self.train_device.type == "cuda":
            torch.cuda.set_rng_state(extra["cuda_rng"].cpu(), self.train_device)

    def teardown(self, stage: str) -> None:
        """Stop remote collector workers (processes or Ray actors) when fitting ends or fails."""
        if self.collector is not None and self.cfg.collector.backend != "inprocess":
            self.collector.shutdown()
            self.collector = None

    # ------------------------------------------------------------------ acting
    def act(self, td: TensorDictBase) -> torch.Tensor:
        """Deterministic action (policy mean) for evaluation."""
        return networks.mean_action(self.actor, td)


class OffPolicyAgent(CollectorAgent):
    """Replay buffer, update-to-data ratio and the optional shaper; subclasses build the loss."""

    algo = "off_policy"

    # ------------------------------------------------------------------ training
    def training_step(self, dataloader_iter):
        batch = self.next_batch(dataloader_iter)
        c = self.cfg
        n_frames = batch.numel()
        metrics = self._episode_metrics(batch)
        if self.shaper is not None:
            self.shaper.annotate(batch)
        self.rb.extend(batch.exclude("outcome", ("next", "outcome"), STEP_COUNT, EPISODE_REWARD, ("next", STEP_COUNT),
                                     ("next", EPISODE_REWARD)).reshape(-1))
        losses: dict[str, float] = {}
        if int(self.frames) >= c.agent.warmup_frames and len(self.rb) >= c.replay_buffer.batch_size:
            self.update_credit += c.optim.utd_ratio * n_frames / c.env.num_envs
            n_updates = int(math.floor(float(self.update_credit)))
            self.update_credit -= n_updates
            for i in range(n_updates):
                sample = self.rb.sample()
                diagnose = i == n_updates - 1  # diagnostics once per collector batch (the logging window)
                if self.shaper is not None:
                    losses.update(self.shaper.shape(sample, self.actor, int(self.frames), diagnose))
                losses.update(self.gradient_update(sample))
                if diagnose and self.shaper is not None:
                    losses["diag/corr_r_aux_advantage"] = correlation(sample[R_AUX_NOW_KEY], self.advantage(sample))
                self.updates += 1
        metrics.update(losses)
        self.log_metrics(metrics)

    @torch.no_grad()
    def advantage(self, sample: TensorDictBase) -> torch.Tensor:
        """The policy agent's advantage estimate A(s, a) = Q(s, a) - Q(s, mean action), with Q the
        minimum over its Q-networks (the loss module's current parameters). Returns [B, 1]."""
        loss = self.loss
        mean_action = networks.mean_action(self.actor, sample)

        def min_q(action):
            td = sample.select("observation").clone().set("action", action)
            values = []
            for j in range(loss.num_qvalue_nets):
                with loss.qvalue_network_params[j].to_module(loss.qvalue_network):
                    values.append(loss.qvalue_network(td.clone())["state_action_value"])
            return torch.stack(values).min(0).values

        return min_q(sample["action"]) - min_q(mean_action)


class SACAgent(OffPolicyAgent):
    """Soft actor-critic (TorchRL SACLoss, twin Q, soft target updates, auto-tuned alpha)."""

    algo = "sac"

    def build(self, c) -> None:
        a = c.agent
        spec = self.env.action_spec_unbatched
        self.actor = networks.sac_actor(self.obs_dim, self.act_dim, c.network.hidden_sizes, spec).to(self.train_device)
        self.actor(self.env.reset())  # initialise lazy shapes
        q_net = networks.q_network(self.obs_dim, self.act_dim, c.network.hidden_sizes).to(self.train_device)
        self.loss = SACLoss(self.actor, q_net,
                            num_qvalue_nets=2, alpha_init=a.alpha_init, fixed_alpha=a.fixed_alpha, action_spec=spec,
                            loss_function=a.critic_loss)
        self.loss.make_value_estimator(gamma=a.gamma)
        _ = self.loss.target_entropy  # lazily registered buffer: touch it so checkpoints load strictly
        self.target_updater = SoftUpdate(self.loss, tau=a.tau)

    def configure_optimizers(self):
        optim = self.cfg.optim
        opts = [torch.optim.Adam(self.loss.actor_network_params.flatten_keys().values(), lr=optim.lr_actor),
                torch.optim.Adam(self.loss.qvalue_network_params.flatten_keys().values(), lr=optim.lr_critic)]
        if not self.cfg.agent.fixed_alpha:
            opts.append(torch.optim.Adam([self.loss.log_alpha], lr=optim.lr_alpha))
        return opts

    def gradient_update(self, sample):
        opts = self.optimizers()
        loss_td = self.loss_call(sample)
        total = loss_td["loss_actor"] + loss_td["loss_qvalue"]
        if not self.cfg.agent.fixed_alpha:
            total = total + loss_td["loss_alpha"]
        for o in opts:
            o.zero_grad()
        self.manual_backward(total)
        for o in opts:
            o.step()
        self.target_updater.step()
        return {"loss/actor": loss_td["loss_actor"].item(), "loss/critic": loss_td["loss_qvalue"].item(),
                "alpha": loss_td["alpha"].item(), "entropy": loss_td["entropy"].item()}


class TD3Agent(OffPolicyAgent):
    """TD3 (TorchRL TD3Loss): deterministic actor, Gaussian exploration, target smoothing, delayed actor."""

    algo = "td3"

    def build(self, c) -> None:
        a = c.agent
        spec = self.env.action_spec_unbatched
        self.actor = networks.deterministic_actor(self.obs_dim, self.act_dim, c.network.hidden_sizes).to(self.train_device)
        self.explorer = networks.exploration_policy(self.actor, spec, a.exploration_noise).to(self.train_device)
        self.actor(self.env.reset())
        q_net = networks.q_network(self.obs_dim, self.act_dim, c.network.hidden_sizes).to(self.train_device)
        self.loss = TD3Loss(self.actor, q_net,
                            action_spec=spec, num_qvalue_nets=2, policy_noise=a.policy_noise, noise_clip=a.noise_clip,
                            loss_function=a.critic_loss)
        self.loss.make_value_estimator(gamma=a.gamma)
        self.target_updater = SoftUpdate(self.loss, tau=a.tau)

    def exploration_module(self):
        return self.explorer

    def configure_optimizers(self):
        optim = self.cfg.optim
        return [torch.optim.Adam(self.loss.actor_network_params.flatten_keys().values(), lr=optim.lr_actor),
                torch.optim.Adam(self.loss.qvalue_network_params.flatten_keys().values(), lr=optim.lr_critic)]

    def gradient_update(self, sample):
        opt_actor, opt_q = self.optimizers()
        loss_td = self.loss_call(sample)
        update_actor = int(self.updates) % self.cfg.agent.policy_delay == 0
        opt_actor.zero_grad()
        opt_q.zero_grad()
        total = loss_td["loss_qvalue"] + (loss_td["loss_actor"] if update_actor else 0.0)
        self.manual_backward(total)
        opt_q.step()
        if update_actor:
            opt_actor.step()
            self.target_updater.step()
        return {"loss/actor": loss_td["loss_actor"].item(), "loss/critic": loss_td["loss_qvalue"].item()}
