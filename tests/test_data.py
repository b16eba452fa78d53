"""Every shipped series: no NaN, monotone hourly UTC index, plausible range, expected diurnal phase."""

import numpy as np
import pandas as pd
import pytest

from dcsched.data import traces
from dcsched.data.arrivals import hour_of_day_shape
from dcsched.data.exogenous import load_exogenous, parse_days, split_days
from dcsched.data.regions import REGIONS
from dcsched.data.renewables import pv_kw_per_kwp, wind_kw_per_kw, wind_power_curve
from dcsched.errors import ConfigError, DataError

ALL = sorted(REGIONS)


def by_local_hour(values, region_id):
    local = traces.UTC_INDEX_2023.tz_convert(REGIONS[region_id].timezone)
    return pd.Series(values).groupby(local.hour).mean().to_numpy()


@pytest.mark.parametrize("region_id", ALL)
def test_series_load_and_validate(region_id):
    price = traces.load_price_usd_per_mwh(region_id)
    carbon = traces.load_carbon_g_per_kwh(region_id)
    w = traces.load_weather(region_id)
    assert price.shape == carbon.shape == w["temp_c"].shape == (8760,)
    assert 5 < price.mean() < 400, "mean wholesale price should be tens of $/MWh"
    assert 50 < carbon.mean() < 900
    assert w["filled_hours"] <= 14, "only the UTC/local year-edge hours may be filled"
    # temperature peaks in the afternoon, local time
    assert 11 <= int(np.argmax(by_local_hour(w["temp_c"], region_id))) <= 18


@pytest.mark.parametrize("region_id", ALL)
def test_pv_peaks_at_local_noon_and_is_zero_at_night(region_id):
    pv = pv_kw_per_kwp(region_id)
    assert pv.min() >= 0 and pv.max() <= 1 and 0.05 < pv.mean() < 0.35
    prof = by_local_hour(pv, region_id)
    assert 10 <= int(np.argmax(prof)) <= 14
    assert prof[0] == pytest.approx(0.0, abs=1e-9) and prof[2] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("region_id", ALL)
def test_wind_output_is_a_fraction(region_id):
    wind = wind_kw_per_kw(region_id)
    assert wind.min() >= 0 and wind.max() <= 1 and 0.0 < wind.mean() < 0.8


def test_wind_curve_edges():
    out = wind_power_curve(np.array([0.0, 2.99, 3.0, 12.0, 20.0, 25.0, 30.0]))
    assert out.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]


def test_caiso_cheapest_hour_is_near_local_midday():
    prof = by_local_hour(traces.load_price_usd_per_mwh("US-CAL-CISO"), "US-CAL-CISO")
    assert 9 <= int(np.argmin(prof)) <= 15
    assert 16 <= int(np.argmax(prof)) <= 21


def test_pjm_cheapest_at_night():
    prof = by_local_hour(traces.load_price_usd_per_mwh("US-MIDA-PJM"), "US-MIDA-PJM")
    assert int(np.argmin(prof)) in (0, 1, 2, 3, 4, 5)


def test_arrival_shape_quiet_hours_and_peak():
    h = hour_of_day_shape("alibaba_gentd26", 3, 0.1, -8.0)
    assert h.mean() == pytest.approx(1.0) and h.min() >= 0.1 / 1.5
    assert 2.5 < h.max() < 3.5, "peak about 3x the mean (MODEL.md section 3)"
    assert h[1:8].mean() < 0.5, "quiet hours 01:00-07:00 local"


def test_gap_nan_and_range_are_reported(tmp_path):
    idx = traces.UTC_INDEX_2023
    vals = np.ones(8760)
    with pytest.raises(DataError, match="gap"):
        traces.validate_series(vals, idx.delete(100).append(pd.DatetimeIndex([idx[-1] + pd.Timedelta(hours=1)])), tmp_path, "x", 0, 2)
    bad = vals.copy()
    bad[5] = np.nan
    with pytest.raises(DataError, match="NaN"):
        traces.validate_series(bad, idx, tmp_path, "x", 0, 2)
    with pytest.raises(DataError, match="plausible"):
        traces.validate_series(vals * 5, idx, tmp_path, "x", 0, 2)


@pytest.mark.parametrize("year", [2023, 2024])
def test_the_splits_partition_the_year_and_val_is_disjoint_from_fit_and_test(paper3, year):
    """test, val and fit partition the year; train is fit plus val (the default training split
    keeps its days); every val day lies half a cycle after a test day."""
    from types import SimpleNamespace

    cfg = SimpleNamespace(name="x", year=year, test_day_modulus=paper3.test_day_modulus,
                          test_day_remainder=paper3.test_day_remainder)
    test, val, fit, train = (set(split_days(cfg, s)) for s in ("test", "val", "fit", "train"))
    n_days = 366 if year == 2024 else 365
    assert not test & val and not test & fit and not val & fit
    assert len(test) + len(val) + len(fit) == n_days and train == fit | val
    assert len(val) == 52 + (year == 2024) and len(test) == 52 and all((d + 1) % 7 == 2 for d in val)
    assert parse_days(cfg, "val") == sorted(val) and parse_days(cfg, "fit") == sorted(fit)


def test_a_modulus_without_room_for_validation_days_is_refused_by_key(paper3):
    from types import SimpleNamespace

    two = SimpleNamespace(name="two", year=2023, test_day_modulus=2, test_day_remainder=0)
    assert len(split_days(two, "train")) > 0
    for split in ("val", "fit"):
        with pytest.raises(ConfigError, match=r"key 'test_day_modulus': 2 leaves no training day.*allowed: >= 3"):
            split_days(two, split)
    with pytest.raises(ConfigError, match="allowed: test, train, fit, val, all"):
        parse_days(paper3, "validation")


def test_exogenous_tensor_shapes_and_split(paper3):
    test_days = split_days(paper3, "test")
    train_days = split_days(paper3, "train")
    assert not set(test_days) & set(train_days) and len(test_days) + len(train_days) == 365
    assert all((d + 1) % 7 == 6 for d in test_days)
    ex = load_exogenous(paper3, test_days[:3])
    assert ex.price_usd_per_mwh.shape == (3, 288, 3) and ex.arrival_rate.shape == (3, 288, 3, 2)
    # hourly series are constant within the hour
    assert (ex.price_usd_per_mwh[:, 0:12] == ex.price_usd_per_mwh[:, 0:1]).all()
    # expected arrivals average lambda-bar over a year
    full = load_exogenous(paper3, list(range(365)))
    assert full.arrival_rate.sum((-1, -2)).mean().item() == pytest.approx(3638.0, rel=1e-6)
