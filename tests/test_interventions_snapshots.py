"""SVG snapshots of view 9 (the side by side and the patching sweep grid) and of the scan's
difference heatmap, from the synthetic fixtures (no model needed).

Update after an intended change with `--snapshot-update` and look at the report first.
"""

from __future__ import annotations

from types import SimpleNamespace

from _fixtures_interventions import clean_and_intervened, intervened_trace_with_sweep
from neuroscope_tui.tui.app import NeuroscopeApp

SIZE = (120, 40)


def saved_run_app() -> NeuroscopeApp:
    """A run with interventions and a sweep, opened as a snapshot (what `view` shows)."""
    return NeuroscopeApp(snapshot=intervened_trace_with_sweep(), snapshot_path="intervened.nscope")


class TestInterventionsView:
    def test_side_by_side_and_sweep_of_a_saved_run(self, snap_compare):
        assert snap_compare(saved_run_app(), terminal_size=SIZE, press=["9"])

    def test_sweep_grid_cursor_on_the_country_token(self, snap_compare):
        keys = ["9", "tab", "tab", "down", "down", "right", "right", "right"]
        assert snap_compare(saved_run_app(), terminal_size=SIZE, press=keys)


def difference_app() -> NeuroscopeApp:
    """The live app (a stand-in model) showing an intervened run whose layer 2 changed."""
    clean, mine = clean_and_intervened()
    mine.arrays["resid.norm"] = mine.arrays["resid.norm"].copy()
    mine.arrays["resid.norm"][2:] *= 0.8
    app = NeuroscopeApp(model=SimpleNamespace(name="synthetic-6L", device="cpu", dtype="float32"))
    app.shown = app.trace = mine
    app.interventions.keep_clean(clean, clean.prompt, {})
    return app


class TestScanDifference:
    def test_intervened_minus_clean(self, snap_compare):
        assert snap_compare(difference_app(), terminal_size=SIZE, press=["d"])
