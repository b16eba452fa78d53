"""Where the package's own files live: the shipped recipes, scenarios and checkpoints (ground floor: no dcsched imports)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent  # a checkout's root (only for its git commit; an installed package has none)
RECIPES_DIR = PACKAGE_DIR / "recipes"  # shipped with the package; `recipes/` in a checkout links here
SCENARIO_DIR = RECIPES_DIR / "scenario"
CHECKPOINTS_DIR = PACKAGE_DIR / "checkpoints"  # shipped quality curves and the reference digits model


def shipped_file(spec: str | Path, folder: Path = RECIPES_DIR) -> Path:
    """A path as given if it exists; else the shipped file it names, so that ``quick/sac``,
    ``quick/sac.yaml`` and ``recipes/quick/sac.yaml`` work from any directory (relative to
    ``folder``, default the shipped recipes). Returns the path as given when nothing matches (the
    loader's error then names it)."""
    path = Path(spec)
    if path.exists():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("recipes",) else path.parts
    rel = Path(*parts) if parts else path
    for candidate in (folder / rel, folder / rel.with_name(rel.name + ".yaml"),
                      RECIPES_DIR / rel, RECIPES_DIR / rel.with_name(rel.name + ".yaml")):
        if candidate.is_file():
            return candidate
    return path
