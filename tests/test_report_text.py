"""The report's fixed prose lives in dcsched/experiments/report_text.md: every section the code asks
for is there, with the fields the code fills, and a field left unfilled fails instead of printing `$name`."""

import re
from pathlib import Path

import pytest

from dcsched.experiments import report


def test_every_section_the_report_asks_for_is_in_the_text_file():
    code = Path(report.__file__).read_text()
    asked = set(re.findall(r'text\("(\w+)"', code))
    assert asked and asked <= set(report._sections()), asked - set(report._sections())
    assert not set(report._sections()) - asked  # and no section is left unused


def test_fields_are_filled_and_a_missing_one_fails():
    line = report.text("tables_stochastic", seeds=3)
    assert "mean over 3 evaluation seed(s)" in line and "$" not in line and "\n" not in line
    with pytest.raises(KeyError):
        report.text("timing", reference="SAC")  # ratios missing
