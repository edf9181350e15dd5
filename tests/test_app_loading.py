"""The app while its model loads: the layout opens at once, the prompt box takes typing, Enter
queues the prompt until the model is ready, Esc cancels it, and a load failure shows on screen.

The loader is replaced by a slow one that waits for the test's go-ahead (then returns a tiny
random Llama loaded by the real loader, or raises), so "before the model is ready" is a state
the test holds as long as it likes, not a race.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from _fixtures_app import tiny_llama_bundle
from _fixtures_app import wait_until as wait_for
from neuroscope_tui.errors import ModelLoadError
from neuroscope_tui.tui.app import NeuroscopeApp

pytest.importorskip("torch")
pytestmark = pytest.mark.anyio
SIZE = (120, 40)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny") / "llama")


class SlowLoader:
    """Stands in for `load_model`: says one step, then waits for `go` before answering."""

    def __init__(self, bundle=None, error: Exception | None = None) -> None:
        self.bundle, self.error = bundle, error
        self.go = threading.Event()
        self.names: list[str] = []

    def __call__(self, name, *, progress=None, **options):
        self.names.append(name)
        progress("reading weights")
        assert self.go.wait(60), "the test never let the load finish"
        if self.error is not None:
            raise self.error
        return self.bundle


@pytest.fixture
def slow(tiny, monkeypatch) -> SlowLoader:
    loader = SlowLoader(tiny)
    monkeypatch.setattr("neuroscope_tui.models.loader.load_model", loader)
    return loader


async def wait_for_run(app) -> None:
    """Until the run ended and the worker is idle (its lens tasks would outlive the app)."""
    await wait_for(lambda: app.figures.state.startswith(("done", "failed")))
    await wait_for(lambda: not app.engine.deriving and not app.engine.pending())
    await asyncio.sleep(0.2)


def loading_app(tmp_path, **kw) -> NeuroscopeApp:
    kw.setdefault("generation", {"max_new_tokens": 2})
    return NeuroscopeApp(model_name="tiny", load_options={}, save_dir=tmp_path, **kw)


def line(app) -> str:
    return str(app.query_one("#run-line").render())


def notices(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_the_prompt_box_takes_typing_before_the_model_is_ready(slow, tmp_path):
    app = loading_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.load_step == "reading weights")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]  # the layout itself, no modal over it
        assert app.focused is app.query_one("#prompt")
        await pilot.press(*"The cat")
        assert app.query_one("#prompt").value == "The cat"
        assert line(app) == "loading tiny: reading weights…"
        assert app.figures.state == "loading" and app.live_model is None
        slow.go.set()
        await wait_for(lambda: app.live_model is not None)
        await pilot.pause()
        assert app.figures.state == "ready" and app.figures.device == "cpu"
        assert app.focused is app.query_one("#prompt")  # the typing goes on where it was
        assert app.query_one("#prompt").value == "The cat" and line(app) == ""
        assert slow.names == ["tiny"]


async def test_enter_while_loading_queues_the_prompt_and_it_runs_when_ready(slow, tmp_path):
    app = loading_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.load_step)
        await pilot.press(*"The cat", "enter")
        assert app.queued_prompt == "The cat"
        assert any("runs when tiny is loaded" in text for text in notices(app))
        assert line(app).endswith("queued “The cat”: runs when ready (Esc cancels)")
        await pilot.pause(0.3)
        assert app.shown is None and not app.engine.running  # nothing runs before the model
        slow.go.set()
        await wait_for_run(app)
        assert app.figures.state.startswith("done")
        assert app.shown.prompt == "The cat" and app.shown.n_generated == 2
        assert app.queued_prompt is None


async def test_a_prompt_from_the_command_line_waits_for_the_model_too(slow, tmp_path):
    app = loading_app(tmp_path, prompt="The dog")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.load_step)
        await pilot.pause()
        assert app.query_one("#prompt").value == "The dog" and app.queued_prompt == "The dog"
        slow.go.set()
        await wait_for_run(app)
        assert app.shown.prompt == "The dog"


async def test_esc_cancels_the_queued_prompt(slow, tmp_path):
    app = loading_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.load_step)
        await pilot.press(*"The cat", "enter", "escape")
        assert app.queued_prompt is None
        assert any("queued prompt is cancelled" in text for text in notices(app))
        assert "queued" not in line(app)
        assert app.focused is app.query_one("#prompt")  # the first Esc only cancels
        slow.go.set()
        await wait_for(lambda: app.live_model is not None)
        await pilot.pause(0.3)
        assert app.figures.state == "ready" and app.shown is None and not app.engine.running


async def test_model_tasks_say_the_model_is_still_loading(slow, tmp_path):
    app = loading_app(tmp_path)
    got = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.load_step)
        app.run_model_task(lambda model: 1, on_done=got.append)
        await pilot.pause()
        assert any("the model is still loading" in text for text in notices(app))
        await pilot.press("escape", "8", "a")  # leave the prompt; attribution view; compute
        await pilot.pause()
        assert "the model is still loading" in app.view.message
        slow.go.set()
        await wait_for(lambda: app.live_model is not None)
        assert got == []  # refused, not queued behind the load


async def test_a_load_failure_shows_on_screen_and_q_quits(tiny, tmp_path, monkeypatch):
    sentence = "could not load tiny (bad header); its files may be damaged or incomplete"
    slow = SlowLoader(error=ModelLoadError(sentence))
    monkeypatch.setattr("neuroscope_tui.models.loader.load_model", slow)
    app = loading_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.load_step)
        await pilot.press(*"The cat", "enter")
        slow.go.set()
        await wait_for(lambda: app.load_error is not None)
        await pilot.pause()
        panel = app.query_one("#load-failed")
        shown = str(panel.render())
        assert panel.region.area and sentence in shown and "press q to quit" in shown
        assert app.figures.state == "failed to load" and app.queued_prompt is None
        assert app.query_one("#prompt").disabled
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running and app.load_error == sentence
