"""Write a "your own data" price file: CAISO 2023 wholesale prices with a carbon price passed through.

    python examples/byo_data/make_carbon_tax_prices.py [--usd-per-t 50] [--out FILE]

p'(h) = p(h) + carbon_usd_per_t * c(h) / 1000, with p the shipped CAISO price ($/MWh) and c the
shipped CAISO direct carbon intensity (g/kWh = kg/MWh; / 1000 gives t/MWh). Both are real 2023
series shipped with dcsched (dcsched/data/SOURCES.md); the output is in the documented schema
(docs/data-format.md): Datetime (UTC), price_usd_per_mwh, one row per hour of 2023.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from dcsched.data.traces import UTC_INDEX_2023, load_carbon_g_per_kwh, load_price_usd_per_mwh

REGION = "US-CAL-CISO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usd-per-t", type=float, default=50.0, help="carbon price, $ per tonne CO2")
    parser.add_argument("--out", default=str(Path(__file__).with_name("caiso_prices_2023_carbon_50usd.csv")))
    args = parser.parse_args()
    price = load_price_usd_per_mwh(REGION) + args.usd_per_t * load_carbon_g_per_kwh(REGION) / 1000.0
    frame = pd.DataFrame({"Datetime (UTC)": UTC_INDEX_2023.strftime("%Y-%m-%d %H:%M"),
                          "price_usd_per_mwh": price.round(4)})
    frame.to_csv(args.out, index=False)
    print(f"wrote {args.out}: {len(frame)} hours, mean {price.mean():.2f} $/MWh")


if __name__ == "__main__":
    main()
