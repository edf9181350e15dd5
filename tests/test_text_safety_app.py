"""Hostile texts in the app: every view shows them with escapes visible and never as markup.

Pilot tests on a run whose token texts, vocabulary texts, model name, notes and attribution
target are markup (`[/]`, `[@click=app.quit]`), terminal escapes and bidi overrides (see
tests/_fixtures_hostile.py). The screen is read as the strips Textual writes to the terminal.
"""

from __future__ import annotations

import pytest

from _fixtures_hostile import MODEL_NAME, RAW_CONTROLS, SNAPSHOT_NAME, hostile_trace
from neuroscope_tui.tui.views.registry import VIEWS

SIZE = (140, 44)
pytestmark = pytest.mark.anyio


def screen_text(app) -> str:
    """What the terminal receives for the whole screen (every layer, toasts included)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def view_text(app, text: str) -> str:
    """The part of the screen text inside the view on screen (no header, no footer)."""
    r = app.view.region
    return "\n".join(line[r.x : r.right] for line in text.split("\n")[r.y : r.bottom])


def assert_no_raw_controls(text: str, where: str) -> None:
    found = sorted({repr(c) for c in RAW_CONTROLS if c in text})
    assert not found, f"{where}: raw {', '.join(found)} reached the screen"


def view_app(trace, tmp_path):
    from neuroscope_tui.tui.app import NeuroscopeApp

    return NeuroscopeApp(snapshot=trace, snapshot_path=SNAPSHOT_NAME, save_dir=tmp_path)


async def test_every_view_shows_hostile_texts_escaped_and_never_as_markup(tmp_path):
    app = view_app(hostile_trace(), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for entry in VIEWS:
            await pilot.press(entry.key)
            await pilot.pause()
            await pilot.press("right", "right", "down")  # cursor onto hostile tokens
            await pilot.pause(0.3)
            assert app.current_view == entry.name, f"view {entry.key} did not open"
            text = screen_text(app)
            assert_no_raw_controls(text, f"view {entry.key} ({entry.name})")
            body = view_text(app, text)
            # connectivity is layers x layers, concepts shows its labelled sets' texts
            # (their escaping: tests/test_concept_view.py), diagnostics quotes a token only in
            # a finding about it (tests/test_diagnostics_view.py) and drift its checkpoints'
            # labels (tests/test_drift_view.py), not the run's tokens
            if entry.name not in ("connectivity", "concepts", "diagnostics", "drift"):
                assert "[/]" in body, f"view {entry.key} lost the token '[/]' (read as markup?)"
            if entry.name in ("flow", "lens", "projection", "attribution"):
                assert "\\x1b" in body, f"view {entry.key} hides the escape instead of showing it"
        assert app.is_running  # `[@click=app.quit]` was not run as an action


async def test_header_shows_the_model_and_snapshot_names_escaped(tmp_path):
    app = view_app(hostile_trace(), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        header = str(app.query_one("#header").render())
        assert "\\x1b]0;pwned\\x07[@click=app.quit][/]" in header
        assert "pwn\\x1b[31m[bold]x[@click=app.quit].nscope" in header
        assert_no_raw_controls(screen_text(app), "header")


async def test_flow_view_draws_a_token_text_that_closes_markup(tmp_path):
    # `[/]` as a token text crashed the flow view's title ("auto closing tag has nothing to close")
    app = view_app(hostile_trace(), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.pause()
        assert app.current_view == "flow" and app.is_running
        assert "'[/]'" in screen_text(app)


async def test_attribution_view_draws_a_target_that_closes_markup(tmp_path):
    app = view_app(hostile_trace(), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8")
        await pilot.pause()
        text = screen_text(app)
        assert app.current_view == "attribution" and app.is_running
        assert "why '[/]' rather than '[bold red]x[/]'" in text


async def test_notices_show_file_and_model_names_as_text(tmp_path):
    app = view_app(hostile_trace(), tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        app.notify(f"saved {MODEL_NAME}", title="[/]\x1b[2J")
        await pilot.pause()
        text = screen_text(app)
        assert "saved \\x1b]0;pwned\\x07[@click=app.quit][/]" in text
        assert_no_raw_controls(text, "notice")


async def test_the_prompt_box_shows_control_characters_as_pictures(tmp_path):
    from textual.widgets import Input

    from neuroscope_tui.tui.app import NeuroscopeApp

    app = NeuroscopeApp(model_name="tiny", save_dir=tmp_path)
    app.engine.load = lambda *a, **k: None  # never loads: only the prompt box is looked at
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if app.screen is not app.screen_stack[0]:
            app.pop_screen()  # the loading screen
            await pilot.pause()
        box = app.query_one("#prompt", Input)
        box.display = True
        box.value = "hi \x1b]0;pwned\x07 [/] there"
        box.focus()
        await pilot.pause()
        text = screen_text(app)
        # ESC shows as its picture; Rich itself drops the BEL from an Input's text
        assert "hi ␛]0;pwned [/] there" in text
        assert_no_raw_controls(text, "prompt box")
        assert box.value == "hi \x1b]0;pwned\x07 [/] there"  # the prompt itself is untouched
