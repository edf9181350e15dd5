"""The scan view while a run adds tokens (tui/views/scan.py): each frame draws the cursor's cell
once (the heatmap's CursorMoved for the frame's own cursor move draws nothing again), the
plots follow the newest token at most every PLOT_INTERVAL, and the run's end draws them over
the whole run. The model is a tiny random Llama; each step is slowed down so a run spans
several frames."""

from __future__ import annotations

import itertools
import time

import pytest

from _fixtures_app import tiny_llama_bundle, wait_until
from neuroscope_tui.tui import views
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.pacing import RedrawPacer
from neuroscope_tui.tui.views import scan
from neuroscope_tui.tui.widgets.detail import DetailPanel

pytest.importorskip("torch")
pytestmark = pytest.mark.anyio
SIZE = (120, 40)
NEW_TOKENS = 10


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny") / "llama")


async def run_slowly(tiny, tmp_path, monkeypatch, plot_interval: float):
    """Run a prompt with every step slowed to 40 ms and frames as often as MIN_INTERVAL;
    return (the app, [(plot id, values drawn)], [(trace, n_tokens, row, token) per detail
    drawn], [heatmap widths drawn])."""
    assert views is not None
    monkeypatch.setattr(scan, "PLOT_INTERVAL", plot_interval)
    plots: list[tuple[str, int]] = []
    details: list[tuple[object, int, int, int]] = []

    def draw_series(plot, title, values, cursor, ylim=None):
        plots.append((plot.id, len(values)))

    show = DetailPanel.show

    def detail_show(self, trace, row, token, decode):
        details.append((trace, getattr(trace, "n_tokens", 0), row, token))
        show(self, trace, row, token, decode)

    monkeypatch.setattr(scan, "draw_series", draw_series)
    monkeypatch.setattr(DetailPanel, "show", detail_show)
    app = NeuroscopeApp(
        model=tiny, save_dir=tmp_path,
        generation={"max_new_tokens": NEW_TOKENS, "stop_at_eos": False, "lens": False},
    )  # fmt: skip
    app.pacer = RedrawPacer(share=1.0)  # a frame whenever MIN_INTERVAL has passed
    serve = app.engine.run_tasks

    def slow_step(model, **kw):
        if kw.get("between_steps"):
            time.sleep(0.04)
        serve(model, **kw)

    app.engine.run_tasks = slow_step
    widths: list[int] = []
    async with app.run_test(size=SIZE) as pilot:
        heatmap = app.query_one("#heatmap")
        apply = app._apply_growth

        def spy():
            apply()
            widths.append(heatmap.n_tokens)

        app._apply_growth = spy
        app.query_one("#prompt").focus()
        await pilot.press(*"The cat sat", "enter")
        await wait_until(lambda: app.figures.state.startswith(("done", "failed")))
        await pilot.pause(0.1)
    return app, plots, details, widths


async def test_each_frame_draws_the_cell_once(tiny, tmp_path, monkeypatch):
    app, _, details, widths = await run_slowly(tiny, tmp_path, monkeypatch, 0.0)
    assert len(set(widths)) >= 3, "the run should span several frames"
    # the cursor followed the newest token to the end (a stale CursorMoved would stop it)
    assert app.follow and app.selection.token == app.shown.n_tokens - 1
    for before, after in itertools.pairwise(details):
        same = before[0] is after[0] and before[1:] == after[1:]
        assert not same, f"the detail panel was drawn twice for one cell: {after[1:]}"


async def test_plots_follow_every_frame_without_an_interval(tiny, tmp_path, monkeypatch):
    app, plots, _, _ = await run_slowly(tiny, tmp_path, monkeypatch, 0.0)
    drawn = [n for plot, n in plots if plot == "metric-plot"]
    assert len(set(drawn)) >= 3 and drawn[-1] == app.shown.n_tokens


async def test_plots_wait_while_following_and_end_on_the_whole_run(tiny, tmp_path, monkeypatch):
    app, plots, _, widths = await run_slowly(tiny, tmp_path, monkeypatch, 1e9)
    assert len(set(widths)) >= 3, "the run should span several frames"
    drawn = [n for plot, n in plots if plot == "metric-plot"]
    # the first frame (the prompt), then the run's end (a frame may land between the worker's
    # last step and RunEnded: drawn again at the same count): nothing in between
    final = app.shown.n_tokens
    assert drawn[0] < final and drawn[-1] == final
    assert set(drawn) == {drawn[0], final}
    assert [n for plot, n in plots if plot == "neuron-plot"] == drawn
