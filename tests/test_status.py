"""tui/widgets/status.py, colorbar.py and head_grid.py at 80x24 (issue 9 item 22): the header,
the token count and the colour-bar legend fit; a heads grid wider than the screen says how
many heads are off to the right."""

from __future__ import annotations

import re

import numpy as np
import pytest
from textual.app import App, ComposeResult

from _fixtures_app import SCAN_FIXTURE
from _fixtures_e2e import long_trace
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.widgets.colorbar import colorbar_text
from neuroscope_tui.tui.widgets.head_grid import HeadGrid
from neuroscope_tui.tui.widgets.status import HeaderFigures, StatusHeader, header_text

pytestmark = pytest.mark.anyio


def test_header_drops_the_least_needed_figures_first():
    f = HeaderFigures(
        "HuggingFaceTB/SmolLM2-135M", "cuda:0", "bfloat16", "running", 12.34, 5 << 20, 3 << 30
    )
    full = header_text(f).plain
    assert full.endswith("running · 12.3 tok/s · 5 MiB captured · GPU 3 GiB")
    assert header_text(f, len(full)).plain == full
    at80 = header_text(f, 80).plain
    assert len(at80) <= 80 and "SmolLM2-135M · " in at80 and "running · 12.3 tok/s" in at80
    assert "bfloat16" not in at80  # the dtype went first
    narrow = header_text(f, 50).plain
    assert "running" in narrow and "tok/s" not in narrow


def test_colour_bar_at_the_scan_views_80_column_width_keeps_the_normalisation():
    plain = colorbar_text(44, "residual norm", "||x||", 4.08, 31.7, "global", clipped=True).plain
    assert plain.startswith("residual norm · global  ≤4.08 ") and plain.endswith(" ≥31.7")
    assert len(plain) == 44


async def test_at_80x24_header_and_token_count_are_whole(tmp_path):
    trace = long_trace()
    app = NeuroscopeApp(snapshot=trace, snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        header = app.query_one(StatusHeader)
        shown = header.render().plain
        assert len(shown) <= 80 and f"snapshot {SCAN_FIXTURE.name}" in shown
        run_line = str(app.query_one("#run-line").render())
        count = f"[{trace.n_prompt} prompt + {trace.n_generated} generated tokens]"
        assert run_line.startswith(count)  # first, so a long prompt cannot cut it
        assert app.query_one("#run-line").size.width >= len(count)
        # and the prompt follows on the same line, cut at its end (it used to wrap away)
        shown = re.sub(r"<[^>]+>", "", app.export_screenshot()).replace("&#160;", " ")
        assert f"{count}  The·capital·of·France" in shown


class _GridHost(App):
    def compose(self) -> ComposeResult:
        yield HeadGrid(id="head-grid")

    def on_mount(self) -> None:
        grid = self.query_one(HeadGrid)
        grid.styles.width = 5 + 5 * 8  # room for 8 of 9 heads, as at 80 columns
        grid.show(np.linspace(0, 1, 30 * 9).reshape(30, 9), [], list(range(30)))
        grid.focus()


async def test_heads_grid_says_how_many_heads_are_off_screen():
    app = _GridHost()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        grid = app.query_one(HeadGrid)
        header = grid.render_line(0).text
        # 45 columns less the scrollbar: labels and 7 whole heads; 2 more to the right
        assert grid.heads_right_of_view() == 2
        assert len(header) == grid.scrollable_content_region.width
        assert header.endswith("+2→")
        await pilot.press(*["right"] * 8)  # the cursor on the last head scrolls it into view
        await pilot.pause()
        assert grid.heads_right_of_view() == 0 and "→" not in grid.render_line(0).text
