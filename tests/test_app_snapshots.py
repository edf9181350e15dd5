"""SVG snapshots of the main screen (pytest-textual-snapshot) from the synthetic fixture.

Update after an intended change with `pytest tests/test_app_snapshots.py --snapshot-update`
and look at the report before committing the new SVGs.
"""

from __future__ import annotations

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from neuroscope_tui.tui.app import NeuroscopeApp

SIZE = (120, 40)


def fixture_app() -> NeuroscopeApp:
    return NeuroscopeApp(snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE))


class TestScanScreen:
    def test_opens_on_the_scan(self, snap_compare):
        assert snap_compare(fixture_app(), terminal_size=SIZE)

    def test_cursor_metric_and_normalisation(self, snap_compare):
        keys = ["down", "down", "down", "right"] + ["right"] * 5 + ["m", "m", "n"]
        assert snap_compare(fixture_app(), terminal_size=SIZE, press=keys)

    def test_smallest_layout(self, snap_compare):
        assert snap_compare(fixture_app(), terminal_size=(80, 24), press=["end"])


class TestScreensOverTheScan:
    def test_help(self, snap_compare):
        assert snap_compare(fixture_app(), terminal_size=SIZE, press=["question_mark"])

    def test_too_small(self, snap_compare):
        assert snap_compare(fixture_app(), terminal_size=(70, 20))
