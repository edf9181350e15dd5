"""The heads view in the real app: live (patterns from the model worker) and view mode."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest

from _fixtures_app import tiny_llama_bundle
from _fixtures_heads import make_trace
from neuroscope_tui.analysis.heads import head_scores
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.views.heads import HeadsView
from neuroscope_tui.tui.widgets.head_grid import HeadGrid
from neuroscope_tui.tui.widgets.pattern import PatternGrid

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.anyio
SIZE = (120, 40)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny-heads-app") / "llama")


async def wait_for(pilot, condition, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the app"
        await pilot.pause(0.05)


async def test_live_app_heads_view_computes_the_selected_pattern(tiny, tmp_path):
    app = NeuroscopeApp(model=tiny, save_dir=tmp_path, generation={"max_new_tokens": 3})
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#prompt").focus()
        await pilot.press(*"The cat sat on the mat", "enter")
        await wait_for(pilot, lambda: app.figures.state.startswith(("done", "failed")))
        await pilot.press("2")
        await wait_for(pilot, lambda: app.query(HeadsView) and app.query_one(HeadsView).scores)
        trace = app.shown
        view = app.query_one(HeadsView)
        grid = app.query_one(HeadGrid)
        np.testing.assert_allclose(grid.values, head_scores(trace).values[view.score_name])

        await pilot.press("]", "}", "}")  # the app-wide keys: next layer, next head twice
        assert (view.selection.layer, view.selection.head) == (1, 2)
        assert (grid.row, grid.head) == (1, 2)
        panel = app.query_one(PatternGrid)
        await wait_for(pilot, lambda: panel.pattern is not None)

        ref = copy.deepcopy(tiny.model)
        ref.set_attn_implementation("eager")
        with torch.no_grad():
            out = ref(input_ids=torch.tensor([trace.token_ids]), output_attentions=True)
        np.testing.assert_allclose(panel.pattern, out.attentions[1][0, 2].numpy(), atol=1e-5)
        held = [k for k in trace.arrays if k.startswith("pattern.")]
        assert held == ["pattern.1.2"]


async def test_view_mode_heads_view_says_a_pattern_is_missing(tmp_path):
    trace = make_trace(keep_patterns=((0, 0),))
    app = NeuroscopeApp(snapshot=trace, snapshot_path=str(tmp_path / "fixture.nscope"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: app.query(HeadsView) and app.query_one(HeadsView).scores)
        panel = app.query_one(PatternGrid)
        np.testing.assert_array_equal(panel.pattern, trace.arrays["pattern.0.0"])
        await pilot.press("}")
        assert panel.pattern is None and "lacks" in panel.message


async def test_heads_view_during_a_run_keeps_every_array_in_step(tiny, tmp_path):
    """Issue 9 item 1: pressing 2 while tokens arrive asks the worker for a pattern between
    two steps; that pass used to switch the run's attention tap off, so the head scores
    stopped growing and the view indexed past their end (IndexError, the app gone)."""
    app = NeuroscopeApp(
        model=tiny, save_dir=tmp_path, generation={"max_new_tokens": 60, "stop_at_eos": False}
    )
    # 100 ms per token: the run lasts 6 s, long enough to press keys during it even on a
    # loaded machine
    handle = tiny.model.register_forward_pre_hook(lambda *a: time.sleep(0.1))
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.query_one("#prompt").focus()
            await pilot.press(*"the cat sat on the mat and", "enter")
            await wait_for(pilot, lambda: app.shown is not None and app.shown.n_generated > 0)
            await pilot.press("2")
            pressed = 0
            while app.engine.running:
                await pilot.press("}", "]", "c", "g", "{")
                pressed += 1
            await wait_for(pilot, lambda: app.figures.state.startswith(("done", "failed")))
            assert app.figures.state == "done (length)" and pressed >= 1
            trace = app.shown
            assert trace.n_generated == 60
            for name, arr in trace.arrays.items():
                if name.startswith("heads."):
                    assert arr.shape[1] == trace.n_tokens, name
            view = app.query_one(HeadsView)
            await wait_for(pilot, lambda: view._scored_at is not None)
            np.testing.assert_allclose(
                app.query_one(HeadGrid).values, head_scores(trace).values[view.score_name]
            )
    finally:
        handle.remove()
