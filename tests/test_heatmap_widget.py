"""LayerHeatmap alone in a tiny app: cursor keys, clicks, follow, caching and an SVG snapshot."""

from __future__ import annotations

import numpy as np
import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region

from neuroscope_tui.tui.widgets.colorbar import ColorBar
from neuroscope_tui.tui.widgets.heatmap import AXIS_ROWS, LayerHeatmap
from neuroscope_tui.tui.widgets.heatmap_render import build_palette, to_buckets

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Textual runs on asyncio


WORDS = [" The", " capital", " of", " France", " is", "\n", " Paris", ".", "\t", " It"]


def grid(n_layers: int, n_tokens: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # grows with depth like a residual norm, so the fixture looks like the real thing
    return rng.random((n_layers, n_tokens)) + np.arange(n_layers)[:, None] * 0.2


def labels(n: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(n)]


class HeatmapApp(App):
    """The heatmap with a colour bar, recording every CursorMoved it receives."""

    CSS = "LayerHeatmap { height: 1fr; }"

    def __init__(self, n_layers: int = 6, n_tokens: int = 12, n_prompt: int = 8) -> None:
        super().__init__()
        self.n_layers, self.n_tokens, self.n_prompt = n_layers, n_tokens, n_prompt
        self.moves: list[tuple[int, int]] = []

    def compose(self) -> ComposeResult:
        yield LayerHeatmap(id="heatmap")
        yield ColorBar(id="bar")

    def on_mount(self) -> None:
        self.show(self.n_tokens)
        self.query_one(LayerHeatmap).focus()

    def show(self, n_tokens: int) -> None:
        values = grid(self.n_layers, max(64, n_tokens))[:, :n_tokens]
        lo, hi = (values.min(), values.max()) if n_tokens else (0.0, 1.0)
        norm = (values - lo) / (hi - lo)
        heatmap = self.query_one(LayerHeatmap)
        heatmap.set_data(norm, values, labels(n_tokens), min(self.n_prompt, n_tokens))
        self.query_one(ColorBar).set_scale("residual norm", "||x||", lo, hi, "global")

    def on_layer_heatmap_cursor_moved(self, event: LayerHeatmap.CursorMoved) -> None:
        self.moves.append((event.layer, event.token))


async def test_cursor_keys_move_and_post_cursor_moved():
    app = HeatmapApp()
    async with app.run_test(size=(60, 16)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        await pilot.press("right", "l", "down", "j")
        assert heatmap.cursor == (2, 2)
        await pilot.press("up", "k", "left", "h", "left")
        assert heatmap.cursor == (0, 0)  # clamped at the edge
        await pilot.press("end")
        assert heatmap.cursor == (0, 11)
        await pilot.press("G")
        assert heatmap.cursor == (5, 11)
        await pilot.press("home", "g")
        assert heatmap.cursor == (0, 0)
        await pilot.pause()
        assert app.moves[:2] == [(0, 1), (0, 2)]
        assert app.moves[-1] == (0, 0)


async def test_page_keys_jump_by_one_screen_of_tokens():
    app = HeatmapApp(n_layers=4, n_tokens=200)
    async with app.run_test(size=(40, 12)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        page = (heatmap.scrollable_content_region.width - heatmap.gutter_width) // 3
        assert page > 5
        await pilot.press("home", "pagedown")
        assert heatmap.cursor == (0, page)
        await pilot.press("pagedown", "pageup")
        assert heatmap.cursor == (0, page)
        # the cursor stays in view: its cell lies inside the data area
        await pilot.pause()
        x = heatmap.gutter_width + page * 3 - heatmap.scroll_offset.x
        assert heatmap.gutter_width <= x <= heatmap.scrollable_content_region.width - 3


async def test_click_selects_the_cell_under_the_mouse():
    app = HeatmapApp()
    async with app.run_test(size=(60, 16)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        gutter = heatmap.gutter_width
        await pilot.click(LayerHeatmap, offset=(gutter + 4 * 3 + 1, AXIS_ROWS + 3))
        assert heatmap.cursor == (3, 4)
        # a click on the axis picks the token, keeping the layer
        await pilot.click(LayerHeatmap, offset=(gutter + 7 * 3, 1))
        assert heatmap.cursor == (3, 7)
        # a click on the gutter picks the layer, keeping the token
        await pilot.click(LayerHeatmap, offset=(0, AXIS_ROWS + 1))
        assert heatmap.cursor == (1, 7)
        await pilot.pause()
        assert (3, 4) in app.moves


async def test_follow_keeps_the_newest_token_in_view_until_the_user_moves_away():
    app = HeatmapApp(n_layers=3, n_tokens=30, n_prompt=5)
    async with app.run_test(size=(40, 10)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        heatmap.scroll_to(x=heatmap.max_scroll_x, animate=False, immediate=True)
        for n in range(31, 40):
            app.show(n)
            await pilot.pause()
            assert heatmap.scroll_x == heatmap.max_scroll_x > 0
        last_x = heatmap.gutter_width + 38 * 3 - heatmap.scroll_offset.x
        assert last_x < heatmap.scrollable_content_region.width
        await pilot.press("home")  # the user goes back to the first token
        await pilot.pause()
        assert heatmap.scroll_x == 0
        app.show(40)
        await pilot.pause()
        assert heatmap.scroll_x == 0  # not dragged back to the end
        assert heatmap.n_tokens == 40


async def test_frame_draws_visible_cells_in_their_bucket_colours():
    app = HeatmapApp(n_layers=6, n_tokens=12)
    async with app.run_test(size=(60, 16)) as pilot:
        await pilot.pause()
        heatmap = app.query_one(LayerHeatmap)
        strips = heatmap.frame_strips()
        assert len(strips) == heatmap.size.height
        assert all(s.cell_length == heatmap.size.width for s in strips)
        values = grid(6, 64)[:, :12]
        buckets = to_buckets((values - values.min()) / (values.max() - values.min()))
        palette = build_palette()
        row = strips[AXIS_ROWS + 2]
        chars = [(ch, seg.style) for seg in row for ch in seg.text]
        assert "".join(ch for ch, _ in chars[: heatmap.gutter_width]).strip() == "2"
        for token in range(12):
            _, style = chars[heatmap.gutter_width + token * 3 + 1]
            assert style.bgcolor.get_truecolor()[:3] == palette.colours[buckets[2, token]]
        assert "▼·The #0" in strips[0].text
        assert strips[1].text[heatmap.gutter_width :].startswith("·Th·ca·of")


async def test_cursor_move_repaints_only_the_cells_it_touches(monkeypatch):
    app = HeatmapApp()
    async with app.run_test(size=(60, 16)) as pilot:
        await pilot.pause()
        heatmap = app.query_one(LayerHeatmap)
        painted: list[Region] = []
        real_refresh = heatmap.refresh

        def spy(*regions, **kwargs):
            painted.extend(regions)
            return real_refresh(*regions, **kwargs)

        monkeypatch.setattr(heatmap, "refresh", spy)
        await pilot.press("right")
        cells = [r for r in painted if r.y >= AXIS_ROWS]
        assert cells, "the cursor move repainted no cell"
        assert all(r.height == 1 and r.width <= 3 for r in cells)
        assert sum(r.area for r in painted) < heatmap.size.area / 4


async def test_strip_cache_reuses_rows_and_forgets_them_when_data_grows():
    app = HeatmapApp()
    async with app.run_test(size=(60, 16)) as pilot:
        await pilot.pause()
        heatmap = app.query_one(LayerHeatmap)
        first = heatmap.render_line(AXIS_ROWS + 3)
        assert heatmap.render_line(AXIS_ROWS + 3) is first
        app.show(13)
        again = heatmap.render_line(AXIS_ROWS + 3)
        assert again is not first
        colours = set(build_palette().colours)

        def coloured(strip) -> int:
            return sum(
                len(seg.text)
                for seg in strip
                if seg.style
                and seg.style.bgcolor
                and seg.style.bgcolor.get_truecolor()[:3] in colours
            )

        assert coloured(again) == coloured(first) + 3  # one more token, three characters


async def test_set_data_rejects_mismatched_shapes_and_clamps_the_cursor():
    app = HeatmapApp()
    async with app.run_test(size=(60, 16)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        await pilot.press("end", "G")
        with pytest.raises(ValueError, match="shape"):
            heatmap.set_data(np.zeros((2, 3)), np.zeros((3, 2)), ["a"] * 3, 1)
        with pytest.raises(ValueError, match="labels"):
            heatmap.set_data(np.zeros((2, 3)), np.zeros((2, 3)), ["a"] * 2, 1)
        with pytest.raises(ValueError, match="layer ids"):
            heatmap.set_data(np.zeros((2, 3)), np.zeros((2, 3)), ["a"] * 3, 1, [4])
        heatmap.set_data(np.zeros((2, 3)), np.zeros((2, 3)), ["a"] * 3, 1, [4, 12])
        assert heatmap.gutter_width == 3  # "12" and a blank
        heatmap.set_data(np.zeros((2, 3)), np.ones((2, 3)), ["a", "b", "c"], 1)
        assert heatmap.cursor == (1, 2)
        assert heatmap.value_at(1, 2) == 1.0
        assert np.isnan(heatmap.value_at(5, 5))


def test_snapshot_of_the_heatmap(snap_compare):
    async def move(pilot):
        await pilot.press("right", "right", "down")

    app = HeatmapApp(n_layers=8, n_tokens=20)
    assert snap_compare(app, terminal_size=(70, 14), run_before=move)


async def test_axis_and_gutter_stay_put_when_scrolled_down_and_right():
    app = HeatmapApp(n_layers=30, n_tokens=300, n_prompt=10)
    async with app.run_test(size=(50, 14)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        await pilot.press("G", "end")
        await pilot.pause()
        sx, sy = heatmap.scroll_offset
        assert sx > 0 and sy > 0
        strips = heatmap.frame_strips()
        assert "▼·It #299" in strips[0].text  # the axis still on top, naming the cursor token
        first_row = strips[AXIS_ROWS].text
        assert first_row[: heatmap.gutter_width].strip() == str(sy)  # layer numbers scroll
        gutter_of_cursor = strips[AXIS_ROWS + 29 - sy].text[: heatmap.gutter_width]
        assert gutter_of_cursor.strip() == "29"
        assert "[■]" in strips[AXIS_ROWS + 29 - sy].text


async def test_empty_and_tiny_cases_draw_without_error():
    app = HeatmapApp()
    async with app.run_test(size=(60, 16)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        heatmap.set_data(np.zeros((4, 0)), np.zeros((4, 0)), [], 0)
        await pilot.press("right", "end", "pagedown")
        assert heatmap.cursor == (0, 0)
        assert all(s.cell_length == heatmap.size.width for s in heatmap.frame_strips())
        await pilot.click(LayerHeatmap, offset=(10, 4))  # nothing to select: no error
        nan = np.full((3, 5), np.nan)
        heatmap.set_data(nan, nan, ["a"] * 5, 5)
        await pilot.pause()
        row = heatmap.frame_strips()[AXIS_ROWS + 1].text
        assert row[heatmap.gutter_width :].startswith(" ·  ·  · ")
    tiny = HeatmapApp()
    async with tiny.run_test(size=(4, 3)) as pilot:
        await pilot.press("right", "down")
        await pilot.pause()
        assert all(s.cell_length >= 0 for s in tiny.query_one(LayerHeatmap).frame_strips())


async def test_hover_names_the_cell_and_its_raw_value():
    app = HeatmapApp()
    async with app.run_test(size=(60, 16)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        await pilot.hover(LayerHeatmap, offset=(heatmap.gutter_width + 6 * 3 + 1, AXIS_ROWS + 2))
        await pilot.pause()
        value = grid(6, 64)[2, 6]
        assert heatmap.value_at(2, 6) == pytest.approx(value, rel=1e-6)
        assert str(heatmap.tooltip) == (
            f"layer 2 · token 6 '·Paris' (prompt)\nvalue: {np.float32(value):.4g}"
        )
        await pilot.hover(LayerHeatmap, offset=(heatmap.gutter_width + 9 * 3, AXIS_ROWS + 0))
        await pilot.pause()
        assert "token 9 '·It' (generated)" in str(heatmap.tooltip)
        await pilot.hover(LayerHeatmap, offset=(0, 0))  # the corner: no cell
        await pilot.pause()
        assert heatmap.tooltip is None


async def test_zoom_cycles_column_width_and_keeps_the_cursor_in_view():
    app = HeatmapApp(n_layers=4, n_tokens=200)
    async with app.run_test(size=(60, 12)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        await pilot.press("end")
        assert heatmap.cell_width == 3
        await pilot.press("z")
        await pilot.pause()
        assert heatmap.cell_width == 5
        assert heatmap.virtual_size.width == heatmap.gutter_width + 200 * 5
        labels_row = heatmap.frame_strips()[1].text
        assert "·Pari" in labels_row or "·It" in labels_row  # five characters of each label
        x = heatmap.gutter_width + 199 * 5 - heatmap.scroll_offset.x
        assert heatmap.gutter_width <= x <= heatmap.scrollable_content_region.width - 5
        await pilot.press("z")
        assert heatmap.cell_width == 2
        await pilot.press("z")
        assert heatmap.cell_width == 3


async def test_live_growth_from_nothing_keeps_every_new_token_in_view():
    app = HeatmapApp(n_layers=3, n_tokens=0, n_prompt=6)
    async with app.run_test(size=(40, 10)) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        await pilot.pause()
        assert heatmap.n_tokens == 0
        for n in [6, *range(7, 40)]:  # the prompt's pass, then one generated token at a time
            app.show(n)
            await pilot.pause()
            newest = heatmap.gutter_width + (n - 1) * 3 - heatmap.scroll_offset.x
            assert heatmap.gutter_width <= newest <= heatmap.scrollable_content_region.width - 3
        assert heatmap.scroll_x > 0


async def test_a_new_token_column_does_not_lay_out_the_screen_again():
    """virtual_size is a layout reactive: growing by a column re-laid out the whole screen
    (the costliest part of a live frame). Only a scrollbar appearing needs a layout."""

    class One(App):
        def compose(self):
            yield LayerHeatmap(id="h")

    app = One()
    async with app.run_test(size=(80, 20)) as pilot:
        heat = app.query_one(LayerHeatmap)
        values = np.random.default_rng(0).random((4, 200))
        heat.set_data(values, values, [str(i) for i in range(200)], 3)
        await pilot.pause()
        layouts = []
        original = heat.screen._refresh_layout

        def counted(*args, **kwargs):
            layouts.append(1)
            return original(*args, **kwargs)

        heat.screen._refresh_layout = counted
        for n in range(201, 206):
            grown = np.random.default_rng(n).random((4, n))
            heat.set_data(grown, grown, [str(i) for i in range(n)], 3)
            await pilot.pause()
        assert heat.virtual_size.width == heat.gutter_width + 205 * heat.cell_width
        assert layouts == []
