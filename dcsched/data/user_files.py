"""Bring your own data: per-DC price, carbon, weather and workload files (docs/data-format.md).

A scenario's data centre may point any of its series at a CSV file (``dcs.N.data.prices``, ``.carbon``,
``.weather``, ``.workload``) in the documented schema: a ``Datetime (UTC)`` column and the kind's
value columns, one row per hour of the scenario's ``year`` (8760 or 8784 rows, UTC, no gaps, no
duplicates). Every rule has one error naming the file, the line (header = line 1) and the rule;
the shipped price and carbon files pass the same reader (a test). Hourly values are held constant
over the slots of their hour (the one resampling rule: hourly -> ``slot_s``, tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from dcsched.data.checked import sha256
from dcsched.errors import ConfigError, DataError

TIME_COLUMN = "Datetime (UTC)"
DATA_KINDS = ("prices", "carbon", "weather", "workload")


@dataclass(frozen=True)
class ValueColumn:
    """One quantity of a kind: its accepted column names (the first is the documented one), its
    plausible range and an optional unit check (a test on the whole column returning a message)."""

    names: tuple[str, ...]
    lo: float
    hi: float
    unit: str
    optional: bool = False  # a file may leave the column out

    @property
    def name(self) -> str:
        return self.names[0]


def _prices_unit(v: np.ndarray) -> str | None:
    if np.abs(v).max() < 5.0:
        return "every |value| is below 5: this looks like $/kWh; the schema is $/MWh (multiply by 1000)"
    return None


def _carbon_unit(v: np.ndarray) -> str | None:
    if v.max() <= 2.0:
        return "every value is at most 2: this looks like kg/kWh (t/MWh); the schema is g/kWh (multiply by 1000)"
    return None


def _temp_unit(v: np.ndarray) -> str | None:
    if v.max() > 60.0:
        return f"values up to {v.max():.4g}: this looks like °F or K; the schema is °C"
    return None


def _cloud_unit(v: np.ndarray) -> str | None:
    if 0.0 < v.max() <= 1.0:
        return "every value is at most 1: this looks like a fraction; the schema is percent (0-100)"
    return None


UNIT_CHECKS = {"USD/MWh": _prices_unit, "g/kWh": _carbon_unit, "°C": _temp_unit, "%": _cloud_unit}

SCHEMAS: dict[str, tuple[ValueColumn, ...]] = {
    "prices": (ValueColumn(("price_usd_per_mwh", "Price (USD/MWh)"), -1000.0, 20000.0, "USD/MWh"),),
    "carbon": (ValueColumn(("carbon_g_per_kwh", "Carbon Intensity gCO₂eq/kWh (direct)"), 0.0, 1500.0, "g/kWh"),),
    "weather": (ValueColumn(("temp_c",), -60.0, 60.0, "°C"), ValueColumn(("cloud_pct",), 0.0, 100.0, "%"),
                ValueColumn(("wind_10m_ms",), 0.0, 80.0, "m/s")),
    # relative: the file is scaled to mean 1. The cap keeps a year's sum finite (values near 1e308 made the mean
    # overflow and silently gave that DC no arrivals).
    "workload": (ValueColumn(("relative_load",), 0.0, 1e12, "relative"),
                 # the hour's share of batch work (scenario.batch, MODEL.md section 11); absent: scenario.batch.share
                 ValueColumn(("batch_share",), 0.0, 1.0, "share", optional=True)),
}
# columns of the shipped exports that are allowed and ignored
IGNORED_COLUMNS: dict[str, tuple[str, ...]] = {
    "prices": ("Datetime (Local)", "filled"),
    "carbon": ("Country", "Zone Name", "Zone Id", "Carbon Intensity gCO₂eq/kWh (LCA)", "Low Carbon Percentage",
               "Renewable Percentage", "Data Source", "Data Estimated", "Data Estimation Method"),
    "weather": (),
    "workload": (),
}


def hours_of_year(year: int) -> pd.DatetimeIndex:
    """Every UTC hour of ``year`` (8760, or 8784 in a leap year)."""
    start = pd.Timestamp(f"{year}-01-01 00:00", tz="UTC")
    return pd.date_range(start, pd.Timestamp(f"{year + 1}-01-01 00:00", tz="UTC"), freq="h", inclusive="left")


def days_of_year(year: int) -> int:
    return len(hours_of_year(year)) // 24


DECIMAL_COMMA_HINT = "a decimal comma (12,5) splits a value in two: the decimal mark is a point (12.5)"


def _fail(path: Path, line: int | None, rule: str) -> DataError:
    where = f"{path}: line {line}" if line is not None else f"{path}"
    return DataError(f"{where}: {rule} (schema: docs/data-format.md)")


def _columns(df: pd.DataFrame, kind: str, path: Path) -> dict[str, str]:
    """Map each value column of the kind to the file's column; refuse missing and unknown ones."""
    found: dict[str, str] = {}
    for col in SCHEMAS[kind]:
        hits = [n for n in col.names if n in df.columns]
        if not hits and col.optional:
            continue
        if not hits:
            raise _fail(path, 1, f"missing column '{col.name}' ({col.unit}); a {kind} file has "
                                  f"'{TIME_COLUMN}', {', '.join(repr(c.name) for c in SCHEMAS[kind])}")
        found[col.name] = hits[0]
    if TIME_COLUMN not in df.columns:
        raise _fail(path, 1, f"missing column '{TIME_COLUMN}' (hourly timestamps, UTC)")
    allowed = {TIME_COLUMN, *found.values(), *IGNORED_COLUMNS[kind]}
    extra = [c for c in df.columns if c not in allowed]
    if extra:
        raise _fail(path, 1, f"unexpected column(s) {extra}; a {kind} file has '{TIME_COLUMN}', "
                             f"{', '.join(repr(c.name) for c in SCHEMAS[kind])}")
    return found


def _timestamps(df: pd.DataFrame, path: Path, year: int) -> pd.DatetimeIndex:
    raw = df[TIME_COLUMN]
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _fail(path, row + 2, f"'{raw.iloc[row]}' in '{TIME_COLUMN}' is not a timestamp")
    index = pd.DatetimeIndex(parsed)
    step = np.asarray(index[1:] - index[:-1])  # timedelta64[ns], [rows - 1]
    hour = np.timedelta64(1, "h")
    dup = np.flatnonzero(step == np.timedelta64(0))
    if len(dup):
        raise _fail(path, int(dup[0]) + 3, f"duplicate timestamp {index[dup[0] + 1]}")
    back = np.flatnonzero(step < np.timedelta64(0))
    if len(back):
        raise _fail(path, int(back[0]) + 3, f"timestamp {index[back[0] + 1]} is earlier than the row before it "
                                            "(rows must be in time order)")
    sub = np.flatnonzero(step < hour)
    if len(sub):
        raise _fail(path, int(sub[0]) + 3, f"resolution {pd.Timedelta(step[sub[0]])}: the schema is hourly "
                                           "(average sub-hourly data within each hour first)")
    expected = hours_of_year(year)
    if index[0] != expected[0] or index[-1] != expected[-1]:
        raise _fail(path, None, f"covers {index[0]} to {index[-1]}; scenario.year is {year}: expected "
                                f"{len(expected)} hourly rows from {expected[0]} to {expected[-1]}")
    gap = np.flatnonzero(step > hour)
    if len(gap):
        raise _fail(path, int(gap[0]) + 3, f"gap: {index[gap[0] + 1]} follows {index[gap[0]]} (one row per hour)")
    return index


def _values(df: pd.DataFrame, column: str, spec: ValueColumn, path: Path) -> np.ndarray:
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce")
    text = (values.isna() & raw.notna()).to_numpy()
    if text.any():
        row = int(np.flatnonzero(text)[0])
        raise _fail(path, row + 2, f"'{raw.iloc[row]}' in '{column}' is not a number")
    v = values.to_numpy(dtype=np.float64)
    missing = ~np.isfinite(v)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise _fail(path, row + 2, f"'{column}' is {raw.iloc[row]!r}: every value must be a finite number")
    check = UNIT_CHECKS.get(spec.unit)
    message = check(v) if check else None
    if message:
        raise _fail(path, None, f"column '{column}': {message}")
    out = np.flatnonzero((v < spec.lo) | (v > spec.hi))
    if len(out):
        row = int(out[0])
        raise _fail(path, row + 2, f"'{column}' = {v[row]:.6g} {spec.unit} is outside the plausible range "
                                   f"[{spec.lo:g}, {spec.hi:g}]")
    return v


def read_series(path: str | Path, kind: str, year: int) -> dict[str, np.ndarray]:
    """The value columns of a user file as hourly UTC arrays of ``year`` ([8760] or [8784] each),
    keyed by the schema's column names. Raises DataError (file, line, rule) on any problem."""
    if kind not in SCHEMAS:
        raise ValueError(f"unknown data kind '{kind}' (one of {DATA_KINDS})")
    path = Path(path)
    stat = path.stat() if path.is_file() else None
    if stat is None:
        raise DataError(f"{path}: file not found (a {kind} file; relative paths are from the current directory)")
    return _read_series_cached(path.resolve(), kind, int(year), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _read_series_cached(path: Path, kind: str, year: int, size: int, mtime_ns: int) -> dict[str, np.ndarray]:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        hint = f"; {DECIMAL_COMMA_HINT}" if "fields in line" in str(err) else ""
        raise _fail(path, None, f"not a readable CSV file ({type(err).__name__}: {str(err).strip()}){hint}") from err
    if not isinstance(df.index, pd.RangeIndex):  # every row had more fields than the header: pandas made an index
        header = len(df.columns)
        raise _fail(path, 2, f"{header + df.index.nlevels} fields under a header of {header}; {DECIMAL_COMMA_HINT}")
    columns = _columns(df, kind, path)
    if df.empty:
        raise _fail(path, None, "no data rows (header only)")
    _timestamps(df, path, year)
    out = {spec.name: _values(df, columns[spec.name], spec, path) for spec in SCHEMAS[kind] if spec.name in columns}
    if kind == "workload" and out["relative_load"].mean() <= 0:
        raise _fail(path, None, "'relative_load' is zero everywhere: no arrivals")
    for v in out.values():
        v.setflags(write=False)
    return out


def check_data_keys(cfg, source: str) -> None:
    """Scenario-level checks of the ``dcs.N.data`` keys and ``year`` (raises ConfigError)."""
    shipped_year = 2023
    for n, dc in enumerate(cfg.dcs):
        data = dc.get("data") or {}
        for key, value in data.items():
            if key not in DATA_KINDS:
                raise ConfigError(source, f"scenario.dcs.{n}.data.{key}", "unknown data kind", ", ".join(DATA_KINDS))
            if value and not Path(value).is_file():
                what = "is a folder, not a file" if Path(value).is_dir() else "not found"
                raise ConfigError(source, f"scenario.dcs.{n}.data.{key}",
                                  f"file '{value}' {what} (relative paths are from the current directory)")
        if cfg.year != shipped_year:
            missing = [k for k in ("prices", "carbon", "weather") if not data.get(k)]
            if missing:
                raise ConfigError(source, f"scenario.dcs.{n}.data.{missing[0]}",
                                  f"scenario.year is {cfg.year} but traces ship for {shipped_year} only: give this "
                                  f"data centre's {', '.join(missing)} file(s) for {cfg.year}")
    if cfg.year != shipped_year and cfg.arrivals.daily_variation != "none":
        if not all((dc.get("data") or {}).get("workload") for dc in cfg.dcs):
            raise ConfigError(source, "scenario.arrivals.daily_variation",
                              f"the shipped day-to-day load level is {shipped_year}'s; for {cfg.year} use 'none' "
                              "or give every data centre a data.workload file", "none")


def data_identity(scenario: dict) -> dict:
    """A scenario container for hashing: empty ``data`` keys and an empty ``stress`` list dropped
    (older hashes stay valid) and each user file replaced by its path and content SHA-256 (an
    edited file is a new scenario)."""
    if not scenario.get("stress", True):
        scenario.pop("stress")
    if not (scenario.get("energy") or {}).get("carbon_price_usd_per_t", 1.0):  # 0: as before the key existed
        scenario["energy"].pop("carbon_price_usd_per_t")
    for dc in scenario.get("dcs", []) or []:
        data = dc.pop("data", None) or {}
        used = {k: {"path": v, "sha256": sha256(Path(v)) if Path(v).is_file() else "missing"}
                for k, v in sorted(data.items()) if v}
        if used:
            dc["data"] = used
    return scenario
