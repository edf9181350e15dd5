"""tui/commands.py: the command palette reaches the actions of the view on screen and of its
widgets, by name or by what they do, and runs them on the right widget (issue 9 item 21)."""

from __future__ import annotations

import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from neuroscope_tui.analysis.heads import SCORE_NAMES
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.widgets.head_grid import HeadGrid

SIZE = (120, 40)
pytestmark = pytest.mark.anyio


async def palette(pilot, query: str) -> list[str]:
    """Open the palette, type `query`; the prompts it lists (then Enter runs the first)."""
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*query)
    await pilot.pause(0.5)
    options = pilot.app.screen.query_one("CommandList")._options
    return [str(o.prompt) for o in options]


async def test_metric_finds_the_heads_views_score_and_runs_it_there(tmp_path):
    app = NeuroscopeApp(
        snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        before = app.view.score_name
        found = await palette(pilot, "metric")
        assert found and found[0].startswith("score") and "heads view · key c" in found[0]
        await pilot.press("enter")
        await pilot.pause(0.3)
        i = SCORE_NAMES.index(before)
        assert app.view.score_name == SCORE_NAMES[(i + 1) % len(SCORE_NAMES)]
        # a widget's own key (the grid's arrows) runs on that widget
        found = await palette(pilot, "next head")
        assert any("head grid · key right" in f for f in found)
        grid = app.query_one(HeadGrid)
        head = grid.head
        index = next(i for i, f in enumerate(found) if "head grid · key right" in f)
        await pilot.press(*["down"] * index, "enter")
        await pilot.pause(0.3)
        assert grid.head == head + 1


async def test_every_view_key_is_in_the_palette(tmp_path):
    from neuroscope_tui.tui.commands import ActionCommands
    from neuroscope_tui.tui.help import as_bindings
    from neuroscope_tui.tui.views.registry import VIEWS

    app = NeuroscopeApp(
        snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path
    )
    async with app.run_test(size=SIZE) as pilot:
        for entry in VIEWS:
            await pilot.press(entry.key)
            await pilot.pause()
            provider = ActionCommands(app.screen)
            names = {c.name for c in provider._commands()}
            wanted = {b.description for b in as_bindings(app.view.BINDINGS) if b.description}
            assert wanted <= names, entry.name
