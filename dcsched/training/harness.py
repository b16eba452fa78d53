"""The training harness: one LightningModule that trains any :class:`~dcsched.agents.algorithm.Algorithm`.

The harness owns what every method shares: the env (and the per-provider view where the algorithm
acts on one), the TorchRL collector stream, the replay buffer, the counters (environment frames
and gradient updates, not Lightning's global_step), the episode metrics, the checkpoints and exact
resume, the device check. The algorithm (chosen by ``agent.name`` in the AGENTS registry) owns its
networks, its loss and its update rule, and is the harness's one child module ``algorithm``.

The collector steps the batched env with the algorithm's exploration module (in-process: no weight
sync) and feeds ``training_step`` through an IterableDataset. ``training_step`` takes the
dataloader iterator itself, so Lightning never prefetches a batch: a checkpoint taken after batch k
holds exactly k batches, which is what makes resume exact.

Two loops, by ``capabilities.on_policy``:

- off-policy: each batch goes through ``algorithm.prepare`` into the replay buffer; past
  ``agent.warmup_frames``, ``optim.utd_ratio`` updates per env step (a fractional credit carries
  over) each sample the buffer and call ``algorithm.update``;
- on-policy: ``algorithm.prepare`` then, past the warm-up, ``algorithm.before_epochs`` (GAE) and
  ``agent.ppo_epochs`` passes of shuffled minibatches of ``agent.minibatch_size`` rows.
"""

from __future__ import annotations

import math
import time

import lightning as L
import torch
from tensordict import TensorDictBase
from torch import nn
from torch.utils.data import DataLoader, IterableDataset
from torchrl.collectors import Collector

from dcsched.agents.algorithm import UpdateContext
from dcsched.agents.checkpoint_format import algorithm_class, migrate_state_dict, typed_config
from dcsched.agents.episode_stats import finished_episodes
from dcsched.envs.gym_task import is_gym_task, success
from dcsched.training.parts import TrainingParts, build_parts
from dcsched.training.placement import check_placement
from dcsched.training.torchrl_adapter import (collector_state, compact_state, expand_state, load_collector_state,
                                            storage_tensors)
from dcsched.errors import ConfigError


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


class Agent(L.LightningModule):
    """The harness around the algorithm of ``cfg.agent.name``: the training loop, the counters and
    the checkpoints. ``cfg``: a run config (a dict); ``parts``: its env, replay buffer and collector
    factory (:func:`dcsched.training.parts.build_parts`, which seeds the run; built here when not
    handed in)."""

    def __init__(self, cfg: dict, parts: TrainingParts | None = None):
        super().__init__()
        self.save_hyperparameters({"cfg": cfg})
        self.automatic_optimization = False
        typed = parts.cfg if parts is not None else typed_config(cfg)
        algo_cls = algorithm_class(typed.agent.name)
        parts = parts or build_parts(typed, algo_cls)
        self.cfg = c = parts.cfg
        self.algo = algo_cls.name
        self.capabilities = caps = algo_cls.capabilities
        self.train_device = parts.device
        # not a child module: Lightning must not move the env's tensors (it keeps its own device)
        object.__setattr__(self, "env", parts.env)
        object.__setattr__(self, "_collector_for", parts.collector_for)
        self.algorithm = algo_cls(c, self.env, self.train_device, self._shaper_factory(c, caps.shaping))
        self.obs_dim, self.act_dim = self.algorithm.obs_dim, self.algorithm.act_dim
        self.rb = parts.replay_buffer
        self.register_buffer("frames", torch.zeros((), dtype=torch.long))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("update_credit", torch.zeros((), dtype=torch.float64))
        self.collector: Collector | None = None
        self._pending: dict | None = None
        self._pending_rng: torch.Tensor | None = None
        self.wandb_id: str | None = None
        self.interrupt_requested = False
        self._t0 = time.perf_counter()
        self._frames_at_t0 = 0
        self.to(self.train_device)

    def _shaper_factory(self, c, shaping: str):
        """The registered shaper of ``shaper.name`` as a factory (obs_dim, act_dim, seed) -> shaper,
        or None; refused by name when the algorithm takes no shaper."""
        if c.shaper.name == "none":
            return None
        from dcsched.registry import SHAPERS

        if shaping == "none":
            raise ConfigError("recipe", "shaper.name", f"agent {self.algo} takes no shaper",
                              "none (or use agent.name=sac|td3, or mappo|ippo for per-provider reward agents)")
        shaper_cls = SHAPERS.get(c.shaper.name)  # an unknown name fails here, with the registry's choices
        return lambda obs_dim, act_dim, seed: shaper_cls(obs_dim, act_dim, c.shaper, seed, device=self.train_device)

    @property
    def shaper(self) -> nn.Module | None:
        return self.algorithm.shaper

    @property
    def uses_replay(self) -> bool:
        return not self.capabilities.on_policy

    def exploration_module(self) -> nn.Module:
        return self.algorithm.exploration_module()

    def act(self, td: TensorDictBase) -> torch.Tensor:
        """Deterministic action for evaluation (the algorithm's)."""
        return self.algorithm.act(td)

    def placed(self) -> dict[str, object]:
        """Every part that must live on the training device (see :func:`check_placement`)."""
        parts: dict[str, object] = {"agent": self}
        if self.shaper is not None:
            parts["shaper.gen"] = self.shaper.gen
        tensors = storage_tensors(self.rb.storage)
        if tensors:
            parts["replay_buffer"] = tensors
        central = getattr(self.env, "central", self.env)
        if self.is_dc_env:  # a Gymnasium task steps on the CPU, with its own numpy generators
            parts["env.params"] = {k: v for k, v in vars(central.params).items() if isinstance(v, torch.Tensor)}
            parts["env.rng"] = central.rng
        return parts

    @property
    def is_dc_env(self) -> bool:
        """Whether the run steps the data-centre env (else a Gymnasium task, ``task: gym:...``)."""
        return not is_gym_task(self.cfg.task)

    def configure_optimizers(self):
        return self.algorithm.make_optimizers(self.cfg.optim)

    # ------------------------------------------------------------------ data
    def train_dataloader(self):
        if self.collector is None:
            # the collector steps the env with RewardSum and StepCounter (episode statistics)
            stepped, self.collector = self._collector_for(self.exploration_module())
            object.__setattr__(self, "collector_env", stepped)
        # own generator: creating the loader's iterator must not draw from the global RNG
        return DataLoader(CollectorStream(self.collector), batch_size=None, num_workers=0, collate_fn=_identity,
                          generator=torch.Generator())

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

    # ------------------------------------------------------------------ training
    def _context(self, optimizers: list, diagnose: bool = False) -> UpdateContext:
        return UpdateContext(optimizers=optimizers, backward=self.manual_backward, frames=int(self.frames),
                             updates=int(self.updates), diagnose=diagnose)

    def _optimizer_list(self) -> list:
        opts = self.optimizers()
        return list(opts) if isinstance(opts, (list, tuple)) else [opts]

    def training_step(self, dataloader_iter):
        batch = self.next_batch(dataloader_iter)
        metrics = self._episode_metrics(batch)
        if self.capabilities.on_policy:
            metrics.update(self._on_policy_step(batch))
        else:
            metrics.update(self._off_policy_step(batch))
        self.log_metrics(metrics)

    def _off_policy_step(self, batch: TensorDictBase) -> dict[str, float]:
        c = self.cfg
        data, metrics = self.algorithm.prepare(batch, int(self.frames))
        self.rb.extend(data.reshape(-1))
        if int(self.frames) >= c.agent.warmup_frames and len(self.rb) >= c.replay_buffer.batch_size:
            self.update_credit += c.optim.utd_ratio * batch.numel() / c.env.num_envs
            n_updates = int(math.floor(float(self.update_credit)))
            self.update_credit -= n_updates
            opts = self._optimizer_list()
            for i in range(n_updates):
                # diagnostics once per collector batch (the logging window)
                ctx = self._context(opts, diagnose=i == n_updates - 1)
                metrics.update(self.algorithm.update(self.rb.sample(), ctx))
                self.updates += 1
        return metrics

    def _on_policy_step(self, batch: TensorDictBase) -> dict[str, float]:
        a = self.cfg.agent
        data, metrics = self.algorithm.prepare(batch, int(self.frames))
        if int(self.frames) > a.warmup_frames:
            metrics.update(self.algorithm.before_epochs(data, int(self.frames)))
            flat = data.select(*self.algorithm.minibatch_keys()).reshape(-1)
            n = flat.shape[0]
            mb = min(a.minibatch_size, n)
            opts = self._optimizer_list()
            for _ in range(a.ppo_epochs):
                perm = torch.randperm(n, device=flat.device)  # CPU: the same draws as before
                for start in range(0, n - mb + 1, mb):
                    metrics.update(self.algorithm.update(flat[perm[start : start + mb]], self._context(opts)))
                    self.updates += 1
        return metrics

    def _episode_metrics(self, batch: TensorDictBase) -> dict[str, float]:
        """True utility and its components and the violation rate of this batch; the env return and
        length of the episodes that ended in it (RewardSum, StepCounter). batch: [num_envs, steps]."""
        if not self.is_dc_env:
            return self._task_episode_metrics(batch)
        out = {}
        oc = batch["next", "outcome"]
        arrived = oc["arrivals"].sum()
        bad = oc["late"].sum() + oc["dropped"].sum()
        out["train/violation_rate"] = float(bad / arrived.clamp(min=1e-9))
        for key in ("revenue_usd", "energy_cost_usd", "transfer_cost_usd", "penalty_usd", "utility_usd"):
            out[f"train/{key}_per_slot"] = float(oc[key].sum(-1).mean())
        episodes = finished_episodes(batch, self.capabilities.reward_key)
        if episodes:
            done = batch["next", "done"]
            episodes["train/episode_utility_usd"] = float(batch["next", "episode_utility_usd"][done].to(torch.float64).mean())
        out.update(episodes)
        return out

    def _task_episode_metrics(self, batch: TensorDictBase) -> dict[str, float]:
        """A Gymnasium task's return and length of the episodes that ended in this batch, and the share
        of them that reached the goal (:func:`dcsched.envs.gym_task.success`)."""
        out = finished_episodes(batch, self.capabilities.reward_key)
        done = batch["next", "done"].squeeze(-1)
        if bool(done.any()):
            reached = success(batch["next", "terminated"].squeeze(-1), batch["next", "truncated"].squeeze(-1))
            out["train/success_rate"] = float(reached[done].to(torch.float64).mean())
        return out

    def stop_at_budget(self) -> None:
        """Stop after the batch that reaches trainer.total_frames (not at the end of a whole epoch),
        or after this batch when Ctrl-C asked for it (dcsched.training.train.deferred_interrupt)."""
        if self._trainer is None:
            return
        if int(self.frames) >= self.cfg.trainer.total_frames or self.interrupt_requested:
            self.trainer.should_stop = True

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.stop_at_budget()
        metrics["frames"] = float(self.frames)
        metrics["updates"] = float(self.updates)
        metrics["fps"] = self.frames_per_s()
        self.log_dict(metrics, on_step=True, prog_bar=False, batch_size=1)
        if self.is_dc_env:
            self.log("utility_per_slot", metrics["train/utility_usd_per_slot"], prog_bar=True, batch_size=1)
            self.log("violation", metrics["train/violation_rate"], prog_bar=True, batch_size=1)
        elif "train/episode_return" in metrics:
            self.log("return", metrics["train/episode_return"], prog_bar=True, batch_size=1)

    def last_logged(self, keys) -> dict[str, float]:
        """The last logged value of each of ``keys`` that this run logged (after fitting)."""
        logged = self._trainer.callback_metrics if self._trainer is not None else {}
        return {k: float(logged[k]) for k in keys if k in logged}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        central = getattr(self.env, "central", self.env)
        extra = {
            "rb": compact_state(self.rb.state_dict()),
            "torch_rng": torch.get_rng_state(),
            "wandb_id": self.wandb_id,
            **self.algorithm.extra_state(),
        }
        if self.is_dc_env:
            extra["env_rng"] = central.rng.get_state()
        if self.train_device.type == "cuda":
            extra["cuda_rng"] = torch.cuda.get_rng_state(self.train_device)
        if self.collector is not None and self.cfg.collector.backend == "inprocess" and self.is_dc_env:
            # exact resume needs the in-process collector's state; remote workers restart their envs, and so
            # does a Gymnasium task (its envs' state is not checkpointed: its episodes restart on resume)
            extra.update(collector_state(self.collector))
        checkpoint["dcsched"] = extra

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        migrate_state_dict(checkpoint.get("state_dict", {}))
        extra = checkpoint["dcsched"]
        if "rb" in extra:
            self.rb.load_state_dict(expand_state(extra["rb"], device=self.train_device))
        elif not self.capabilities.on_policy:  # a slimmed evaluation checkpoint (the experiment layer drops the buffer)
            import warnings

            warnings.warn("checkpoint has no replay buffer: training resumes with an empty one", stacklevel=2)
        self.algorithm.load_extra_state(extra)
        self.wandb_id = extra.get("wandb_id")
        self._pending = extra

    def frames_per_s(self) -> float:
        """Environment frames per second of wall time since this fit started (training included): the
        frames of a resumed run's earlier calls do not count."""
        return float(int(self.frames) - self._frames_at_t0) / max(time.perf_counter() - self._t0, 1e-9)

    def on_train_start(self) -> None:
        self._t0 = time.perf_counter()
        self._frames_at_t0 = int(self.frames)  # restored from the checkpoint by now when resuming
        check_placement(self.placed(), self.train_device, f"{self.algo} at the start of training")
        if self._pending is None:
            return
        extra, self._pending = self._pending, None
        if "env_rng" in extra:
            getattr(self.env, "central", self.env).rng.set_state(extra["env_rng"])
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
