"""Action distributions with the schedule's structure (MODEL.md section 4, factorised discrete).

:class:`FactorisedCategorical` is one categorical per action component, laid out as the env's
discrete encoding (:func:`dcsched.envs.actions.discrete_nvec`): a destination per (origin, class)
(unordered), a step level per (DC, class), a frequency level per DC and, with the learned energy
layer, a battery level per DC. Levels of an ordered component (steps, frequency, battery) are
parametrised as ordinal (Tang & Agrawal 2020, TorchRL's ``Ordinal``): neighbouring levels share
probability mass, so moving "one level up" is one direction in score space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributions as D
from torchrl.modules.distributions import Ordinal

from dcsched.envs.actions import BATTERY_LEVELS, chunk_levels, largest_remainder


@dataclass(frozen=True)
class ComponentGroup:
    """``count`` action components with ``levels`` choices each; ``ordinal``: the levels are ordered.
    ``chunks`` > 1: the components come in consecutive blocks of that many exchangeable chunks of
    one quantity (a transfer row split into Q chunks); the deterministic action of a block is its
    expected split (the chunks' mean probabilities) rounded to 1/Q, not each chunk's argmax."""

    count: int
    levels: int
    ordinal: bool
    chunks: int = 1

    @property
    def num_scores(self) -> int:
        return self.count * self.levels


def schedule_groups(num_dcs: int, num_classes: int, num_steps: int, num_freqs: int,
                    learned_energy: bool, transfer_chunks: int = 1) -> tuple[ComponentGroup, ...]:
    """The groups of the env's discrete encoding, in its order (destinations per chunk, steps,
    frequency, battery)."""
    N, K = num_dcs, num_classes
    groups = [ComponentGroup(N * K * transfer_chunks, N, False, chunks=transfer_chunks), ComponentGroup(N * K, num_steps, True), ComponentGroup(N, num_freqs, True)]
    if learned_energy:
        groups.append(ComponentGroup(N, len(BATTERY_LEVELS), True))
    return tuple(groups)


def groups_for(params, transfer_chunks: int = 1) -> tuple[ComponentGroup, ...]:
    """:func:`schedule_groups` of a scenario's SimParams and the env's ``transfer_chunks``."""
    return schedule_groups(params.num_dcs, params.num_classes, len(params.steps_grid), len(params.freq_levels),
                           params.learned_energy, transfer_chunks)


class FactorisedCategorical(D.Distribution):
    """Independent categoricals, one per action component.

    Args:
        scores: [*, sum(g.count * g.levels)] network outputs, group by group, component-major.
        groups: the component groups (:func:`schedule_groups`).

    Samples are [*, sum(g.count)] integer levels (int64); ``log_prob`` and ``entropy`` are summed
    over components ([*]); ``deterministic_sample`` is the most likely level of each component.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, scores: torch.Tensor, groups: tuple[ComponentGroup, ...]):
        expected = sum(g.num_scores for g in groups)
        if scores.shape[-1] != expected:
            raise ValueError(f"scores have {scores.shape[-1]} entries, the action groups need {expected}")
        batch = scores.shape[:-1]
        self.groups = groups
        self.parts: list[D.Categorical] = []
        o = 0
        for g in groups:
            s = scores[..., o : o + g.num_scores].reshape(*batch, g.count, g.levels)
            self.parts.append(Ordinal(scores=s) if g.ordinal else D.Categorical(logits=s))
            o += g.num_scores
        super().__init__(batch_shape=batch, event_shape=torch.Size([sum(g.count for g in groups)]),
                         validate_args=False)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return torch.cat([p.sample(sample_shape) for p in self.parts], dim=-1)

    def _split(self, value: torch.Tensor) -> list[torch.Tensor]:
        return list(value.long().split([g.count for g in self.groups], dim=-1))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(p.log_prob(v).sum(-1) for p, v in zip(self.parts, self._split(value)))

    def entropy(self) -> torch.Tensor:
        return sum(p.entropy().sum(-1) for p in self.parts)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        """Each component's most likely level; a chunked block's expected split rounded to 1/Q
        (:func:`dcsched.envs.actions.largest_remainder`), so a 60/40 preference stays a split."""
        out = []
        for g, p in zip(self.groups, self.parts):
            if g.chunks == 1:
                out.append(p.logits.argmax(-1))
                continue
            probs = p.probs.reshape(*p.probs.shape[:-2], g.count // g.chunks, g.chunks, g.levels)
            counts = largest_remainder(probs.mean(-2), g.chunks)  # [*, blocks, levels]
            out.append(chunk_levels(counts).reshape(*probs.shape[:-3], g.count))
        return torch.cat(out, dim=-1)

    @property
    def mode(self) -> torch.Tensor:
        return self.deterministic_sample
