"""Which code produced a result: the checkout's commit (ground floor: no dcsched imports but the paths)."""

from __future__ import annotations

import subprocess

from dcsched.paths import REPO_ROOT


def git_commit() -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes); for an installed package, its version."""
    if not (REPO_ROOT / ".git").exists():
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"dcsched {version('dcsched')} (installed, no git checkout)"
        except PackageNotFoundError:
            return "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
