"""Every key of the app, driven through Textual's pilot on the synthetic fixture snapshot
(`view` mode: no model, no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from neuroscope_tui.analysis.metrics import METRICS, NORMALISATIONS, normalise
from neuroscope_tui.snapshot import load_snapshot
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.help import HelpScreen
from neuroscope_tui.tui.widgets.colorbar import ColorBar
from neuroscope_tui.tui.widgets.detail import DetailPanel
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap
from neuroscope_tui.tui.widgets.heatmap_render import to_buckets

SIZE = (120, 40)
pytestmark = pytest.mark.anyio


def view_app(tmp_path, **kw) -> NeuroscopeApp:
    return NeuroscopeApp(
        snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path, **kw
    )


def detail_text(app) -> str:
    return str(app.query_one(DetailPanel).query_one("#detail-text").render())


async def test_opens_on_the_heatmap_with_header(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        heat = app.query_one(LayerHeatmap)
        assert app.focused is heat
        assert (heat.n_layers, heat.n_tokens) == (6, 11)
        assert not app.query_one("#prompt").display  # read-only: no prompt box
        header = str(app.query_one("#header").render())
        nbytes = sum(a.nbytes for a in app.shown.arrays.values())
        assert "synthetic-6L" in header and "snapshot app_scan.nscope" in header
        assert app.figures.captured == nbytes
        assert app.live_model is None


@pytest.mark.parametrize(
    ("keys", "cell"),
    [
        (["right", "right", "down"], (1, 2)),
        (["l", "l", "l", "j", "j", "h", "k"], (1, 2)),
        (["end"], (0, 10)),
        (["end", "home"], (0, 0)),
        (["pagedown"], (0, 10)),  # a page of tokens is wider than 11 tokens
        (["pagedown", "pageup"], (0, 0)),
        (["down", "down", "up", "left"], (1, 0)),
    ],
)
async def test_cursor_keys_move_the_selection(tmp_path, keys, cell):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*keys)
        await pilot.pause()
        assert app.query_one(LayerHeatmap).cursor == cell
        assert (app.selection.layer, app.selection.token) == cell
        assert detail_text(app).startswith(f"layer {cell[0]} · token {cell[1]} ")


async def test_detail_follows_the_cursor_with_real_values(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "right", "right", "right")
        await pilot.pause()
        text = detail_text(app)
        expected = f"{float(app.shown.get('resid.norm')[2, 3]):.3g}"
        line = next(ln for ln in text.splitlines() if "residual norm" in ln)
        assert line.split()[-1] == expected


async def test_metric_key_cycles_every_metric(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        heat = app.query_one(LayerHeatmap)
        seen = []
        for _ in METRICS:
            seen.append(app.view.metric)
            metric = METRICS[app.view.metric]
            np.testing.assert_allclose(heat._raw, app.shown.get(metric.array))
            assert app.query_one(ColorBar).label == metric.label
            await pilot.press("m")
            await pilot.pause()
        assert seen == list(METRICS)
        assert app.view.metric == seen[0]


async def test_normalisation_key_cycles_and_recolours(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        heat = app.query_one(LayerHeatmap)
        raw = app.shown.get("resid.norm")
        for mode in NORMALISATIONS:
            assert app.view.normalisation == mode
            assert app.query_one(ColorBar).normalisation == mode
            expected = to_buckets(normalise(raw, mode, clip_outliers=True))
            np.testing.assert_array_equal(heat._buckets, expected)
            await pilot.press("n")
            await pilot.pause()
        assert app.view.normalisation == NORMALISATIONS[0]
        # per layer: each row spans the whole scale
        await pilot.press("n")
        await pilot.pause()
        assert (heat._buckets.max(axis=1) == 255).all() and (heat._buckets.min(axis=1) == 0).all()


async def test_clip_key_toggles_outlier_clipping(tmp_path):
    trace = synthetic_trace()
    raw = trace.get("resid.norm").copy()
    raw[:, 0] *= 50  # a first-token outlier, as in real models
    trace.arrays["resid.norm"] = raw
    app = NeuroscopeApp(snapshot=trace, snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        heat = app.query_one(LayerHeatmap)
        assert app.view.clip and app.query_one(ColorBar).clipped
        clipped = heat._buckets.copy()
        np.testing.assert_array_equal(clipped, to_buckets(normalise(raw, "global", True)))
        await pilot.press("o")
        await pilot.pause()
        assert not app.view.clip and not app.query_one(ColorBar).clipped
        np.testing.assert_array_equal(heat._buckets, to_buckets(normalise(raw, "global")))
        # unclipped, the outlier column squeezes the rest into the bottom colours
        assert heat._buckets[:, 1:].mean() < clipped[:, 1:].mean()


async def test_neuron_key_picks_the_cells_next_neuron(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down")  # layer 1 keeps full neurons
        top = app.shown.get("neurons.top_idx")[1, 0]
        await pilot.press("u")
        assert app.view.neuron == (1, int(top[0]))
        await pilot.press("u")
        assert app.view.neuron == (1, int(top[1]))


async def test_save_key_writes_a_snapshot_that_loads_back(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await pilot.pause()
        path = app.last_saved
        assert path is not None and path.parent == tmp_path and path.suffix == ".nscope"
        assert path.name.startswith("synthetic-6L-")
        back = load_snapshot(path)
        assert back.token_text == app.shown.token_text
        np.testing.assert_array_equal(back.get("resid.norm"), app.shown.get("resid.norm"))
        await pilot.press("s")  # a second save in the same second does not overwrite
        await pilot.pause()
        assert app.last_saved != path and app.last_saved.exists()


async def test_save_to_a_missing_folder_is_a_notice(tmp_path):
    app = view_app(tmp_path / "gone")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await pilot.pause()
        assert app.last_saved is None
        notes = [n.message for n in app._notifications]
        assert any(m.startswith("not saved:") and "does not exist" in m for m in notes)
        assert app.is_running


async def test_screenshot_key_writes_an_svg(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("S")
        await pilot.pause()
        path = app.last_saved
        assert path.suffix == ".svg" and path.read_text().startswith("<svg")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.last_saved != path and app.last_saved.exists()


async def test_help_lists_every_key_and_closes(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = "\n".join(f"{k} {w}" for _, rows in app.screen.sections for k, w in rows)
        wanted = ["quit", "save", "metric", "normalise", "stop run", "next layer"]
        wanted += ["previous head", "token →", "page of tokens ←", "first token", "help"]
        for what in wanted:
            assert what in shown
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_runs_an_action_by_name(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"metric")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.view.metric == list(METRICS)[1]


async def test_layer_and_head_keys_work_from_any_view(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("right_square_bracket", "right_square_bracket")
        await pilot.press("left_square_bracket", "right_curly_bracket")
        await pilot.pause()
        assert (app.selection.layer, app.selection.head) == (1, 1)
        assert app.query_one(LayerHeatmap).cursor[0] == 1
        await pilot.press(*["left_curly_bracket"] * 3)
        assert app.selection.head == 0


async def test_click_selects_a_cell(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        heat = app.query_one(LayerHeatmap)
        x = heat.gutter_width + 4 * heat.cell_width + 1
        await pilot.click("#heatmap", offset=(x, 2 + 3))  # two axis rows, then layer 3
        await pilot.pause()
        assert heat.cursor == (3, 4)
        assert (app.selection.layer, app.selection.token) == (3, 4)


async def test_number_keys_switch_views(tmp_path):
    from neuroscope_tui.tui.views.registry import VIEWS

    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("right", "down")
        for entry in VIEWS:
            await pilot.press(entry.key)
            await pilot.pause()
            assert app.current_view == entry.name
            assert app.view.trace is app.shown
            assert app.query_one("#views").current == f"view-{entry.name}"
        await pilot.press("1")
        await pilot.pause()
        assert app.query_one(LayerHeatmap).cursor == (1, 1)


async def test_small_terminal_shows_a_message_then_the_layout(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert app.query_one("#too-small").display
        assert not app.query_one("#main").display
        assert "60x20" in str(app.query_one("#too-small").render())
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert app.query_one("#main").display and not app.query_one("#too-small").display
        assert app.query_one(LayerHeatmap).size.height >= 6
        assert app.query_one("#scan-plots").size.height == 7  # short: smaller plots
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert app.query_one("#scan-plots").size.height == 9


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_quit_keys_end_the_app(tmp_path, key):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(key)
        await pilot.pause()
    assert app.return_value == 0 and not app.is_running


async def test_stop_and_prompt_keys_are_harmless_without_a_model(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape", "slash")
        await pilot.pause()
        assert app.is_running and app.focused is app.query_one(LayerHeatmap)
        app.run_model_task(lambda model: model, on_done=lambda r: None)
        await pilot.pause()
        assert any("needs the live model" in n.message for n in app._notifications)


async def test_a_trace_with_few_arrays_or_no_tokens_still_opens(tmp_path):
    from dataclasses import replace

    full = synthetic_trace()
    sparse = replace(full, arrays={k: v for k, v in full.arrays.items() if k.startswith("attn.")})
    empty = replace(full, token_ids=[], token_text=[], n_prompt=0, arrays={})
    for trace in (sparse, empty):
        app = NeuroscopeApp(snapshot=trace, snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("right", "down", "m", "n", "o", "u", "end", "s")
            await pilot.pause()
            assert app.is_running
            if trace is sparse:
                assert "not recorded in this trace" in detail_text(app)
                assert app.view.metric == "attn.norm"  # recorded: every cell has a value
                assert np.isfinite(app.query_one(LayerHeatmap)._raw).all()
                await pilot.press("m")  # MLP-output norm was not recorded: empty cells
                assert np.isnan(app.query_one(LayerHeatmap)._raw).all()
            else:
                assert app.last_saved is None  # nothing to save: a notice
