"""The app with a live model: a tiny random Llama saved to disk and loaded by the real loader.

Runs go through the model worker; the numbers on screen are checked against transformers'
own `output_hidden_states`.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from _fixtures_app import tiny_llama_bundle, wait_until
from neuroscope_tui.snapshot import load_snapshot
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.anyio
SIZE = (120, 40)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny") / "llama")


def live_app(tiny, tmp_path, **kw) -> NeuroscopeApp:
    kw.setdefault("generation", {"max_new_tokens": 4})
    return NeuroscopeApp(model=tiny, save_dir=tmp_path, **kw)


async def run_prompt(pilot, app, text: str) -> None:
    app.query_one("#prompt").focus()
    await pilot.press(*text, "enter")
    await wait_until(lambda: app.figures.state.startswith(("done", "failed")))
    await pilot.pause(0.1)


async def test_enter_runs_and_columns_appear_token_by_token(tiny, tmp_path):
    app = live_app(tiny, tmp_path, generation={"max_new_tokens": 5})
    widths = []
    async with app.run_test(size=SIZE) as pilot:
        assert app.focused is app.query_one("#prompt")
        heat = app.query_one(LayerHeatmap)
        original = app._apply_growth

        def spy():
            original()
            widths.append(heat.n_tokens)

        app._apply_growth = spy
        await run_prompt(pilot, app, "The cat sat")
        trace = app.shown
        n_prompt = len(tiny.tokenizer("The cat sat")["input_ids"])
        assert trace.n_prompt == n_prompt and trace.n_generated == 5
        assert heat.n_tokens == trace.n_tokens == n_prompt + 5
        assert widths[0] >= n_prompt and widths == sorted(widths)
        assert app.focused is heat
        assert app.figures.captured == sum(a.nbytes for a in trace.arrays.values())
        assert "done (length)" in str(app.query_one("#header").render())
        assert app.figures.tokens_per_s is not None and app.figures.tokens_per_s > 0


async def test_numbers_on_screen_match_transformers(tiny, tmp_path):
    app = live_app(tiny, tmp_path, generation={"max_new_tokens": 2})
    async with app.run_test(size=SIZE) as pilot:
        await run_prompt(pilot, app, "A cat sat on the mat")
        trace = app.shown
        with torch.no_grad():
            out = tiny.model(torch.tensor([trace.token_ids]), output_hidden_states=True)
        # hidden_states[l + 1] is the stream after block l (the last one is after the norm)
        expected = np.stack(
            [h[0].norm(dim=-1).numpy() for h in out.hidden_states[1 : trace.n_layers]]
        )
        heat = app.query_one(LayerHeatmap)
        np.testing.assert_allclose(heat._raw[:-1], expected, rtol=1e-4, atol=1e-5)
        await pilot.press("home", "right", "right")
        await pilot.pause()
        text = str(app.query_one("#detail-text").render())
        line = next(ln for ln in text.splitlines() if "residual norm" in ln)
        assert float(line.split()[-1]) == pytest.approx(float(expected[0, 2]), rel=5e-3)
        # the logit lens at the last layer is the model's own next-token distribution
        probs = torch.softmax(out.logits[0, 2], -1)
        top = probs.topk(5)
        lens_ids = trace.get("lens.top_ids")[-1, 2, :5]
        np.testing.assert_array_equal(lens_ids, top.indices.numpy())
        first = tiny.tokenizer.decode([int(top.indices[0])])
        assert f"{float(top.values[0]):6.1%}".strip() in text
        assert first.replace(" ", "·")[:12] in text


async def test_empty_prompt_is_a_notice(tiny, tmp_path):
    app = live_app(tiny, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("space", "enter")
        await pilot.pause()
        assert app.shown is None and not app.engine.running
        assert any("prompt is empty" in n.message for n in app._notifications)


async def test_prompt_option_runs_at_once_and_save_works(tiny, tmp_path):
    app = live_app(tiny, tmp_path, prompt="One two three")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.figures.state.startswith("done"))
        await pilot.pause(0.1)
        assert app.query_one("#prompt").value == "One two three"
        await pilot.press("s")  # the model worker completes the trace first (capture/complete.py)
        await wait_until(lambda: app.last_saved is not None)
        back = load_snapshot(app.last_saved)
        assert back.token_ids == app.shown.token_ids and back.n_generated == 4
        ids = back.get("lens.top_ids")
        assert all(str(int(i)) in back.notes["id_text"] for i in np.unique(ids) if i >= 0)


async def test_stop_key_cancels_a_run(tiny, tmp_path):
    app = live_app(tiny, tmp_path, generation={"max_new_tokens": 100, "stop_at_eos": False})
    # 50 ms per token: a run of 100 tokens lasts 5 s, far longer than pressing a key takes
    handle = tiny.model.register_forward_pre_hook(lambda *a: time.sleep(0.05))
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.query_one("#prompt").focus()
            await pilot.press(*"The quick brown fox", "enter")
            await wait_until(lambda: app.shown is not None and app.shown.n_tokens > 0)
            await pilot.press("escape")
            await wait_until(lambda: app.figures.state.startswith("done"))
            assert app.shown.stop_reason == "cancelled"
            assert 0 <= app.shown.n_generated < 100
            assert app.query_one(LayerHeatmap).n_tokens == app.shown.n_tokens
    finally:
        handle.remove()


async def test_model_error_mid_run_keeps_the_trace(tiny, tmp_path):
    calls = []

    def fail_on_third(module, args, kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("CUDA error: device-side assert triggered")

    handle = tiny.model.register_forward_pre_hook(fail_on_third, with_kwargs=True)
    try:
        app = live_app(tiny, tmp_path, generation={"max_new_tokens": 10})
        async with app.run_test(size=SIZE) as pilot:
            await run_prompt(pilot, app, "The cat")
            assert app.figures.state == "failed"
            errors = [n.message for n in app._notifications if n.severity == "error"]
            assert len(errors) == 1 and "device-side assert" in errors[0]
            assert "\n" not in errors[0] and "Traceback" not in errors[0]
            n_prompt = len(tiny.tokenizer("The cat")["input_ids"])
            assert app.shown.n_tokens == n_prompt + 1  # prompt pass + one token, then failure
            assert app.query_one(LayerHeatmap).n_tokens == app.shown.n_tokens
            await pilot.press("s")
            await wait_until(lambda: app.last_saved is not None)
            assert load_snapshot(app.last_saved).n_tokens == n_prompt + 1
    finally:
        handle.remove()


async def test_model_task_runs_in_the_worker(tiny, tmp_path):
    import threading

    app = live_app(tiny, tmp_path)
    got = []
    async with app.run_test(size=SIZE):
        ui_thread = threading.get_ident()

        def task(model, x):
            return (model is tiny, x + 1, threading.get_ident() != ui_thread)

        app.run_model_task(task, 41, on_done=got.append)
        await wait_until(lambda: got)
        assert got == [(True, 42, True)]

        def broken(model):
            raise ValueError("no such head")

        app.run_model_task(broken, on_done=got.append)
        await wait_until(lambda: any("no such head" in n.message for n in app._notifications))


async def test_loading_line_then_ready(tiny, tmp_path):
    app = NeuroscopeApp(model_name=tiny.source, load_options={"device": "cpu"}, save_dir=tmp_path)
    steps = []
    original = app._draw_load_line

    def spy():
        original()
        steps.append(str(app.query_one("#run-line").render()))

    app._draw_load_line = spy
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.live_model is not None)
        await pilot.pause(0.1)
        # the real loader's progress strings, each shown under the prompt box as it came
        assert f"loading {tiny.source}: loading weights…" in steps, steps
        assert app.screen is app.screen_stack[0]  # no modal screen at any time
        assert app.figures.state == "ready" and app.figures.device == "cpu"
        assert str(app.query_one("#run-line").render()) == ""


async def test_load_failure_is_one_sentence(tmp_path):
    (tmp_path / "empty").mkdir()
    app = NeuroscopeApp(model_name=str(tmp_path / "empty"), save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.load_error is not None)
        assert "config.json" in app.load_error and "\n" not in app.load_error
        await pilot.pause()
        assert "config.json" in str(app.query_one("#load-failed").render())
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running


async def test_cursor_follows_the_newest_token_until_moved(tiny, tmp_path):
    app = live_app(tiny, tmp_path, generation={"max_new_tokens": 3, "stop_at_eos": False})
    async with app.run_test(size=SIZE) as pilot:
        await run_prompt(pilot, app, "The cat")
        heat = app.query_one(LayerHeatmap)
        last = app.shown.n_tokens - 1
        assert heat.cursor[1] == last and app.selection.token == last
        assert str(app.query_one("#detail-text").render()).startswith(f"layer 0 · token {last}")
        await pilot.press("left")
        assert app.selection.token == last - 1
        await run_prompt(pilot, app, " sat on")  # a new run: back to its newest token
        assert app.selection.token == app.shown.n_tokens - 1


async def test_quit_during_a_run_stops_the_worker(tiny, tmp_path):
    app = live_app(tiny, tmp_path, generation={"max_new_tokens": 100, "stop_at_eos": False})
    handle = tiny.model.register_forward_pre_hook(lambda *a: time.sleep(0.02))
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.query_one("#prompt").focus()
            await pilot.press(*"The quick brown fox", "enter")
            await wait_until(lambda: app.shown is not None)
            await pilot.press("q")
        assert app.return_value == 0
        end = time.monotonic() + 10
        while app.engine.running and time.monotonic() < end:
            await asyncio.sleep(0.02)
        assert not app.engine.running and app.engine.cancel.is_set()
    finally:
        handle.remove()


@pytest.mark.smollm2
async def test_smollm2_scan_shows_paris(smollm2, tmp_path):
    """The real model: greedy ' Paris', and the lens's last layer at the last prompt token
    predicts it (its top-1 equals the model's own next token)."""
    app = NeuroscopeApp(
        model=smollm2, save_dir=tmp_path, prompt="The capital of France is",
        generation={"max_new_tokens": 2},
    )  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.figures.state.startswith("done"), timeout=300)
        await pilot.pause(0.1)
        trace = app.shown
        assert trace.token_text[trace.n_prompt] == " Paris"
        heat = app.query_one(LayerHeatmap)
        heat.cursor = (heat.n_layers - 1, trace.n_prompt - 1)
        await pilot.pause()

        def detail() -> str:
            return str(app.query_one("#detail-text").render())

        # the lens is derived after the run (or for the cell on screen, on demand)
        await wait_until(lambda: "computing…" not in detail(), timeout=120)
        text = detail()
        lens = text.split("logit lens: top 5 next tokens\n")[1].splitlines()
        assert lens[0].split()[0] == "·Paris"
        assert f"layer {heat.n_layers - 1} · token {trace.n_prompt - 1} ·is" in text


async def test_every_view_key_works_on_a_live_trace(tiny, tmp_path):
    from neuroscope_tui.analysis.metrics import METRICS
    from neuroscope_tui.tui.help import HelpScreen

    app = live_app(tiny, tmp_path, generation={"max_new_tokens": 3, "stop_at_eos": False})
    async with app.run_test(size=SIZE) as pilot:
        await run_prompt(pilot, app, "The cat sat")
        scan = app.view
        await pilot.press("m", "n", "o", "u")
        assert scan.metric == list(METRICS)[1] and scan.normalisation == "per layer"
        assert not scan.clip and scan.neuron is not None
        await pilot.press("right_square_bracket", "right_curly_bracket")
        assert (app.selection.layer, app.selection.head) == (1, 1)
        await pilot.press("S")
        await pilot.pause()
        assert app.last_saved.suffix == ".svg" and app.last_saved.exists()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "slash")
        await pilot.pause()
        assert app.focused is app.query_one("#prompt")


async def test_a_prompt_past_the_context_is_a_notice(tiny, tmp_path):
    app = live_app(tiny, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.start_run("one two three four five six seven eight nine ten " * 30)
        await wait_until(lambda: app.figures.state == "failed")
        await pilot.pause(0.1)
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and "reads at most 128" in errors[0]
        assert app.shown is None and not app.engine.running
