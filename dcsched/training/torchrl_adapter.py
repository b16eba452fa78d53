"""The one module that reaches into TorchRL internals (pinned torchrl 0.14.1), where no public API
does the job. ``tests/test_agents.py::test_the_torchrl_internals_the_adapter_needs_are_there``
fails when a TorchRL upgrade changes any of them.

- Replay-buffer checkpoint state without the unused capacity. TorchRL's LazyTensorStorage
  allocates all ``buffer_size`` rows at the first write and its state_dict holds them all: 1e6
  transitions of this env are about 800 MB per checkpoint, even after 8k frames. Only the ``_len``
  filled rows are saved; loading pads them back to the full capacity, so the restored buffer is the
  one that was saved (same rows, cursor and write count). (TorchRL's storage checkpointers write
  folders of memory-mapped files, not a state inside Lightning's single .ckpt.)
- The in-process collector's carrier: the tensordict it steps from next, which its state_dict
  leaves out; exact resume needs it.
- The storage's tensors, for the device placement check.
"""

from __future__ import annotations

import torch

COMPACT_KEY = "dcsched_capacity"


def _map_leaves(tree: dict, fn) -> dict:
    """A copy of ``tree`` (same mapping type and attributes: TensorDict state dicts keep their batch
    size in them) with ``fn`` applied to every tensor leaf."""
    import copy

    out = copy.copy(tree)
    for k, v in tree.items():
        out[k] = _map_leaves(v, fn) if isinstance(v, dict) else fn(v) if isinstance(v, torch.Tensor) else v
    return out


def compact_state(state: dict) -> dict:
    """The state with every storage tensor cut to its filled rows (``state`` is not modified)."""
    storage = state.get("_storage", {})
    if not storage.get("initialized") or not isinstance(storage.get("_storage"), dict):
        return state
    n = int(storage["_len"])
    leaves = []
    _map_leaves(storage["_storage"], lambda t: leaves.append(t) or t)
    capacity = int(leaves[0].shape[0]) if leaves else 0
    if not capacity or n >= capacity:
        return state
    out = dict(state)
    out["_storage"] = dict(storage, _storage=_map_leaves(storage["_storage"], lambda t: t[:n].clone()))
    out["_storage"][COMPACT_KEY] = capacity
    return out


def expand_state(state: dict, device: torch.device | str | None = None) -> dict:
    """Inverse of :func:`compact_state`: pad the storage tensors back to their capacity with zeros,
    on ``device`` (default: where each saved tensor is)."""
    storage = state.get("_storage", {})
    capacity = storage.get(COMPACT_KEY)
    if capacity is None:
        return state

    def pad(t: torch.Tensor) -> torch.Tensor:
        full = torch.zeros((capacity, *t.shape[1:]), dtype=t.dtype, device=device or t.device)
        full[: t.shape[0]] = t
        return full

    out = dict(state)
    out["_storage"] = {k: v for k, v in storage.items() if k != COMPACT_KEY}
    out["_storage"]["_storage"] = _map_leaves(storage["_storage"], pad)
    return out


def storage_tensors(storage) -> dict[str, torch.Tensor]:
    """Every tensor of an initialised LazyTensorStorage by flattened key ({} before the first write)."""
    if not getattr(storage, "initialized", False):
        return {}
    return dict(storage._storage.flatten_keys().items())


def collector_state(collector) -> dict:
    """The in-process collector's state_dict plus its carrier (what it steps from next)."""
    return {"collector": collector.state_dict(), "carrier": collector._carrier.clone()}


def load_collector_state(collector, saved: dict, env_state_dict: dict) -> None:
    """Inverse of :func:`collector_state`; the env's buffers come from ``env_state_dict`` (rebuilt
    from the config, not from the checkpoint)."""
    state = dict(saved["collector"])
    state["env_state_dict"] = env_state_dict
    collector.load_state_dict(state)
    collector._carrier.update(saved["carrier"])
