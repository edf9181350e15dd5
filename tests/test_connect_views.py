"""The connectivity, residual, flow and lens views driven with the pilot on the fixture run.

Numbers on screen are checked against independent computations from the trace's arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_connect import load_fixture, make_host, tiny_bundle
from neuroscope_tui.analysis.flow import attention_flow, rollout, shares
from neuroscope_tui.analysis.lens import id_text_map
from neuroscope_tui.tui.views.connectivity import ConnectivityView
from neuroscope_tui.tui.views.flow import FlowView
from neuroscope_tui.tui.views.lens import LensView
from neuroscope_tui.tui.views.registry import VIEWS
from neuroscope_tui.tui.views.residual import ResidualView

SIZE = (120, 40)
pytestmark = pytest.mark.anyio


def side_text(app) -> str:
    return str(app.query_one("#view").query_one(".grid-side").render())


def test_views_are_registered_under_their_keys():
    keys = {v.name: v.key for v in VIEWS}
    assert keys["connectivity"] == "3" and keys["residual"] == "4"
    assert keys["flow"] == "5" and keys["lens"] == "6"


async def test_residual_cursor_keys_and_ratios_on_screen():
    trace = load_fixture()
    app = make_host(ResidualView, trace)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one("#view")
        await pilot.press("down", "right", "right", "l")
        assert view.heatmap.cursor == (1, 3)
        assert (view.selection.layer, view.selection.token) == (1, 3)
        # attn ratio of layer 1 = attn.norm[1] / resid.norm[0], straight from the arrays
        expected = trace.get("attn.norm")[1, 3] / trace.get("resid.norm")[0, 3]
        assert view.heatmap.value_at(1, 3) == pytest.approx(expected, rel=1e-5)
        assert "layer 1 · token 3" in side_text(app)
        await pilot.press("m")
        assert view.figure == "mlp ratio"
        expected = trace.get("mlp.norm")[0, 3] / trace.get("embed.norm")[3]
        assert view.heatmap.value_at(0, 3) == pytest.approx(expected, rel=1e-5)
        await pilot.press("m", "m", "m")
        assert view.figure == "dominant"
        assert view.heatmap.value_at(1, 3) in (0.0, 1.0, 2.0)
        await pilot.press("end", "G")
        assert view.heatmap.cursor == (2, trace.n_tokens - 1)
        # one mark per layer under the grid: the path dominating most of its tokens
        paths = str(view.query_one(".residual-paths").render())
        marks = [row["dominant"][0].upper() for row in view.analysis.layer_summary()]
        assert paths.split()[-3:] == [f"{i}{m}" for i, m in enumerate(marks)]


async def test_connectivity_measures_cycle_and_match_numpy():
    trace = load_fixture()
    app = make_host(ConnectivityView, trace)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one("#view")
        assert view.measure == "cka"
        seen = [view.measure]
        for _ in range(4):
            await pilot.press("c")
            seen.append(view.measure)
        assert seen == ["cka", "cosine", "corr resid.norm", "corr attn.norm", "corr mlp.norm"]
        corr = np.corrcoef(trace.get("mlp.norm").astype(np.float64))
        await pilot.press("down", "down", "right")
        assert view.heatmap.cursor == (2, 1)
        assert view.heatmap.value_at(2, 1) == pytest.approx(corr[2, 1], abs=1e-6)
        assert view.selection.layer == 2
        assert "layer 2 × layer 1" in side_text(app)
        assert view.course_titles == ["layer 2 · mlp.norm by token", "layer 1 · mlp.norm by token"]
        await pilot.press("c")  # wraps to CKA: the diagonal is 1
        assert view.heatmap.value_at(1, 1) == pytest.approx(1.0)


async def test_lens_cells_show_top1_marks_and_figures():
    trace = load_fixture()
    app = make_host(LensView, trace)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one("#view")
        top = trace.get("lens.top_ids")[:, :, 0]
        texts = id_text_map(trace)
        heat = view.heatmap
        for layer in range(3):
            for t in range(trace.n_tokens):
                cell = heat.cell_text[layer][t]
                assert cell[1:].rstrip() == texts[int(top[layer, t])][:6].rstrip() or "…" in cell
                hit = t + 1 < trace.n_tokens and top[layer, t] == trace.token_ids[t + 1]
                assert (cell[0] in "✓★") == bool(hit)
        # greedy generation: the last layer's top-1 is each generated token
        last = trace.n_prompt - 1
        assert heat.cell_text[2][last][0] in "✓★"
        await pilot.press("G", *["right"] * last)
        assert heat.cursor == (2, last)
        assert heat.value_at(2, last) == pytest.approx(trace.get("lens.top_probs")[2, last, 0])
        assert "top-1 from layer" in side_text(app)
        await pilot.press("m")
        assert view.figure == "pred prob"
        await pilot.press("m")
        assert heat.value_at(2, last) == pytest.approx(0.0)  # log10(rank 0 + 1)
        await pilot.press("m")
        assert view.figure == "kl"
        assert heat.value_at(0, last) == pytest.approx(trace.get("lens.kl")[0, last])


async def test_flow_rollout_output_position_and_flow_worker():
    trace = load_fixture()
    pats = np.stack([trace.get(f"pattern.{layer}.-1") for layer in range(3)]).astype(float)
    app = make_host(FlowView, trace)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one("#view")
        last = trace.n_tokens - 1
        heat = view.heatmap
        expected = rollout(pats, last)
        row = [heat.value_at(2, t) for t in range(trace.n_tokens)]
        assert np.allclose(row, expected[2], atol=1e-6)
        assert sum(row) == pytest.approx(1.0)
        await pilot.press("right", "right", "right", "o")
        assert view.position == 3
        assert heat.value_at(1, 2) == pytest.approx(rollout(pats, 3)[1, 2])
        assert heat.value_at(1, 5) == 0.0  # a causal model: later tokens never reach position 3
        await pilot.press("comma")
        assert view.position == 2
        await pilot.press("f")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert view.method == "flow"
        flow = shares(attention_flow(pats, 2))
        assert heat.value_at(2, 1) == pytest.approx(flow[2, 1], abs=1e-5)
        assert "flow share" in side_text(app)


async def test_flow_asks_the_live_model_for_patterns():
    trace = load_fixture()
    pats = np.stack([trace.get(f"pattern.{layer}.-1") for layer in range(3)]).astype(float)
    for layer in range(3):
        del trace.arrays[f"pattern.{layer}.-1"]
    tasks: list = []
    app = make_host(FlowView, trace, live_model=tiny_bundle(), tasks=tasks)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one("#view")
        assert len(tasks) == 1 and tasks[0][1] == [(0, -1), (1, -1), (2, -1)]
        last = trace.n_tokens - 1
        row = [view.heatmap.value_at(2, t) for t in range(trace.n_tokens)]
        assert np.allclose(row, rollout(pats, last)[2], atol=1e-5)


async def test_flow_without_patterns_in_view_mode_says_how_to_get_them():
    trace = load_fixture()
    for layer in range(3):
        del trace.arrays[f"pattern.{layer}.-1"]
    app = make_host(FlowView, trace)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "--no-layer-patterns" in side_text(app)


async def test_number_keys_open_each_view_in_the_app_on_the_shared_selection(tmp_path):
    from _fixtures_connect import fixture_path
    from neuroscope_tui.tui.app import NeuroscopeApp

    app = NeuroscopeApp(
        snapshot=load_fixture(), snapshot_path=str(fixture_path()), save_dir=tmp_path
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("right", "right", "down")
        expected = {"3": ConnectivityView, "4": ResidualView, "5": FlowView, "6": LensView}
        for key, cls in expected.items():
            await pilot.press(key)
            await pilot.pause()
            view = app.view
            assert isinstance(view, cls) and app.focused is view.heatmap
            row, column = view.heatmap.cursor
            assert row == 1 and (column == 2 or cls is ConnectivityView)
        await pilot.press("right", "right_square_bracket")  # lens view: token 3, then layer 2
        await pilot.pause()
        assert (app.selection.layer, app.selection.token) == (2, 3)
        await pilot.press("4")
        await pilot.pause()
        assert app.view.heatmap.cursor == (2, 3)


async def test_views_update_as_tokens_arrive():
    from neuroscope_tui.analysis.connectivity import cka_matrix
    from neuroscope_tui.tui.engine import trace_upto

    trace = load_fixture()
    app = make_host(ConnectivityView, trace_upto(trace, 8))
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one("#view")
        await pilot.press("right")
        early = cka_matrix(trace.get("resid.full")[:, :8])
        assert view.heatmap.value_at(0, 1) == pytest.approx(early[0, 1], abs=1e-6)
        for n in (12, trace.n_tokens):  # two more steps of a run
            view.show_trace(trace_upto(trace, n))
            await pilot.pause()
            now = cka_matrix(trace.get("resid.full")[:, :n])
            assert view.heatmap.value_at(0, 1) == pytest.approx(now[0, 1], abs=1e-6)
        assert view.heatmap.cursor == (0, 1)  # the cursor stays where the user put it


async def test_a_costly_grid_is_rebuilt_less_often_during_a_run(monkeypatch):
    import time

    from neuroscope_tui.tui.engine import trace_upto
    from neuroscope_tui.tui.views import grid_view

    trace = load_fixture()
    app = make_host(ConnectivityView, trace_upto(trace, 8))
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one("#view")
        builds = []
        real = ConnectivityView.build_grid

        def slow_build(self, tr):
            builds.append(tr.n_tokens)
            time.sleep(0.05)  # a CKA over many tokens
            return real(self, tr)

        monkeypatch.setattr(ConnectivityView, "build_grid", slow_build)
        view.invalidate()
        for n in (9, 10, 11):  # tokens arrive faster than the grid can be rebuilt
            view.show_trace(trace_upto(trace, n))
        assert builds == [8] and view.heatmap.n_tokens == 3  # the old grid stays on screen
        await pilot.pause(4 * 0.05 + 0.3)
        assert builds[-1] == 11  # the timer rebuilt it from the newest trace
        monkeypatch.setattr(grid_view, "BUSY_FACTOR", 0.0)
        view.show_trace(trace_upto(trace, 12))
        assert builds[-1] == 12


async def test_live_flow_asks_one_pattern_request_at_a_time_while_tokens_arrive():
    from neuroscope_tui.tui.engine import trace_upto

    trace = load_fixture()
    pats = np.stack([trace.get(f"pattern.{layer}.-1") for layer in range(3)]).astype(float)
    for layer in range(3):
        del trace.arrays[f"pattern.{layer}.-1"]
    tasks: list = []
    app = make_host(FlowView, trace_upto(trace, 8), live_model=tiny_bundle(), tasks=tasks)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one("#view")
        assert [len(ids) for ids, _ in tasks] == [8] and view.heatmap.n_tokens == 8
        view.show_trace(trace_upto(trace, 12))
        view.show_trace(trace_upto(trace, 14))  # before the model answered for 12 tokens
        assert [len(ids) for ids, _ in tasks] == [8, 12]
        assert view.heatmap.n_tokens == 8  # the last answer stays on screen meanwhile
        for _ in range(4):
            await pilot.pause()
        assert [len(ids) for ids, _ in tasks] == [8, 12, 14]
        assert view.heatmap.n_tokens == 14
        row = [view.heatmap.value_at(2, t) for t in range(14)]
        assert np.allclose(row, rollout(pats[:, :14, :14], 13)[2], atol=1e-5)


async def test_flow_asked_again_before_it_finished_keeps_only_whole_grids():
    trace = load_fixture()
    app = make_host(FlowView, trace)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one("#view")
        await pilot.press("f", "comma", "comma")  # two new output positions at once
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert view.shown_position == trace.n_tokens - 3
        for (ids, position), grid in view._flows.items():
            assert np.isfinite(grid[:, : position + 1]).all(), (len(ids), position)
        assert np.isfinite(view.heatmap.value_at(2, 0))


@pytest.mark.parametrize(
    ("view_cls", "says"),
    [
        (ConnectivityView, "--full-layers all"),
        (ResidualView, "capture with the resid, attn and mlp sites"),
        (FlowView, "--no-layer-patterns"),
        (LensView, "--no-lens"),
    ],
)
async def test_a_run_without_the_arrays_a_view_needs_gets_one_sentence(view_cls, says):
    from neuroscope_tui.trace import ModelInfo, Trace

    bare = Trace(model=ModelInfo(name="toy", n_layers=2, n_heads=2))
    bare.append([1, 2, 3], ["a", "b", "c"], {})
    app = make_host(view_cls, bare)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "right", "m", "c", "f")
        assert says in side_text(app)
        assert app.query_one("#view").heatmap.n_layers == 0
