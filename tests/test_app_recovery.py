"""tui/recovery.py: an unexpected error in the app saves the run before the app closes, and
`s` in the live app saves what `capture` keeps (capture/complete.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from _fixtures_app import wait_until as wait_for
from neuroscope_tui.snapshot import load_snapshot
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.recovery import CRASH_STATUS
from neuroscope_tui.tui.views.scan import ScanView
from tiny_models import tiny_bundle

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.anyio
SIZE = (120, 40)


@pytest.fixture(scope="module")
def tiny():
    return tiny_bundle("llama")


class ViewBug(RuntimeError):
    """The stand-in for a bug in a view."""


def break_the_scan_view_at(monkeypatch, n_tokens: int) -> None:
    """ScanView.show_trace raises once the run reaches `n_tokens` (a bug in a view)."""
    original = ScanView.show_trace

    def show_trace(self, trace):
        if trace.n_tokens >= n_tokens:
            raise ViewBug("index 8 is out of bounds for axis 1 with size 8")
        original(self, trace)

    monkeypatch.setattr(ScanView, "show_trace", show_trace)


async def crash_during_a_run(app: NeuroscopeApp, prompt: str) -> None:
    with pytest.raises(ViewBug):  # run_test re-raises what crashed the app
        async with app.run_test(size=SIZE) as pilot:
            app.query_one("#prompt").focus()
            await pilot.press(*prompt, "enter")
            await wait_for(lambda: not app.is_running)


async def test_a_view_bug_during_a_run_saves_the_run_and_exits_3(tiny, tmp_path, monkeypatch):
    n_prompt = len(tiny.tokenizer("The cat sat")["input_ids"])
    break_the_scan_view_at(monkeypatch, n_prompt + 3)
    # 20 ms a token, so the run is still going when the view fails
    handle = tiny.model.register_forward_pre_hook(lambda *a: time.sleep(0.02))
    app = NeuroscopeApp(
        model=tiny, save_dir=tmp_path, generation={"max_new_tokens": 60, "stop_at_eos": False}
    )
    try:
        await crash_during_a_run(app, "The cat sat")
    finally:
        handle.remove()
    status, sentence = app.exit_report()
    assert status == CRASH_STATUS == 3
    saved = list(tmp_path.glob("tiny-llama-*.recovered.nscope"))
    assert saved == [app.recovery.path]
    assert str(saved[0]) in sentence and "ViewBug" in sentence and "\n" not in sentence
    back = load_snapshot(saved[0])
    # at least the rows the view failed on, and every token's text, from the worker's trace
    assert back.n_tokens >= n_prompt + 3 and back.n_prompt == n_prompt
    assert back.token_ids[:n_prompt] == tiny.tokenizer("The cat sat")["input_ids"]
    assert len(back.token_text) == len(back.token_ids)
    assert back.get("resid.norm").shape[1] == back.n_tokens
    assert app.return_code == 1  # textual's own mark of a crash: the traceback is printed


async def test_a_crash_while_the_save_fails_still_says_why(tiny, tmp_path, monkeypatch):
    from neuroscope_tui import snapshot

    n_prompt = len(tiny.tokenizer("One two")["input_ids"])
    break_the_scan_view_at(monkeypatch, n_prompt + 1)

    def disk_full(trace, path, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot, "save_snapshot", disk_full)
    app = NeuroscopeApp(model=tiny, save_dir=tmp_path, generation={"max_new_tokens": 8})
    await crash_during_a_run(app, "One two")
    status, sentence = app.exit_report()
    assert status == 3
    assert "could not be saved" in sentence and "No space left on device" in sentence
    assert app.recovery.path is None and not list(tmp_path.iterdir())


async def test_a_save_folder_gone_falls_back_to_the_temp_folder(tiny, tmp_path, monkeypatch):
    import tempfile

    n_prompt = len(tiny.tokenizer("One two")["input_ids"])
    break_the_scan_view_at(monkeypatch, n_prompt + 1)
    gone, temp = tmp_path / "gone", tmp_path / "tmp"
    gone.mkdir()
    temp.mkdir()
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(temp))
    app = NeuroscopeApp(model=tiny, save_dir=gone, generation={"max_new_tokens": 8})
    gone.rmdir()
    await crash_during_a_run(app, "One two")
    assert app.recovery.path.parent == temp
    assert load_snapshot(app.recovery.path).n_tokens >= n_prompt + 1


async def test_a_crash_before_any_run_saves_nothing_and_says_so(tiny, tmp_path):
    app = NeuroscopeApp(model=tiny, save_dir=tmp_path)
    with pytest.raises(ViewBug):
        async with app.run_test(size=SIZE):

            def bug() -> None:
                raise ViewBug("a bug in a message handler")

            app.call_later(bug)
            await wait_for(lambda: not app.is_running, timeout=10)
    status, sentence = app.exit_report()
    assert status == 3 and "there was no run to save" in sentence
    assert not list(tmp_path.iterdir())


async def test_a_quit_is_not_a_crash(tiny, tmp_path):
    app = NeuroscopeApp(
        model=tiny, save_dir=tmp_path, prompt="One", generation={"max_new_tokens": 2}
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.figures.state.startswith("done"))
        await pilot.press("q")
    assert app.exit_report() is None and not list(tmp_path.iterdir())


# ---- `s` in the live app saves what `capture` keeps ----------------------------------------


async def test_s_in_the_live_app_saves_what_capture_keeps(tiny, tmp_path):
    import argparse

    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.cli.model_options import capture_spec

    app = NeuroscopeApp(
        model=tiny, save_dir=tmp_path, prompt="The cat sat", generation={"max_new_tokens": 4}
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.figures.state.startswith("done"))
        assert "pattern.0.-1" not in app.shown.arrays  # the live scan leaves them out
        await pilot.press("s")
        await wait_for(lambda: app.last_saved is not None)
        notices = [n.message for n in app._notifications]
        assert any("computing the lens and attention patterns" in text for text in notices)
        assert "pattern.0.-1" not in app.shown.arrays  # the trace on screen is not changed
    saved = load_snapshot(app.last_saved)
    # `capture` of the same prompt with its default options, through the same code
    args = argparse.Namespace(full_layers="all", heads="", no_lens=False, no_layer_patterns=False)
    n = tiny.anatomy
    spec = capture_spec(args, n.n_layers, n.n_heads, "tiny")
    captured = run(tiny, "The cat sat", spec, GenerationOptions(max_new_tokens=4))
    assert sorted(saved.arrays) == sorted(captured.arrays)
    assert saved.spec.pattern_heads == captured.spec.pattern_heads
    for layer in range(n.n_layers):
        name = f"pattern.{layer}.-1"
        np.testing.assert_allclose(saved.get(name), captured.get(name), atol=1e-5)
    # the lens the live view derives on demand is whole in the file, and equals capture's
    assert (saved.get("lens.top_ids") >= 0).all()
    np.testing.assert_array_equal(
        saved.get("lens.top_ids")[..., 0], captured.get("lens.top_ids")[..., 0]
    )
    for name in ("lens.top_probs", "lens.kl", "lens.pred_prob"):
        np.testing.assert_allclose(saved.get(name), captured.get(name), atol=1e-5)
    # and the flow export, which needs those patterns, works on the saved live run
    from neuroscope_tui.cli import main

    out = tmp_path / "flow.csv"
    assert main(["export", str(app.last_saved), "flow", "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) > 1
