"""The drift view (key ~): its cells equal the comparison's arrays (computed here again), `m` and
`p` switch the measure and the reference, the detail pane names the planted neuron and head,
Enter shows the checkpoint's scan as its difference to the base, and the SVG snapshot."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from _fixtures_drift import PLANTED_HEAD, PLANTED_LAYER, PLANTED_NEURON, STEPS, synthetic_drift
from neuroscope_tui.analysis.metrics import metric_values
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.views.drift import NO_DRIFT, DriftView, drift_app
from neuroscope_tui.tui.views.scan import ScanView
from neuroscope_tui.tui.widgets.colorbar import ColorBar
from test_app_live import SIZE

pytestmark = pytest.mark.anyio


def side_text(view: DriftView) -> str:
    return str(view.query_one(".grid-side").render())


async def on_drift(pilot) -> DriftView:
    """Wait until the app shows the drift view with its grid."""
    for _ in range(50):
        await pilot.pause()
        app = pilot.app
        if app.current_view == "drift" and app.view.grid is not None:
            return app.view
    raise AssertionError(f"the app is on {pilot.app.current_view}, not a drawn drift view")


async def test_cells_are_the_arrays_and_m_p_switch():
    r = synthetic_drift()
    a = r.arrays
    means = a["neurons.mean"].astype(np.float64)  # [M, L, N]
    want = {
        ("cka", "base"): 1 - a["cka.base"].T,
        ("weights", "base"): a["weights.base"].T,
        ("neurons", "base"): np.abs(means[1:] - means[0]).mean(-1).T,
        ("neurons", "prev"): np.abs(means[1:] - means[:-1]).mean(-1).T,
        ("cka", "prev"): 1 - a["cka.prev"].T,
        ("weights", "prev"): a["weights.prev"].T,
    }
    app = drift_app(r)
    async with app.run_test(size=SIZE) as pilot:
        view = await on_drift(pilot)
        order = [("cka", "base"), ("weights", "base"), ("neurons", "base")]
        for step, (metric, ref) in enumerate(order):
            if step:
                await pilot.press("m")
                await pilot.pause()
            assert (view.metric, view.ref) == (metric, ref)
            np.testing.assert_allclose(view.grid.raw, want[metric, ref], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(view.heatmap._raw, want[metric, ref], rtol=1e-5, atol=1e-7)
        for metric in ("neurons", "cka", "weights"):
            if metric != "neurons":
                await pilot.press("m")
            else:
                await pilot.press("p")
            await pilot.pause()
            assert (view.metric, view.ref) == (metric, "prev")
            np.testing.assert_allclose(view.grid.raw, want[metric, "prev"], rtol=1e-5, atol=1e-7)
        assert "vs previous" in str(view.query_one(".grid-title").render())
        # nothing moved before the planted layer; the brightest cell is the last checkpoint's
        await pilot.press("p", "m", "m")  # back to 1 - CKA vs base
        await pilot.pause()
        assert (view.metric, view.ref) == ("cka", "base")
        assert np.all(view.grid.raw[:PLANTED_LAYER] == 0)
        assert np.all(view.grid.values_norm[:PLANTED_LAYER] == 0)
        assert view.grid.values_norm[-1, -1] == 1.0
        # log colours by default: 0.04 (the smallest change) dark, 0.48 bright, 0.12 between
        lo, hi, cell = 0.04, 0.04 * 3 * 4, 0.04 * 3 * 1  # the last checkpoint at the planted layer
        want_log = np.log(cell / lo) / np.log(hi / lo)
        assert view.grid.values_norm[PLANTED_LAYER, 2] == pytest.approx(want_log, rel=1e-5)
        await pilot.press("o")
        await pilot.pause()
        assert view.grid.values_norm[PLANTED_LAYER, 2] == pytest.approx(cell / hi, rel=1e-5)
        assert "log" not in view.grid.label
        assert view.grid.column_labels == [str(s) for s in STEPS]


async def test_detail_names_the_planted_neuron_and_head():
    r = synthetic_drift()
    app = drift_app(r)
    async with app.run_test(size=SIZE) as pilot:
        view = await on_drift(pilot)
        for _ in range(PLANTED_LAYER):
            await pilot.press("down")
        await pilot.press("right", "right")  # the last checkpoint
        await pilot.pause()
        assert app.selection.layer == PLANTED_LAYER and view.checkpoint == 2
        text = side_text(view)
        assert f"checkpoint-{STEPS[2]} · layer {PLANTED_LAYER}" in text
        heads = text.split("top moved heads")[1].split("top moved neurons")
        first_head = heads[0].strip().splitlines()[0]
        assert first_head.startswith(f"H{PLANTED_HEAD} ") and "induction" in first_head
        assert "+0.6" in first_head and "P→PI" in first_head
        assert heads[1].strip().splitlines()[0].startswith(f"n{PLANTED_NEURON} ")
        cka = 1 - 0.04 * 3 * 1  # the fixture's formula at this cell
        assert f"{cka:.3g}" in text
        assert "lens split" in text
        # vs previous: the planted head moved by one step's worth
        await pilot.press("p")
        await pilot.pause()
        text = side_text(view)
        assert f"vs checkpoint-{STEPS[1]} (previous)" in text
        assert "+0.2" in text.split("top moved heads")[1].splitlines()[1]
        # the app's layer selection moves the cursor row too
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert view.heatmap.cursor == (PLANTED_LAYER + 1, 2)


async def test_enter_shows_the_checkpoint_minus_the_base():
    r = synthetic_drift()
    app = drift_app(r)
    async with app.run_test(size=SIZE) as pilot:
        await on_drift(pilot)
        await pilot.press("right", "enter")
        for _ in range(20):
            await pilot.pause()
            if app.current_view == "scan":
                break
        assert app.current_view == "scan"
        scan = app.view
        assert isinstance(scan, ScanView) and scan.difference
        assert app.shown is r.traces[2]
        base, ckpt = r.traces[0], r.traces[2]
        want = metric_values(ckpt, scan.metric) - metric_values(base, scan.metric)
        np.testing.assert_allclose(scan.heatmap._raw, want, rtol=1e-5, atol=1e-6)
        bar = scan.query_one(ColorBar)
        assert f"checkpoint-{STEPS[1]} - base" in bar.label
        assert f"showing checkpoint-{STEPS[1]}" in app.figures.source
        await pilot.press("d")  # the checkpoint's own run
        await pilot.pause()
        np.testing.assert_allclose(scan.heatmap._raw, metric_values(ckpt, scan.metric))
        await pilot.press("tilde")
        await on_drift(pilot)
        await pilot.press("b")  # the base's own scan: nothing to subtract
        for _ in range(20):
            await pilot.pause()
            if app.current_view == "scan":
                break
        assert app.shown is base and not scan.difference
        assert "showing base" in app.figures.source


async def test_a_measure_not_taken_says_why():
    app = drift_app(synthetic_drift(skip_weights=True))
    async with app.run_test(size=SIZE) as pilot:
        view = await on_drift(pilot)
        await pilot.press("m")
        await pilot.pause()
        assert view.grid is None
        assert "weight change (block) was not measured: a snapshot input" in side_text(view)
        await pilot.press("m")
        await pilot.pause()
        assert view.grid is not None and view.metric == "neurons"


async def test_without_a_comparison_it_says_how_to_make_one():
    app = NeuroscopeApp(snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.current_view == "scan"  # an ordinary snapshot does not open on drift
        await pilot.press("tilde")
        await pilot.pause()
        await pilot.pause()
        assert app.current_view == "drift"
        assert "neuroscope-tui drift BASE CKPT..." in side_text(app.view)
        assert NO_DRIFT.startswith("no drift comparison")


async def test_labels_from_files_are_escaped():
    r = synthetic_drift()
    r.checkpoints[0].label = "ckpt\x1b[31m[b]red"
    app = drift_app(r)
    async with app.run_test(size=SIZE) as pilot:
        view = await on_drift(pilot)
        text = side_text(view)
        assert "\x1b" not in text and "[b]red" in text


def test_view_opens_a_drift_file_on_the_drift_view(monkeypatch):
    """`view` hands a snapshot whose notes carry "drift" to drift_file (stubbed here)."""
    import sys
    import types

    from neuroscope_tui.cli.view import drift_of

    r = synthetic_drift()
    trace = synthetic_trace()
    assert drift_of(trace, "x.nscope") is None  # an ordinary snapshot
    trace.notes["drift"] = {"checkpoints": []}
    stub = types.ModuleType("neuroscope_tui.drift_file")
    stub.drift_from_trace = lambda t, source: r if t is trace and source == "x.nscope" else None
    monkeypatch.setitem(sys.modules, "neuroscope_tui.drift_file", stub)
    assert drift_of(trace, "x.nscope") is r


async def show_planted_cell(pilot) -> None:
    await on_drift(pilot)
    for _ in range(PLANTED_LAYER):
        await pilot.press("down")
    await pilot.press("right", "right")
    await pilot.pause()


class TestDriftScreen:
    def test_the_planted_layer_of_the_last_checkpoint(self, snap_compare):
        assert snap_compare(drift_app(synthetic_drift()), terminal_size=SIZE,
                            run_before=show_planted_cell)  # fmt: skip


async def test_s_saves_the_whole_comparison(monkeypatch, tmp_path):
    """With a comparison on screen, `s` hands all of it to drift_file.save_drift (stubbed)."""
    import sys
    import types

    saved = []
    stub = types.ModuleType("neuroscope_tui.drift_file")
    stub.save_drift = lambda result, path, force=False: saved.append((result, path)) or path
    monkeypatch.setitem(sys.modules, "neuroscope_tui.drift_file", stub)
    r = synthetic_drift()
    app = drift_app(r, save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_drift(pilot)
        await pilot.press("s")
        await pilot.pause()
    assert len(saved) == 1 and saved[0][0] is r
    assert saved[0][1].parent == tmp_path and saved[0][1].name.startswith("base-drift-")


async def test_a_run_of_another_prompt_is_shown_without_a_difference():
    """A snapshot input's run of its own prompt cannot be subtracted cell by cell."""
    import dataclasses

    r = synthetic_drift()
    r.traces[1] = dataclasses.replace(r.traces[1], prompt="another prompt")
    app = drift_app(r)
    async with app.run_test(size=SIZE) as pilot:
        await on_drift(pilot)
        await pilot.press("enter")
        for _ in range(20):
            await pilot.pause()
            if app.current_view == "scan":
                break
        assert app.shown is r.traces[1] and not app.view.difference
        np.testing.assert_allclose(app.view.heatmap._raw, metric_values(r.traces[1], "resid.norm"))


def test_log_colours_floor_and_zero():
    from neuroscope_tui.tui.views.drift_cells import LOG_DECADES, colour_scale

    raw = np.array([[0.0, 1e-12, 1e-3], [1e-2, np.nan, 1.0]])
    norm, lo, hi = colour_scale(raw, log=True)
    assert (lo, hi) == (10.0**-LOG_DECADES, 1.0)  # float noise below the floor stays dark
    assert norm[0, 0] == 0 and norm[0, 1] == 0 and np.isnan(norm[1, 1]) and norm[1, 2] == 1
    assert norm[0, 2] == pytest.approx(0.25) and norm[1, 0] == pytest.approx(0.5)
    flat, lo, hi = colour_scale(np.zeros((2, 2)), log=True)  # nothing moved: all dark
    assert np.all(flat == 0) and hi > lo


def test_similarities_near_one_keep_their_digits():
    from neuroscope_tui.tui.views.drift_cells import similarity_text

    assert similarity_text(0.9999791) == "0.999979"
    assert similarity_text(1.0) == "1" and similarity_text(0.5) == "0.5"
    assert similarity_text(float("nan")) == "–"


async def test_a_comparison_without_runs_still_opens_on_drift():
    r = synthetic_drift()
    r.traces = []
    app = drift_app(r)
    async with app.run_test(size=SIZE) as pilot:
        view = await on_drift(pilot)
        assert app.figures.model == "./base" and "showing base" in app.figures.source
        np.testing.assert_allclose(view.grid.raw, 1 - r.arrays["cka.base"].T, rtol=1e-6)
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_view == "drift"
        assert any("no run of checkpoint-100" in str(n.message) for n in app._notifications)
