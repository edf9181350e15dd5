"""The heads view with the pilot: navigation across layers and heads, scores, patterns on demand."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from _fixtures_heads import IDS, HeadsHost, all_patterns, make_trace, probe_row
from neuroscope_tui.analysis.heads import SCORE_NAMES, head_scores
from neuroscope_tui.tui.widgets.head_grid import HeadGrid
from neuroscope_tui.tui.widgets.pattern import (
    N_COLOURS,
    PatternGrid,
    buckets,
    query_weights_text,
    shrink,
    to_unit,
)

SIZE = (120, 40)


def view_of(app: HeadsHost):
    return app.query_one("#heads")


@pytest.mark.anyio
async def test_arrows_move_across_layers_and_heads():
    app = HeadsHost(make_trace())
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await pilot.press("right", "right", "down")
        assert (view.selection.layer, view.selection.head) == (1, 2)
        grid = app.query_one(HeadGrid)
        assert (grid.row, grid.head) == (1, 2)
        # edges clamp: 3 layers, 4 heads
        await pilot.press("down", "down", "down", "right", "right", "right")
        assert (view.selection.layer, view.selection.head) == (2, 3)
        await pilot.press("up", "left")
        assert (view.selection.layer, view.selection.head) == (1, 2)


@pytest.mark.anyio
async def test_bracket_keys_step_layers_and_heads_from_the_pattern_panel():
    app = HeadsHost(make_trace())
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        app.query_one(PatternGrid).focus()
        await pilot.press("]", "]", "}")
        assert (view.selection.layer, view.selection.head) == (2, 1)
        await pilot.press("[", "{", "{")
        assert (view.selection.layer, view.selection.head) == (1, 0)
        assert (app.query_one(HeadGrid).row, app.query_one(HeadGrid).head) == (1, 0)


@pytest.mark.anyio
async def test_score_key_cycles_the_grid_colouring():
    trace = make_trace()
    expected = head_scores(trace).values
    app = HeadsHost(trace)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        grid = app.query_one(HeadGrid)
        seen = []
        for _ in SCORE_NAMES:
            seen.append(view.score_name)
            np.testing.assert_allclose(grid.values, expected[view.score_name])
            await pilot.press("c")
        assert sorted(seen) == sorted(SCORE_NAMES)
        assert view.score_name == seen[0]
        # the type letters: L0.H0 previous-token + redundant with L1.H2, L0.H1 induction
        assert grid.letters[0][:2] == ["PR", "I"]


@pytest.mark.anyio
async def test_entropy_derived_after_the_run_reaches_the_grid():
    """A long prompt's entropy arrives after the run, in place in the same trace
    (capture/derive_entropy.py): the next refresh shows it, not the scores from before."""
    trace = make_trace()
    entropy = trace.arrays["heads.entropy"]
    kept = entropy.copy()
    entropy[:] = np.nan
    app = HeadsHost(trace)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        grid = app.query_one(HeadGrid)
        while view.score_name != "entropy":
            await pilot.press("c")
        assert np.isnan(grid.values).all()
        entropy[:] = kept  # what derive_entropy does, in the worker
        view.refresh_view()
        await pilot.pause()
        np.testing.assert_allclose(grid.values, head_scores(trace).values["entropy"])


@pytest.mark.anyio
async def test_pattern_panel_shows_the_selected_heads_pattern_and_query():
    trace = make_trace()
    app = HeadsHost(trace)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(PatternGrid)
        np.testing.assert_array_equal(panel.pattern, trace.arrays["pattern.0.0"])
        assert panel.labels == trace.token_text
        panel.focus()
        await pilot.press("down", "down", "down")
        assert view_of(app).selection.token == 3 and panel.query == 3
        query_text = str(app.query_one("#head-query").render())
        # a previous-token head: query 3 puts all its weight on key 2
        assert "top keys: 2 ·sat 1.000" in query_text
        await pilot.press("g")
        assert panel.log_scale
        await pilot.press("pagedown", "pagedown")
        assert panel.query == len(IDS) * 2 - 1  # clamped to the last query


@pytest.mark.anyio
async def test_view_mode_says_when_a_pattern_is_missing():
    app = HeadsHost(make_trace())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("right", "right")  # L0.H2: not kept by the run
        panel = app.query_one(PatternGrid)
        assert panel.pattern is None
        assert "lacks" in panel.message
        assert app.tasks == []


@pytest.mark.anyio
async def test_live_patterns_are_computed_on_demand_and_dropped_off_screen():
    trace = make_trace(keep_patterns=((0, 0),))
    app = HeadsHost(trace, live=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("right")
        assert app.tasks[-1] == [(0, 1)]
        np.testing.assert_allclose(
            app.query_one(PatternGrid).pattern, all_patterns(trace.n_tokens)[0][1]
        )
        await pilot.press("down")
        assert app.tasks[-1] == [(1, 1)]
        held = sorted(k for k in trace.arrays if k.startswith("pattern."))
        # the run's own pattern stays; of the computed ones only the head on screen is kept
        assert held == ["pattern.0.0", "pattern.1.1"]


@pytest.mark.anyio
async def test_a_failed_pattern_request_is_said_and_not_retried_in_a_loop():
    app = HeadsHost(make_trace(keep_patterns=()), live=True, fail="RuntimeError: boom")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        panel = app.query_one(PatternGrid)
        assert panel.pattern is None
        assert "could not compute the pattern: RuntimeError: boom" in panel.message
        n_tasks = len(app.tasks)
        await pilot.press("c", "g")
        assert len(app.tasks) == n_tasks
        await pilot.press("right")  # another head is still asked for
        assert app.tasks[-1] == [(0, 1)] and len(app.tasks) == n_tasks + 1


@pytest.mark.anyio
async def test_probe_key_marks_types_from_the_induction_probe():
    trace = make_trace()
    app = HeadsHost(trace, live=True)
    async with app.run_test(size=SIZE) as pilot:
        grid = app.query_one(HeadGrid)
        assert grid.letters[2][1] == ""
        await pilot.press("p")
        assert app.probes == 1
        assert grid.letters[2][1] == "I" and grid.letters[0][0] == ""  # the probe's types now
        assert trace.notes["heads_probe"]["heads"][9]["types"] == ["induction"]
        await pilot.press("down", "down", "right")
        summary = str(app.query_one("#head-summary").render())
        assert "on the probe: induction" in summary


@pytest.mark.anyio
async def test_after_the_probe_colours_and_letters_come_from_the_probe():
    """Issue 9 item 20: the letters showed the probe's types but the colours this run's."""
    trace = make_trace()
    app = HeadsHost(trace, live=True)
    async with app.run_test(size=SIZE) as pilot:
        grid = app.query_one(HeadGrid)
        own = head_scores(trace)
        np.testing.assert_allclose(grid.values, own.values["induction"])
        await pilot.press("p")
        for name in ("induction", "prev", "entropy"):
            expected = np.array(
                [[np.nan if (v := probe_row(lay, h)[name]) is None else v for h in range(4)]
                 for lay in range(3)]
            )  # fmt: skip
            np.testing.assert_allclose(grid.values, expected)
            assert not np.allclose(
                grid.values[~np.isnan(expected)], own.values[name][~np.isnan(expected)]
            )
            summary = str(app.query_one("#head-summary").render())
            assert f"colour: {name} on the probe" in summary
            await pilot.press(*["c"] * {"induction": 3, "prev": 4, "entropy": 0}[name])
        assert grid.letters[2][1] == "I"


@pytest.mark.anyio
async def test_probe_key_without_a_model_asks_for_one():
    app = HeadsHost(make_trace())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert app.probes == 0
        assert app.query_one(HeadGrid).letters[0][0] == "PR"


@pytest.mark.anyio
async def test_big_terminal_draws_small_multiples_of_the_layer():
    trace = make_trace(keep_patterns=())
    app = HeadsHost(trace, live=True)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        view = view_of(app)
        assert view.has_class("-big")
        assert sorted({h for task in app.tasks for h in task}) == [(0, h) for h in range(4)]
        held = {k for k in trace.arrays if k.startswith("pattern.")}
        assert held == {f"pattern.0.{h}" for h in range(4)}
        console = Console(width=160, record=True)
        console.print(app.query_one("#head-multiples").content)
        multiples = console.export_text()
        assert all(f"L0.H{h}" in multiples for h in range(4))
        assert multiples.count("▀") == 4 * 14 * 7  # 14 tokens: 14 x 14 bins, 2 rows a line


@pytest.mark.anyio
async def test_newest_query_row_is_marked_during_generation():
    trace = make_trace(finished=False)
    app = HeadsHost(trace)
    async with app.run_test(size=SIZE):
        panel = app.query_one(PatternGrid)
        assert panel.newest == trace.n_tokens - 1
        strip = panel._row_strip(panel.newest, (0, trace.n_tokens))
        assert strip.text.startswith("▶  13")


def test_pattern_row_draws_the_causal_triangle_and_real_colours():
    grid = PatternGrid()
    p = all_patterns(14)[0][2]  # uniform head
    grid.pattern, grid.labels = p, ["t"] * 14
    strip = grid._row_strip(3, (0, 14))
    cells = list(strip)[1:]
    assert len(cells) == 4 + 1  # 4 visible keys, then one run of dots for the 10 future keys
    assert cells[-1].text == "· " * 10
    bucket = buckets(np.array([0.25]))[0]
    assert bucket == int(0.25 * N_COLOURS)
    from neuroscope_tui.tui.widgets.pattern import cell_styles

    assert all(c.style == cell_styles()[bucket] for c in cells[:4])


def test_colour_scales():
    w = np.array([0.0, 1e-4, 1e-2, 1.0, np.nan])
    np.testing.assert_allclose(to_unit(w, log=False), [0, 1e-4, 1e-2, 1, 0])
    np.testing.assert_allclose(to_unit(w, log=True), [0, 0, 0.5, 1, 0])
    assert buckets(np.array([1.0]))[0] == N_COLOURS - 1


def test_one_query_text_and_thumbnail():
    p = all_patterns(14)[0][1]  # induction head
    text = query_weights_text(p[10], ["a"] * 14, 10)
    console = Console(width=200, record=True)
    console.print(text)
    assert "top keys: 4 a 1.000" in console.export_text()
    big = np.tril(np.ones((40, 40))) / np.arange(1, 41)[:, None]
    small = shrink(big, 8)
    assert small.shape == (8, 8)
    assert small[0, 0] == pytest.approx(big[:5, :5].mean())


def test_heads_view_imports_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import neuroscope_tui.tui.views.heads, neuroscope_tui.analysis.heads\n"
        "import neuroscope_tui.cli.heads\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.anyio
async def test_probe_types_travel_in_a_snapshot(tmp_path):
    from neuroscope_tui.snapshot import load_snapshot, save_snapshot

    trace = make_trace()
    rows = [{"layer": 1, "head": 3, "types": ["sink"]}]
    trace.notes["heads_probe"] = {"model": "fixture", "length": 50, "seed": 0, "heads": rows}
    loaded = load_snapshot(save_snapshot(trace, tmp_path / "probe.nscope"))
    app = HeadsHost(loaded)
    async with app.run_test(size=SIZE):
        letters = app.query_one(HeadGrid).letters
        assert letters[1][3] == "S" and letters[0][0] == ""
