"""Atomic artifact writing: write to a temporary file in the same folder, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then atomically move ``tmp_path`` onto ``path``.

    An interrupted write (Ctrl-C, crash) leaves the previous file, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _remove_stale(target: Path) -> None:
    """Remove the hidden ``.NAME.tmp-PID`` / ``.NAME.old-PID`` folders of :func:`fresh_dir` whose
    process is gone (a command killed with SIGKILL leaves its temporary folder behind)."""
    import os
    import shutil

    for stale in Path(target).parent.glob(f".{Path(target).name}.*-*"):
        kind, _, pid = stale.name.rpartition("-")
        if not (kind.endswith((".tmp", ".old")) and pid.isdigit()) or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


@contextlib.contextmanager
def fresh_dir(target: Path, overwrite: bool = False, key: str = "out_dir"):
    """Yield a temporary sibling folder to fill; on success it becomes ``target``. An existing
    non-empty ``target`` is refused unless ``overwrite``, and is replaced only once the new folder is
    complete (no stale files mixed in, nothing lost on failure). Without ``overwrite`` the final move
    is one atomic rename: when another process filled ``target`` meanwhile, this one's output goes to
    the next free ``target-N`` and a ConfigError says so (two processes never replace each other)."""
    import errno
    import os
    import shutil

    from dcsched.errors import ConfigError

    target = Path(target)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ConfigError("command line", key, f"{target} exists and is not empty; nothing was overwritten",
                          "another folder, or --overwrite")
    _remove_stale(target)
    made = [p for p in [target.parent, *target.parent.parents] if not p.exists()]  # parents this call creates
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:  # innermost first; a folder another process filled meanwhile stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    if overwrite and target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp, target)  # atomic; refused when another process filled target while this one ran
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        kept = next(target.with_name(f"{target.name}-{n}") for n in range(2, 10_000)
                    if not target.with_name(f"{target.name}-{n}").exists())
        os.rename(tmp, kept)
        raise ConfigError("command line", key, f"{target} was written by another process while this one ran; "
                          f"nothing was overwritten, and this run's output is in {kept}",
                          "one output folder per process, or --overwrite") from None
