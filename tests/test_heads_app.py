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


@pytest.fixture
def anyio_backend():
    return "asyncio"


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
