"""The GPU check's report renders every section of a real run (docs/gpu/h200-2026-11-27.json)."""

import json
from pathlib import Path

from dcsched.bench.gpu_check import SECTIONS, to_markdown

REPORT = Path(__file__).resolve().parents[1] / "docs" / "gpu" / "h200-2026-11-27.json"


def test_markdown_has_every_section_and_the_measured_numbers():
    report = json.loads(REPORT.read_text())
    md = to_markdown(report)
    for name in SECTIONS:
        assert f"## {name}: passed" in md
    for mode in ("absolute", "headroom"):
        assert f"steps_mode {mode}:" in md
    par = report["sections"]["parallel"]["result"]
    for run, row in par.items():
        if isinstance(row, dict):
            assert f"| {run} | {row['num_envs']:,} | {row['frames_per_s']:,.0f} |" in md
    assert f"hybrid_wide_gpu_speedup {par['hybrid_wide_gpu_speedup']:.2f}x" in md
