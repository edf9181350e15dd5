"""Long model tasks in the live app (issue 9 items 12 and 17): attribution asked for during a
run waits for its end, shows progress and Esc cancels it; a burst of keys in the heads view
leaves one pattern request, not one per key; a new run resets what views kept of the last.

A tiny random Llama, slowed down by a forward pre-hook so that runs and tasks last long
enough to press keys during them.
"""

from __future__ import annotations

import time

import pytest

from _fixtures_app import tiny_llama_bundle
from _fixtures_app import wait_until as wait_for
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.views import heads as heads_module

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.anyio
SIZE = (120, 40)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture
def slow(tiny):
    """Every forward pass of the tiny model takes `delay[0]` seconds longer."""
    delay = [0.0]
    handle = tiny.model.register_forward_pre_hook(lambda *a: time.sleep(delay[0]))
    yield delay
    handle.remove()


def live_app(tiny, tmp_path, n: int = 4) -> NeuroscopeApp:
    generation = {"max_new_tokens": n, "stop_at_eos": False}
    return NeuroscopeApp(model=tiny, save_dir=tmp_path, generation=generation)


async def start(pilot, app, text: str) -> None:
    app.query_one("#prompt").focus()
    await pilot.press(*text, "enter")


def done(app) -> bool:
    return app.figures.state.startswith(("done", "failed"))


def status(app) -> str:
    return str(app.query_one("#attr-status").render())


def notices(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_before_any_run_attribution_says_run_a_prompt_first(tiny, tmp_path):
    app = live_app(tiny, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape", "8")
        await pilot.pause()
        assert "run a prompt first" in str(app.query_one("#attr-prompt").render())
        await pilot.press("a")
        await pilot.pause()
        assert any("run a prompt first" in n for n in notices(app))
        assert not any("needs the live model" in n for n in notices(app))


async def test_attribution_during_a_run_waits_for_its_end_then_is_kept(tiny, tmp_path, slow):
    # a long, slowed run: frames on screen are paced (one may come only every 2 s), so the
    # run must outlast a few frames for `a` to come while it still goes
    app = live_app(tiny, tmp_path, n=200)
    async with app.run_test(size=SIZE) as pilot:
        slow[0] = 0.05
        await start(pilot, app, "The cat sat")
        await wait_for(lambda: app.shown is not None and app.shown.n_generated >= 2)
        assert app.engine.running
        await pilot.press("8", "a")
        await pilot.pause()
        assert any("will run when generation ends" in n for n in notices(app))
        assert "runs when generation ends" in status(app)
        asked_at = app.shown.n_tokens
        # generation goes on meanwhile: the attribution does not run between two steps (the
        # worker's own count: frames on screen are paced, one may come every 2 s)
        await wait_for(lambda: app.engine.latest.n_tokens >= asked_at + 5)
        assert app.engine.pending("attribution")
        slow[0] = 0.0
        await wait_for(lambda: done(app))
        view = app.view
        await wait_for(lambda: not view.busy)
        note = app.shown.notes.get("attribution")
        # the last token when `a` was pressed, not the run's last
        assert note is not None and note["position"] <= asked_at - 1 < app.shown.n_tokens - 5
        assert "attribution.occlusion" in app.shown.extras  # in the trace `s` saves
        await pilot.press("s")
        await pilot.pause()
        from neuroscope_tui.snapshot import load_snapshot

        assert "attribution.occlusion" in load_snapshot(app.last_saved).extras


async def test_attribution_shows_progress_and_escape_cancels_it(tiny, tmp_path, slow):
    app = live_app(tiny, tmp_path, n=2)
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, app, "The cat sat on the mat")
        await wait_for(lambda: done(app))
        await pilot.press("8")
        await pilot.pause()
        slow[0] = 0.4  # every chunk of the attribution
        await pilot.press("a")
        view = app.view
        await wait_for(lambda: view.progress is not None and "/" in view.progress[1])
        line = status(app)
        assert "Esc or c cancels" in line and "%" in line
        assert line.startswith(("occlusion", "integrated gradients"))
        await pilot.press("escape")
        await pilot.pause()
        assert not view.busy and "attribution cancelled" in status(app)
        assert any("cancelled: attribution" in n for n in notices(app))
        await wait_for(lambda: app.engine.current is None, timeout=10)  # the worker stopped
        assert "attribution" not in app.shown.notes
        slow[0] = 0.0
        await pilot.press("a")  # and it can be asked again
        await wait_for(lambda: not view.busy and "attribution" in app.shown.notes)


async def test_a_new_run_resets_position_foil_and_attribution(tiny, tmp_path):
    app = live_app(tiny, tmp_path, n=3)
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, app, "The cat sat on the mat")
        await wait_for(lambda: done(app))
        await pilot.press("8", "comma", "comma", "f", *" dog", "enter")
        view = app.view
        assert view.target is not None and view.foil == " dog"
        await pilot.press("a")
        await wait_for(lambda: not view.busy and "attribution" in app.shown.notes)
        await start(pilot, app, "A bird flew")
        await wait_for(lambda: done(app))
        await pilot.pause()
        assert view.target is None and view.foil is None
        assert "attribution" not in app.shown.notes
        assert "' dog'" not in status(app)
        assert f"position {app.shown.n_tokens - 1}" in status(app)  # the new run's last token


async def test_a_burst_of_keys_in_the_heads_view_keeps_one_pattern_request(
    tiny, tmp_path, slow, monkeypatch
):
    computed: list[list[tuple[int, int]]] = []
    original = heads_module.patterns_or_error

    def counting(bundle, token_ids, heads, run=None):
        computed.append(list(heads))
        return original(bundle, token_ids, heads, run)

    monkeypatch.setattr(heads_module, "patterns_or_error", counting)
    app = live_app(tiny, tmp_path, n=1000)  # until the context (128) is full
    async with app.run_test(size=SIZE) as pilot:
        slow[0] = 0.15
        await start(pilot, app, "The cat sat")
        await wait_for(lambda: app.shown is not None and app.shown.n_generated >= 2)
        await pilot.press("2")
        waiting = []
        for i in range(50):
            await pilot.press("right" if i % 4 else "down")
            waiting.append(len(app.engine.pending("patterns view-heads")))
        assert max(waiting) <= 1
        t0 = time.monotonic()
        # the screen catches up within a few seconds of the burst: the selected head's
        # pattern is drawn while the run still goes on
        grid = app.query_one("#pattern")
        layer, head = app.selection.layer, app.selection.head
        await wait_for(lambda: grid.pattern is not None, timeout=30)
        assert time.monotonic() - t0 < 10  # about 0.3 s on a quiet machine
        assert f"L{layer}.H{head}" in str(app.query_one("#pattern-title").render())
        assert not done(app)  # still generating
        assert len(computed) < 25  # not one forward pass per key (nor per token)
        await pilot.press("escape")  # stop the run
        await wait_for(lambda: done(app))
        shown = app.shown
        assert shown.arrays["heads.entropy"].shape[1] == shown.n_tokens
