"""evaluate_policies is play_policies -> summarise -> write_evaluation, with one bounds mapping
{kind: {date: $/day}}: each kind adds its bound and share per day, and a share of the mean where
every day has that bound."""

import pytest

from dcsched.config import load_scenario
from dcsched.eval.evaluate import BOUND_KINDS, check_bounds, evaluate_policies


def test_a_bounds_mapping_keyed_by_date_or_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kinds lp, dispatch, integer"):
        check_bounds({"2023-01-02": 100.0})
    with pytest.raises(ValueError, match="'milp'"):
        check_bounds({"lp": {"2023-01-02": 100.0}, "milp": {}})
    assert check_bounds(None) == {} and check_bounds({"lp": {}, "integer": {"d": 1.0}}) == {"integer": {"d": 1.0}}


def test_each_kind_of_bound_adds_its_bound_and_share(tmp_path):
    cfg = load_scenario("paper3")
    plain = evaluate_policies(cfg, ["local_only"], "test", None, max_days=2, plots=False)["local_only"]
    d0, d1 = plain["days"]
    u0, u1 = (row["utility_usd"] for row in plain["per_day"])
    bounds = {"lp": {d0: 2 * u0, d1: 4 * u1}, "integer": {d0: 2 * u0, d1: 2 * u1}}
    out = evaluate_policies(cfg, ["local_only"], "test", tmp_path / "ev", max_days=2, plots=False,
                            bounds=bounds)["local_only"]
    first, second = out["per_day"]
    assert first["share_of_bound"] == pytest.approx(0.5) and second["share_of_bound"] == pytest.approx(0.25)
    assert first["share_of_integer_bound"] == second["share_of_integer_bound"] == pytest.approx(0.5)
    assert out["mean"]["share_of_bound"] == pytest.approx((u0 + u1) / (2 * u0 + 4 * u1))
    assert out["mean"]["share_of_integer_bound"] == pytest.approx(0.5)
    assert out["mean"]["utility_usd"] == pytest.approx(plain["mean"]["utility_usd"])  # the bounds change no outcome
    with pytest.raises(ValueError, match=f"the integer bound has no value for {d1}"):
        evaluate_policies(cfg, ["local_only"], "test", None, max_days=2, plots=False,
                          bounds={"lp": bounds["lp"], "integer": {d0: 1.0}})
    written = (tmp_path / "ev" / "comparison.md").read_text()
    assert "% of LP bound" in written and "% of integer-level bound" in written
    assert set(BOUND_KINDS) == {"lp", "dispatch", "integer"}
