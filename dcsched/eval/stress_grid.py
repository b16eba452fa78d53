"""``dcsched evaluate --stress A --stress B ...``: the same policies under each stress of a grid.

Each grid entry is ``none`` or a registered stress with its options (``price_spike:factor=10``),
applied on top of the scenario's own ``stress`` list. Per entry the evaluation writes its usual
folder (``stress-<label>/``); across entries ``stress_table.md``/``.csv`` (utility, % of that
stressed day's LP bound when bounds are solved, late+dropped, per policy x stress) and
``stress_heatmap.png``. Bounds: ``--with-bound`` solves each stressed day's own bound (a bounds
file of the unstressed days would be wrong for a stressed one, so ``--bounds`` is refused here).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from dcsched.io import atomic_write, atomic_write_text


def _label(entry: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", entry)


def evaluate_stress_grid(scenario_name: str, overrides: list[str], grid: list[str], policies: list[str],
                         days_spec: str, out_dir: Path, with_bound: bool = False, console=None, **kwargs) -> pd.DataFrame:
    """Evaluate ``policies`` once per grid entry; return the long table (one row per policy x entry)."""
    from dcsched.baselines.lp_bound import bounds_by_date
    from dcsched.config import load_scenario
    from dcsched.eval.evaluate import evaluate_policies
    from dcsched.eval.plots import heatmap

    base = load_scenario(scenario_name, overrides)
    own = [str(s) for s in (base.get("stress") or [])]
    rows = []
    for entry in grid:
        stresses = own if entry == "none" else own + [entry]
        quoted = ",".join(f'"{s}"' for s in stresses)  # keeps a stress's own commas inside it
        cfg = load_scenario(scenario_name, [*overrides, f"stress=[{quoted}]"])
        bounds = {"lp": bounds_by_date(cfg, days_spec, kwargs.get("max_days", 0))} if with_bound else None
        results = evaluate_policies(cfg, policies, days_spec, Path(out_dir) / f"stress-{_label(entry)}",
                                    bounds=bounds, plots=False, **kwargs)
        for label, summary in results.items():
            mean = summary["mean"]
            rows.append({"scenario": cfg.name, "setting": entry, "method": label, "kind": "policy",
                         "utility_usd": mean["utility_usd"], "share_of_bound": mean.get("share_of_bound", float("nan")),
                         "violation_rate": mean["violation_rate"], "carbon_kg": mean["carbon_kg"]})
    table = pd.DataFrame(rows)
    atomic_write(Path(out_dir) / "stress_table.csv", lambda p: table.to_csv(p, index=False, float_format="%.6g"))
    atomic_write_text(Path(out_dir) / "stress_table.md", stress_markdown(table))
    if table["share_of_bound"].notna().all():
        heatmap(table, "share_of_bound", Path(out_dir) / "stress_heatmap.png",
                        f"{base.name}: % of each stressed day's LP bound")
    if console is not None:
        console.print(stress_markdown(table))
    return table


def stress_markdown(table: pd.DataFrame) -> str:
    """Policy (rows) x stress (columns): % of the stressed bound (or utility) and late+dropped."""
    has_bound = table["share_of_bound"].notna().all()
    settings = list(dict.fromkeys(table["setting"]))
    what = "% of the stressed day's LP bound" if has_bound else "utility $/day"
    out = [f"{what} (late+dropped share)\n", "| policy | " + " | ".join(settings) + " |",
           "|---|" + "---:|" * len(settings)]
    for method in dict.fromkeys(table["method"]):
        cells = []
        for setting in settings:
            row = table[(table["method"] == method) & (table["setting"] == setting)].iloc[0]
            value = f"{100 * row['share_of_bound']:.1f} %" if has_bound else f"{row['utility_usd']:,.2f}"
            cells.append(f"{value} ({100 * row['violation_rate']:.2f} %)")
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
