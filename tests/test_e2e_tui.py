"""The app as a new user meets it: a snapshot opened in an 80x24 terminal, every view key and
each view's own keys, on a run wider than the screen and on a one-token run; then the real
`neuroscope-tui view` in tmux at 80x24 (cursor on screen, every view, clean quit)."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from textual.app import App, ComposeResult

from _fixtures_app import synthetic_trace
from _fixtures_e2e import long_trace
from neuroscope_tui.snapshot import save_snapshot
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.engine import trace_upto
from neuroscope_tui.tui.widgets.colorbar import colorbar_text
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap
from tmux_terminal import private_tmux

pytestmark = pytest.mark.anyio


def cursor_on_screen(heat: LayerHeatmap) -> bool:
    """Whether the heatmap's cursor cell lies inside its visible data area."""
    row, token = heat.cursor
    x = heat.gutter_width + token * heat.cell_width - heat.scroll_offset.x
    y = 2 + row - heat.scroll_offset.y  # two axis rows on top
    region = heat.scrollable_content_region
    return heat.gutter_width <= x <= region.width - heat.cell_width and 2 <= y < region.height


@pytest.mark.parametrize("view", ["1", "4", "6"])
async def test_the_cursor_is_on_screen_when_a_wide_run_opens_in_80_columns(tmp_path, view):
    """55 tokens overflow the heatmap at 80x24; the cursor (token 0) must still be visible.

    Before the fix the heatmap followed "the newest token" on its first data and scrolled
    the cursor off the left edge, in the scan, residual and lens views alike."""
    app = NeuroscopeApp(snapshot=long_trace(), snapshot_path="long.nscope", save_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(view)
        await pilot.pause(0.3)
        heats = [h for h in app.query(LayerHeatmap) if h.display and h.region.width]
        assert heats, "no heatmap on screen"
        for heat in heats:
            assert heat.max_scroll_x > 0  # the run really is wider than the screen
            assert heat.cursor[1] == 0 and cursor_on_screen(heat), heat.scroll_offset
        await pilot.press("end")  # and the last token is reachable
        await pilot.pause(0.1)
        for heat in heats:
            assert heat.cursor[1] == 54 and cursor_on_screen(heat)


VIEW_KEYS = {
    "1": ["m", "n", "o", "u", "z", "right", "down", "end", "pagedown", "home", "G", "g"],
    "2": ["c", "g", "right", "down", "]", "}", "[", "{"],
    "3": ["c", "c", "c", "right", "down"],
    "4": ["m", "m", "m", "right", "down"],
    "5": ["f", "o", ",", ".", "right"],
    "6": ["m", "m", "right", "down"],
    "7": ["m", "m", "m", "a", "k", "plus", "minus", "l", "p"],
    "8": ["m", "a"],
}


@pytest.mark.parametrize("n_tokens", [1, 2])  # 11 tokens: the views' own pilot tests
async def test_every_view_and_its_keys_survive_a_short_run_in_80x24(tmp_path, n_tokens):
    """Short runs are where views divide by zero or ask t-SNE for 3 points; each must say so
    in a notice or on screen, never crash the app."""
    trace = trace_upto(synthetic_trace(), n_tokens)
    trace.finished = True
    app = NeuroscopeApp(snapshot=trace, snapshot_path="short.nscope", save_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        for view, keys in VIEW_KEYS.items():
            await pilot.press(view)
            await pilot.pause(0.05)
            await pilot.press(*keys)
            await pilot.pause(0.1)
            assert app.is_running, f"the app stopped in view {view}"
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        await pilot.press("escape", "s")
        await pilot.pause(0.2)
    assert app.return_code in (None, 0)
    saved = list(tmp_path.glob("*.nscope"))
    assert len(saved) == 1


def test_the_colour_bar_shows_nothing_rather_than_empty_brackets():
    assert colorbar_text(60, "", "", float("nan"), float("nan"), "global").plain == ""
    plain = colorbar_text(60, "block change", "", 0.0, 1.0, "global").plain
    assert plain.startswith("block change · global") and "[]" not in plain
    plain = colorbar_text(80, "residual norm", "||x||", 0.0, 1.0, "per layer").plain
    assert plain.startswith("residual norm [||x||] · per layer")


# ---- the real program in tmux -------------------------------------------------------------

SOCKET, tmux, wait_for = private_tmux("nscope-e2e")  # a private server, shared with no one


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_view_in_a_real_80x24_terminal(tmp_path: Path):
    snap = save_snapshot(long_trace(), tmp_path / "long.nscope")
    session, status = "e2e", tmp_path / "status"
    cmd = (
        f"cd {shlex.quote(str(tmp_path))} && {shlex.quote(sys.executable)} -m neuroscope_tui "
        f"view {shlex.quote(str(snap))}; echo $? > {status}; sleep 30"  # (Textual draws on stderr)
    )
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd)
    try:
        pane = wait_for(session, "layer 0 · token 0")
        assert "[■]" in pane  # the cursor cell is drawn, not scrolled away
        for view, marker in [
            ("2", "h0"),
            ("3", "connectivity"),
            ("4", "residual"),
            ("5", "information flow"),
            ("6", "logit lens"),
            ("7", "projection"),
            ("8", "attribution"),
            ("1", "layer 0 · token 0"),
        ]:
            tmux("send-keys", "-t", session, view)
            pane = wait_for(session, marker)
            assert "Traceback" not in pane
        tmux("send-keys", "-t", session, "q")
        end = time.monotonic() + 20
        while not status.exists() and time.monotonic() < end:
            time.sleep(0.2)
        assert status.read_text().strip() == "0"
        pane = tmux("capture-pane", "-p", "-t", session)
        assert "synthetic-6L" not in pane  # the screen was handed back
        assert "Traceback" not in pane and "Error" not in pane
    finally:
        tmux("kill-server")  # this test's private server only


class _TallHeatmapApp(App):
    """A heatmap with more layers than rows, so a vertical scrollbar takes the last column."""

    def compose(self) -> ComposeResult:
        yield LayerHeatmap()

    def on_mount(self) -> None:
        values = np.linspace(0, 1, 30 * 40).reshape(30, 40)
        labels = [f" w{i}" for i in range(40)]
        self.query_one(LayerHeatmap).set_data(values, values, labels, 30)
        self.query_one(LayerHeatmap).focus()


async def test_the_cursor_token_on_the_axis_is_not_hidden_under_the_scrollbar():
    """At the last token the axis says "▼ w39 #39" in full left of the vertical scrollbar
    (it used to lose its last character under it: "#3")."""
    app = _TallHeatmapApp()
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.press("end")
        await pilot.pause()
        heat = app.query_one(LayerHeatmap)
        assert heat.max_scroll_y > 0  # the scrollbar is there
        visible = heat.scrollable_content_region.width
        axis = "".join(seg.text for seg in heat.render_line(0))
        assert axis[:visible].rstrip().endswith("▼·w39 #39"), axis
