"""The regions whose real traces ship with dcsched: files, time zone, continent, cloud region."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RAW_DIR = Path(__file__).resolve().parent / "raw"


@dataclass(frozen=True)
class Region:
    region_id: str
    price_file: str
    timezone: str  # IANA zone of the market (for local-hour checks)
    continent: str
    cloud_region: str  # row/column label in the network cost matrix (aws)

    @property
    def price_path(self) -> Path:
        return RAW_DIR / "prices" / self.price_file

    @property
    def carbon_path(self) -> Path:
        return RAW_DIR / "carbon" / f"{self.region_id}_2023_hourly.csv"

    @property
    def weather_path(self) -> Path:
        return RAW_DIR / "weather" / f"{self.region_id}_2023.json"


REGIONS: dict[str, Region] = {
    r.region_id: r
    for r in (
        Region("US-MIDA-PJM", "US-MIDA-PJM_electricity_prices_2023_utcfix.csv", "America/New_York", "NA", "us-east-1"),
        Region("US-CAL-CISO", "US-CAL-CISO_electricity_prices_2023_utcfix.csv", "America/Los_Angeles", "NA", "us-west-1"),
        Region("US-TEX-ERCO", "US-TEX-ERCO_electricity_prices_2023.csv", "America/Chicago", "NA", "us-east-1-dwf-1"),
        Region("US-NY-NYIS", "US-NY-NYIS_electricity_prices_2023_utcfix.csv", "America/New_York", "NA", "us-east-2"),
        Region("DE-LU", "DE-LU_electricity_prices_2023.csv", "Europe/Berlin", "EU", "eu-central-1"),
        Region("JP-TK", "JP-TK_electricity_prices_2023.csv", "Asia/Tokyo", "AS", "ap-northeast-1"),
        Region("SG", "SG_electricity_prices_2023.csv", "Asia/Singapore", "AS", "ap-southeast-1"),
        Region("AU-NSW", "AU-NSW_electricity_prices_2023.csv", "Australia/Sydney", "OC", "ap-southeast-2"),
    )
}
