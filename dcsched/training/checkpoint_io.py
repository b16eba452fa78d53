"""Lightning CheckpointIO that writes atomically (tmp file + rename): Ctrl-C never leaves a
half-written .ckpt, and a full disk leaves the previous one.

``torch.save`` to a path reports a failed write as an opaque RuntimeError (``unexpected pos ...``);
saving through a Python file object keeps the write's OSError (ENOSPC, EDQUOT, EFBIG) in the
chain, and it is re-raised naming the checkpoint (``train_from_config`` turns it into a clear error)."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dcsched.io import atomic_write


def _save_through_file(checkpoint, tmp_path: Path) -> None:
    with open(tmp_path, "wb") as handle:
        torch.save(checkpoint, handle)


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        try:
            atomic_write(Path(path), lambda p: _save_through_file(checkpoint, p))
        except (OSError, RuntimeError) as err:
            cause = _os_error_in(err)
            if cause is None:
                raise
            raise OSError(cause.errno, cause.strerror, str(path)) from err


def _os_error_in(err: BaseException) -> OSError | None:
    """The OSError in ``err``'s chain: torch's zip writer, closing after a failed write, raises a
    RuntimeError (``unexpected pos``) whose context is the write's OSError."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno is not None:
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
