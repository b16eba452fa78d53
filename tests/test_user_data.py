"""Bring your own data: per-DC files in the documented schema, another year, one error per rule."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dcsched.cli import main as cli_main
from dcsched.config import load_scenario
from dcsched.data.exogenous import load_exogenous, split_days
from dcsched.data.regions import REGIONS
from dcsched.data.traces import UTC_INDEX_2023, load_carbon_g_per_kwh, load_price_usd_per_mwh, load_weather
from dcsched.data.user_files import hours_of_year, read_series
from dcsched.errors import ConfigError, DataError

EXAMPLE_PRICES = str(Path(__file__).resolve().parents[1] / "examples" / "byo_data" / "caiso_prices_2023_carbon_50usd.csv")


def _write(path, hours, **columns):
    frame = pd.DataFrame({"Datetime (UTC)": hours.strftime("%Y-%m-%d %H:%M:%S+00:00"), **columns})
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_the_shipped_price_and_carbon_files_pass_the_user_file_reader(region):
    r = REGIONS[region]
    np.testing.assert_array_equal(read_series(r.price_path, "prices", 2023)["price_usd_per_mwh"],
                                  load_price_usd_per_mwh(region))
    np.testing.assert_array_equal(read_series(r.carbon_path, "carbon", 2023)["carbon_g_per_kwh"],
                                  load_carbon_g_per_kwh(region))


def test_files_with_the_shipped_values_give_the_shipped_exogenous_inputs(tmp_path):
    """Prices, carbon and weather pointed at files holding the shipped series (weather rewritten
    in the CSV schema) reproduce every exogenous tensor exactly, PV and wind included."""
    base = load_scenario("paper3")
    region = base.dcs[2].region
    w = load_weather(region)
    weather = _write(tmp_path / "w.csv", UTC_INDEX_2023, temp_c=w["temp_c"], cloud_pct=w["cloud_pct"],
                     wind_10m_ms=w["wind_10m_ms"])
    user = load_scenario("paper3", [f"dcs.0.data.prices={REGIONS[base.dcs[0].region].price_path}",
                                    f"dcs.1.data.carbon={REGIONS[base.dcs[1].region].carbon_path}",
                                    f"dcs.2.data.weather={weather}"])
    days = split_days(base, "test")[:2] + [180]
    a, b = load_exogenous(base, days), load_exogenous(user, days)
    for key, value in a.__dict__.items():
        if value is None:  # no fault tensors without a fault stress
            assert getattr(b, key) is None, key
            continue
        assert torch.equal(value, getattr(b, key)), key


def test_hourly_values_are_held_over_the_slots_of_their_hour_and_change_the_run():
    """The resampling rule (hourly -> 5-minute slots: each slot takes its UTC hour's value), on the
    shipped example file."""
    cfg = load_scenario("paper3", [f"dcs.1.data.prices={EXAMPLE_PRICES}"])
    hourly = read_series(EXAMPLE_PRICES, "prices", 2023)["price_usd_per_mwh"]
    day = 40
    exo = load_exogenous(cfg, [day])
    slot_hour = np.arange(cfg.slots_per_day) * int(cfg.slot_s) // 3600
    np.testing.assert_allclose(exo.price_usd_per_mwh[0, :, 1].numpy(), hourly[day * 24 + slot_hour] * cfg.energy.price_scale)
    shipped = load_exogenous(load_scenario("paper3"), [day])
    assert (exo.price_usd_per_mwh[0, :, 1] > shipped.price_usd_per_mwh[0, :, 1]).all()  # a carbon price adds cost
    assert torch.equal(exo.price_usd_per_mwh[..., 0], shipped.price_usd_per_mwh[..., 0])  # other DCs untouched


def test_a_workload_file_replaces_the_arrival_shape(tmp_path):
    """relative_load (scaled to mean 1 over the year) times total_per_slot x weight x class mix."""
    hours = hours_of_year(2023)
    load = 1.0 + (hours.hour.to_numpy() >= 12)  # 1 before noon UTC, 2 after
    path = _write(tmp_path / "load.csv", hours, relative_load=load)
    cfg = load_scenario("paper3", [f"dcs.0.data.workload={path}"])
    exo = load_exogenous(cfg, [10])
    rate = exo.arrival_rate[0, :, 0, :]  # [T, K]
    expected = cfg.arrivals.total_per_slot * cfg.dcs[0].arrival_weight * torch.tensor(cfg.classes.mix, dtype=rate.dtype)
    torch.testing.assert_close(rate[0], expected * (1 / 1.5))
    torch.testing.assert_close(rate[-1], expected * (2 / 1.5))


def test_a_workload_too_large_to_average_is_refused_with_its_row(tmp_path):
    """Values near 1e308 overflowed the year's mean and gave that DC no arrivals, silently."""
    hours = hours_of_year(2023)
    load = np.ones(len(hours))
    load[5] = 1e308
    path = _write(tmp_path / "load.csv", hours, relative_load=load)
    with pytest.raises(DataError, match=r"load.csv.*line 7.*relative_load.*outside the plausible range"):
        read_series(path, "workload", 2023)


def _year_files(tmp_path, year, region):
    """prices, carbon and weather files for ``year`` made from the region's 2023 series (the last
    day repeated for a leap year's extra day)."""
    hours = hours_of_year(year)
    H = len(hours)

    def fit(x):
        return np.concatenate([x, x[-24:]])[:H] if H > len(x) else x[:H]

    w = load_weather(region)
    return {
        "prices": _write(tmp_path / f"{region}_p.csv", hours, price_usd_per_mwh=fit(load_price_usd_per_mwh(region))),
        "carbon": _write(tmp_path / f"{region}_c.csv", hours, carbon_g_per_kwh=fit(load_carbon_g_per_kwh(region))),
        "weather": _write(tmp_path / f"{region}_w.csv", hours, temp_c=fit(w["temp_c"]), cloud_pct=fit(w["cloud_pct"]),
                          wind_10m_ms=fit(w["wind_10m_ms"])),
    }


def test_another_year_needs_every_series_and_follows_its_calendar(tmp_path):
    """2024 (a leap year: 366 days): test days are that year's day_of_year % 7 == 6; a data centre
    without its own files is refused with the key to set."""
    base = load_scenario("paper3")
    overrides = ["year=2024"]
    for n, dc in enumerate(base.dcs):
        for kind, path in _year_files(tmp_path, 2024, dc.region).items():
            overrides.append(f"dcs.{n}.data.{kind}={path}")
    cfg = load_scenario("paper3", overrides)
    test = split_days(cfg, "test")
    assert len(test) == 52 and test[-1] == 362 and len(split_days(cfg, "train")) == 366 - 52
    exo = load_exogenous(cfg, [365])  # 2024-12-31 exists
    assert exo.price_usd_per_mwh.shape == (1, 288, 3)
    with pytest.raises(ConfigError, match="dcs.2.data.prices"):
        load_scenario("paper3", overrides[: -3])
    with pytest.raises(ConfigError, match="daily_variation"):
        load_scenario("paper3", overrides + ["arrivals.daily_variation=sustaindc"])
    shipped_year = load_scenario("paper3", [f"dcs.0.data.prices={overrides[1].split('=', 1)[1]}"])
    with pytest.raises(DataError, match="scenario.year is 2023"):  # a 2024 file in a 2023 scenario
        load_exogenous(shipped_year, [0])


def _good(hours=None):
    hours = UTC_INDEX_2023 if hours is None else hours
    return pd.DataFrame({"Datetime (UTC)": hours.strftime("%Y-%m-%d %H:%M"),
                         "price_usd_per_mwh": np.linspace(-20.0, 300.0, len(hours))})


def _drop(df, row):
    return df.drop(index=row).reset_index(drop=True)


MALFORMED = {
    "missing column": (lambda d: d.rename(columns={"price_usd_per_mwh": "price"}), None, "missing column 'price_usd_per_mwh'"),
    "extra column": (lambda d: d.assign(note="x"), 1, "unexpected column(s) ['note']"),
    "text value": (lambda d: d.assign(price_usd_per_mwh=d.price_usd_per_mwh.astype(object).where(d.index != 5, "n/a")),
                   7, "'n/a' in 'price_usd_per_mwh' is not a number"),
    "empty value": (lambda d: d.assign(price_usd_per_mwh=d.price_usd_per_mwh.where(d.index != 9)), 11,
                    "every value must be a finite number"),
    "infinite value": (lambda d: d.assign(price_usd_per_mwh=d.price_usd_per_mwh.where(d.index != 3, np.inf)), 5,
                       "every value must be a finite number"),
    "gap": (lambda d: _drop(d, 100), 102, "gap: 2023-01-05 05:00:00+00:00 follows 2023-01-05 03:00:00+00:00"),
    "duplicate": (lambda d: pd.concat([d.iloc[:50], d.iloc[49:]]).reset_index(drop=True), 52, "duplicate timestamp"),
    "out of order": (lambda d: pd.concat([d.iloc[:20], d.iloc[[21, 20]], d.iloc[22:]]).reset_index(drop=True), 23,
                     "earlier than the row before it"),
    "wrong year": (lambda d: _good(hours_of_year(2022)), None, "scenario.year is 2023"),
    "sub-hourly": (lambda d: pd.DataFrame({"Datetime (UTC)": pd.date_range("2023-01-01", periods=8760 * 4, freq="15min")
                                           .strftime("%Y-%m-%d %H:%M"), "price_usd_per_mwh": 50.0}), 3,
                   "resolution 0 days 00:15:00: the schema is hourly"),
    "dollars per kWh": (lambda d: d.assign(price_usd_per_mwh=d.price_usd_per_mwh / 1000), None, "looks like $/kWh"),
    "out of range": (lambda d: d.assign(price_usd_per_mwh=d.price_usd_per_mwh.where(d.index != 7, 25000.0)), 9,
                     "outside the plausible range"),
    "bad timestamp": (lambda d: d.assign(**{"Datetime (UTC)": d["Datetime (UTC)"].where(d.index != 2, "yesterday")}), 4,
                      "'yesterday' in 'Datetime (UTC)' is not a timestamp"),
    "header only": (lambda d: d.iloc[:0], None, "no data rows"),
}


def test_negative_prices_and_naive_utc_stamps_are_valid(tmp_path):
    path = tmp_path / "ok.csv"
    _good().to_csv(path, index=False)
    prices = read_series(path, "prices", 2023)["price_usd_per_mwh"]
    assert prices.min() == -20.0 and len(prices) == 8760


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_are_refused_one_rule_each(tmp_path, case):
    """Each broken file gives one DataError naming the file, the line (header = line 1) and the rule."""
    make, line, rule = MALFORMED[case]
    path = tmp_path / f"{case.replace(' ', '_')}.csv"
    make(_good()).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        read_series(path, "prices", 2023)
    text = str(err.value)
    assert str(path) in text and rule in text and "docs/data-format.md" in text
    if line is not None:
        assert f"line {line}:" in text


@pytest.mark.parametrize("rows", ["every", "one"])
def test_an_unquoted_decimal_comma_is_named_not_blamed_on_the_timestamps(tmp_path, rows):
    """`12,5` unquoted is two fields: in every row pandas took the timestamps for an index (the error
    blamed the timestamp column); in one row it stopped tokenising. Both now name the decimal comma."""
    lines = _good().to_csv(index=False).splitlines()
    body = [line.rsplit(",", 1)[0] + ",12,5" if rows == "every" or n == 5 else line for n, line in enumerate(lines[1:])]
    path = tmp_path / "comma.csv"
    path.write_text("\n".join([lines[0], *body]) + "\n")
    with pytest.raises(DataError, match=r"decimal comma \(12,5\)") as err:
        read_series(path, "prices", 2023)
    assert str(path) in str(err.value) and "is not a timestamp" not in str(err.value)
    assert ("line 2:" in str(err.value)) if rows == "every" else ("line 7" in str(err.value))


@pytest.mark.parametrize("kind, columns, rule", [
    ("carbon", {"carbon_g_per_kwh": 0.3}, "looks like kg/kWh"),
    ("weather", {"temp_c": 70.0, "cloud_pct": 50.0, "wind_10m_ms": 3.0}, "looks like °F or K"),
    ("weather", {"temp_c": 10.0, "cloud_pct": 0.5, "wind_10m_ms": 3.0}, "looks like a fraction"),
    ("workload", {"relative_load": 0.0}, "zero everywhere"),
    ("workload", {"relative_load": -1.0}, "outside the plausible range"),
])
def test_implausible_units_of_each_kind_are_refused(tmp_path, kind, columns, rule):
    path = _write(tmp_path / f"{kind}.csv", UTC_INDEX_2023, **columns)
    with pytest.raises(DataError, match=rule):
        read_series(path, kind, 2023)


def test_the_command_line_takes_a_data_file_and_exits_2_on_a_bad_one(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    _good().assign(price_usd_per_mwh=lambda d: d.price_usd_per_mwh / 1000).to_csv(bad, index=False)
    code = cli_main(["evaluate", "--policy", "local_only", "--days", "2023-01-06", "--no-plots",
                     "--out", str(tmp_path / "eval"), f"scenario.dcs.1.data.prices={bad}"])
    assert code == 2 and "looks like $/kWh" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists(), "a refused run must leave no folder behind"
    assert cli_main(["evaluate", "--policy", "local_only", "--days", "2023-01-06", "--no-plots",
                     "--out", str(tmp_path / "eval"), f"scenario.dcs.1.data.prices={EXAMPLE_PRICES}"]) == 0
    assert (tmp_path / "eval" / "summary.json").exists()


def test_the_bound_cache_follows_the_file_content(tmp_path):
    """A scenario without data files hashes as before the keys existed; editing a user file
    changes the hash, so a stale bounds.json is refused."""
    from dcsched.baselines.lp_bound import bound_scenario_hash
    from dcsched.config import to_container
    from omegaconf import OmegaConf

    base = load_scenario("paper3")
    older = to_container(base)
    for dc in older["dcs"]:
        del dc["data"]
    assert bound_scenario_hash(base) == bound_scenario_hash(OmegaConf.create(older))
    path = tmp_path / "p.csv"
    _good().to_csv(path, index=False)
    cfg = load_scenario("paper3", [f"dcs.0.data.prices={path}"])
    first = bound_scenario_hash(cfg)
    assert first != bound_scenario_hash(base)
    _good().assign(price_usd_per_mwh=lambda d: d.price_usd_per_mwh + 1).to_csv(path, index=False)
    assert bound_scenario_hash(cfg) != first
