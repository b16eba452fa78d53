"""Malformed data files: one clear DataError naming the file, column and row (exit 2 from the CLI),
never a traceback, a silent NaN or a silently changed result."""

import json
import shutil
from pathlib import Path

import pytest

from dcsched.data import checked, regions, traces
from dcsched.errors import DataError

RAW = regions.RAW_DIR
PRICE = RAW / "prices" / regions.REGIONS["US-MIDA-PJM"].price_file
WEATHER = RAW / "weather" / "US-MIDA-PJM_2023.json"
TRACE = RAW / "workload" / "lora_request_trace.csv"


def test_every_shipped_file_is_in_the_manifest_and_matches_it():
    listed = checked._manifest(RAW)
    files = {p.relative_to(RAW).as_posix() for p in RAW.rglob("*") if p.is_file() and p.name != checked.MANIFEST_NAME}
    assert set(listed) == files
    for name in files:
        checked.verify_shipped(RAW / name)


@pytest.fixture
def raw_copy(tmp_path, monkeypatch):
    """A private data folder: every shipped file linked, ``break_file`` replaces one with a copy to edit."""
    root = tmp_path / "raw"
    for p in RAW.rglob("*"):
        if p.is_file():
            (root / p.relative_to(RAW)).parent.mkdir(parents=True, exist_ok=True)
            (root / p.relative_to(RAW)).symlink_to(p)
    monkeypatch.setattr(regions, "RAW_DIR", root)
    monkeypatch.setattr(traces, "RAW_DIR", root)
    for loader in (traces.load_price_usd_per_mwh, traces.load_weather, traces.load_alibaba_hour_counts,
                   checked._verified):
        loader.cache_clear()

    def break_file(shipped: Path, edit, on_purpose: bool) -> Path:
        target = root / shipped.relative_to(RAW)
        target.unlink()
        target.write_text(edit(shipped.read_text()))
        if on_purpose:  # the user replaced it and regenerated the manifest: parsed, then validated
            checked.write_manifest(root)
        return target

    yield break_file
    for loader in (traces.load_price_usd_per_mwh, traces.load_weather, traces.load_alibaba_hour_counts,
                   checked._verified):
        loader.cache_clear()


def drop_column(text: str, index: int) -> str:
    return "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != index) for line in text.splitlines())


def price_column(text: str) -> int:
    return text.splitlines()[0].split(",").index("Price (USD/MWh)")


def put_text_in_row(text: str, row: int) -> str:
    lines = text.splitlines()
    col = price_column(text)
    cells = lines[row].split(",")
    cells[col] = "n/a-ish"
    lines[row] = ",".join(cells)
    return "\n".join(lines)


CASES = {
    "price column deleted": (PRICE, lambda t: drop_column(t, price_column(t)), traces.load_price_usd_per_mwh,
                             "missing column(s) ['Price (USD/MWh)']"),
    "text in the price column": (PRICE, lambda t: put_text_in_row(t, 100), traces.load_price_usd_per_mwh,
                                 "line 101: 'n/a-ish' is not a number"),
    "truncated weather JSON": (WEATHER, lambda t: t[: len(t) // 2], traces.load_weather, "not valid JSON"),
    "header-only arrival trace": (TRACE, lambda t: t.splitlines()[0] + "\n", lambda _: traces.load_alibaba_hour_counts(),
                                  "no data rows"),
    "truncated arrival trace": (TRACE, lambda t: "\n".join(t.splitlines()[:5000]) + "\n",
                                lambda _: traces.load_alibaba_hour_counts(), None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_changed_shipped_file_is_refused_before_it_is_read(raw_copy, case):
    shipped, edit, load, _ = CASES[case]
    broken = raw_copy(shipped, edit, on_purpose=False)
    with pytest.raises(DataError, match="differs from the shipped file") as err:
        load("US-MIDA-PJM")
    assert str(broken) in str(err.value)


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c][3]))
def test_a_malformed_file_names_file_column_and_row(raw_copy, case):
    shipped, edit, load, message = CASES[case]
    broken = raw_copy(shipped, edit, on_purpose=True)
    with pytest.raises(DataError) as err:
        load("US-MIDA-PJM")
    assert str(broken) in str(err.value) and message in str(err.value)


def test_the_cli_exits_2_with_the_file_named(raw_copy, tmp_path, capsys):
    from dcsched.cli import main

    broken = raw_copy(PRICE, lambda t: t[: len(t) // 3], on_purpose=False)
    rc = main(["evaluate", "--policy", "local_only", "--scenario", "paper3", "--days", "2023-01-06",
               "--out", str(tmp_path / "out"), "--no-plots"])
    err = capsys.readouterr().err
    assert rc == 2 and str(broken) in err and "differs from the shipped file" in err
    assert not (tmp_path / "out").exists(), "nothing is written"


def test_weather_with_a_missing_series_is_named(tmp_path):
    data = json.loads(WEATHER.read_text())
    del data["hourly"]["cloudcover"]
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="missing key 'hourly.cloudcover'"):
        checked.read_json(path, ("hourly.time", "hourly.cloudcover"))
