"""Every library design is accepted at the lowest cpu rung, within the time target."""

import pytest

from model_discovery.checker import check_design
from model_discovery.design.library import design_names, library_design_path

TARGET_S = 30.0


@pytest.mark.parametrize("name", design_names())
def test_library_design_accepted(name):
    report = check_design(library_design_path(name))
    assert report.accepted, report.summary()
    assert report.params and report.metrics["time_per_token_ratio"] <= 3.0
    assert report.timings["total_s"] <= 2 * TARGET_S, f"{name} took {report.timings['total_s']:.1f} s to check"
