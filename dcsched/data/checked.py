"""Reading the shipped data files with one clear error per problem (:class:`DataError`, exit 2).

Every file under ``dcsched/data/raw`` is listed with its SHA-256 in ``raw/MANIFEST.sha256``; a
shipped file that no longer matches (truncated, edited, half-copied) is refused before it is
parsed, so no changed trace can shift a result silently. Parsing errors (a missing column, text
in a numeric column, no rows, broken JSON) name the file, the column and the row.
Regenerate the manifest after replacing a shipped file on purpose (and record the new source in
``dcsched/data/SOURCES.md``): ``python -m dcsched.data.checked --write-manifest``.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from dcsched.data import regions
from dcsched.errors import DataError

MANIFEST_NAME = "MANIFEST.sha256"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(raw_dir: Path) -> dict[str, str]:
    path = raw_dir / MANIFEST_NAME
    if not path.exists():
        raise DataError(f"{path}: missing (the list of the shipped data files and their SHA-256)")
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name] = digest
    return entries


@lru_cache(maxsize=None)
def _verified(path: Path, size: int, mtime_ns: int) -> None:
    raw_dir = Path(regions.RAW_DIR).resolve()
    name = path.relative_to(raw_dir).as_posix()
    want = _manifest(raw_dir).get(name)
    if want is None:
        raise DataError(f"{path}: not a shipped data file (not listed in {raw_dir / MANIFEST_NAME})")
    got = sha256(path)
    if got != want:
        raise DataError(f"{path}: differs from the shipped file (SHA-256 {got[:12]}..., shipped {want[:12]}...): "
                        "it was truncated or edited; reinstall dcsched to restore it (or, to replace it on "
                        "purpose, run python -m dcsched.data.checked --write-manifest)")


def verify_shipped(path: Path) -> Path:
    """Refuse a file under the shipped data folder that is missing or differs from the manifest."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        path.resolve().relative_to(Path(regions.RAW_DIR).resolve())
    except ValueError:
        return path  # not a shipped file: parsed and validated only
    stat = path.stat()
    _verified(path.resolve(), stat.st_size, stat.st_mtime_ns)
    return path


def read_csv(path: Path, columns: tuple[str, ...], numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    """The ``columns`` of a CSV file; ``numeric`` ones as float64. Raises DataError naming the file,
    the column and the first bad row (its line number in the file, header = line 1)."""
    path = verify_shipped(path)
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path}: not a readable CSV file ({type(err).__name__}: {err})") from err
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    if df.empty:
        raise DataError(f"{path}: no data rows (header only)")
    for col in numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column '{col}': line {row + 2}: '{df[col].iloc[row]}' is not a number")
        df[col] = values.astype(np.float64)
    return df[list(columns)]


def read_json(path: Path, keys: tuple[str, ...]) -> dict:
    """A JSON object with at least ``keys`` (dotted paths, e.g. ``hourly.time``)."""
    path = verify_shipped(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    for key in keys:
        node = data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise DataError(f"{path}: missing key '{key}'")
            node = node[part]
    return data


def write_manifest(raw_dir: Path | None = None) -> Path:
    raw_dir = Path(raw_dir or regions.RAW_DIR)
    files = sorted(p for p in raw_dir.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    text = "".join(f"{sha256(p)}  {p.relative_to(raw_dir).as_posix()}\n" for p in files)
    from dcsched.io import atomic_write_text

    atomic_write_text(raw_dir / MANIFEST_NAME, text)
    return raw_dir / MANIFEST_NAME


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write-manifest"]:
        raise SystemExit("usage: python -m dcsched.data.checked --write-manifest")
    print(f"wrote {write_manifest()}")
