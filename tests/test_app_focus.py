"""Where the keyboard goes (issue 9 item 11): the view on screen holds it, the prompt box only
when asked for; the focused widget is always visible. Pilot tests on the synthetic snapshot and
on a tiny live Llama."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import Input

from _fixtures_app import SCAN_FIXTURE, synthetic_trace, tiny_llama_bundle
from _fixtures_e2e import long_trace
from neuroscope_tui.analysis.metrics import METRICS
from neuroscope_tui.snapshot import save_snapshot
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.help import HelpScreen
from neuroscope_tui.tui.views.registry import VIEWS
from tmux_terminal import private_tmux

SIZE = (120, 40)
pytestmark = pytest.mark.anyio


def view_app(tmp_path) -> NeuroscopeApp:
    return NeuroscopeApp(
        snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path
    )


def on_the_view(app: NeuroscopeApp) -> bool:
    """Whether a visible widget of the view on screen has the focus."""
    focused = app.focused
    return focused is not None and focused.region.area > 0 and app.view in focused.ancestors


async def wait_for(pilot, condition, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the app"
        await pilot.pause(0.05)


async def test_every_view_takes_the_keyboard_when_first_shown(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        for entry in VIEWS:
            await pilot.press(entry.key)
            await pilot.pause()
            assert app.current_view == entry.name and on_the_view(app), entry.name
        await pilot.press("7", "m")  # the projection's own key works at once, no Tab first
        await pilot.pause()
        assert app.view.method != "pca"


async def test_shrinking_and_growing_the_terminal_gives_the_keyboard_back(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.resize_terminal(50, 15)  # too small: the layout hides, the focus goes
        await pilot.pause()
        await pilot.resize_terminal(*SIZE)
        await pilot.pause()
        assert on_the_view(app)
        await pilot.press("m")
        assert app.view.metric == list(METRICS)[1]


async def test_back_from_help_the_keys_reach_the_view_not_the_prompt(tmp_path):
    app = view_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.resize_terminal(50, 15)
        await pilot.resize_terminal(*SIZE)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert on_the_view(app)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("torch")
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny-focus") / "llama")


async def test_live_help_then_escape_leaves_the_prompt_alone(tiny, tmp_path):
    app = NeuroscopeApp(model=tiny, save_dir=tmp_path, generation={"max_new_tokens": 2})
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one("#prompt", Input)
        assert app.focused is prompt  # before any run the prompt box has the keyboard
        await pilot.press(*"The cat", "enter")
        await wait_for(pilot, lambda: app.figures.state.startswith("done"))
        assert on_the_view(app)
        # the focus lost (a resize, a view redrawn): Textual, resuming the screen after help,
        # used to hand it to the first focusable widget, the prompt box
        app.screen.set_focus(None)
        await pilot.press("question_mark")
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("m")
        await pilot.pause()
        assert prompt.value == "The cat" and on_the_view(app)
        assert app.view.metric == list(METRICS)[1]
        # asked for with `/`, the prompt keeps the keyboard across help (opened from the
        # palette: a `?` typed in the prompt box is text)
        await pilot.press("slash")
        await app.run_action("help")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.focused is prompt and prompt.value == "The cat"
        await pilot.press("escape")  # leaves the prompt for the view
        assert on_the_view(app)


# ---- the real program in tmux -------------------------------------------------------------

SOCKET, tmux, tmux_wait_for = private_tmux("nscope-focus")  # a private server, no one else's


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_view_keys_work_at_once_and_after_a_resize_in_a_real_terminal(tmp_path: Path):
    snap = save_snapshot(long_trace(), tmp_path / "long.nscope")
    session = "focus"
    # without COLUMNS/LINES (a test runner may set them): Textual would take them for the
    # terminal's size and never see the window resized
    cmd = (
        f"cd {shlex.quote(str(tmp_path))} && env -u COLUMNS -u LINES "
        f"{shlex.quote(sys.executable)} -m neuroscope_tui view {shlex.quote(str(snap))}; sleep 30"
    )
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd)
    try:
        tmux_wait_for(session, "layer 0 · token 0")
        tmux("send-keys", "-t", session, "7")
        tmux_wait_for(session, "projection · PCA")
        tmux("send-keys", "-t", session, "m")  # the view's own key, the first time it shows
        tmux_wait_for(session, "projection · t-SNE")
        tmux("send-keys", "-t", session, "1")
        tmux_wait_for(session, "residual norm · global")
        time.sleep(1)  # let the app settle before the window changes under it
        tmux("resize-window", "-t", session, "-x", "50", "-y", "15")
        tmux_wait_for(session, "50x15")  # the too-small message
        tmux("resize-window", "-t", session, "-x", "80", "-y", "24")
        tmux_wait_for(session, "residual norm · global")
        tmux("send-keys", "-t", session, "m")
        pane = tmux_wait_for(session, "attention-output norm  ≤")  # the colour bar
        assert "Traceback" not in pane
    finally:
        tmux("kill-server")  # this test's private server only
