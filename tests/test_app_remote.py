"""The live app on NDIF (`neuroscope-tui MODEL --remote`, tui/remote_runs.py and
tui/remote_waiting.py), as far as no network allows: NDIF is played by a backend that runs the
request here and answers the polls with QUEUED, then RUNNING, then the saved values, as
nnsight's RemoteBackend does. The app shows the waiting state with NDIF's word and the seconds
elapsed, then the whole run at once (equal to the native run); Esc stops waiting; what needs
the model on this machine is refused with one sentence; without a terminal the run prints."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from _fixtures_app import wait_until
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.cli import main
from neuroscope_tui.tui.app import NeuroscopeApp
from tiny_models import tiny_bundle

pytest.importorskip("nnsight", reason="nnsight is an optional extra (in the test extra)")
pytestmark = pytest.mark.anyio
PROMPT = "the cat sat on the mat"
NAME = "meta-llama/Llama-3.1-405B"  # what NDIF serves; played here by a tiny llama


class FakeNDIF:
    """A submitted request as nnsight's non-blocking RemoteBackend sees it: `__call__` takes
    the trace (here it runs in place instead of being sent), `poll()` answers None with a
    status while NDIF has it, then the saved values. `answer_after` None: it never finishes.
    `shown(word)`, when given, holds each status until the app has shown it: a loaded machine
    may take longer than a poll interval to draw a message, and the test asks for every word."""

    def __init__(self, statuses: list[str], answer_after: int | None, shown=None):
        self.statuses, self.answer_after, self.shown = statuses, answer_after, shown
        self.polls, self.status, self.frame = 0, None, None

    def __call__(self, tracer) -> None:
        tracer.execute(tracer.info.code)  # what nnsight's own local Backend does
        self.frame = tracer.info.frame  # request_steps' frame: where the saved steps land

    def poll(self):
        if self.shown is not None and self.status is not None:
            end = time.monotonic() + 30
            while not self.shown(self.status.value) and time.monotonic() < end:
                time.sleep(0.01)
        self.polls += 1
        if self.answer_after is not None and self.polls > self.answer_after:
            return {"steps": self.frame.f_locals["steps"]}
        word = self.statuses[min(self.polls, len(self.statuses)) - 1]
        self.status = SimpleNamespace(value=word)
        return None


@pytest.fixture
def ndif(monkeypatch):
    """NDIF played here: connect() hands a session on a tiny llama; each run's backend is a
    FakeNDIF (`ndif.backends`), polled every 0.2 s instead of 2."""
    from neuroscope_tui.capture import remote
    from neuroscope_tui.capture.nnsight_backend import wrap

    bundle = tiny_bundle("llama")
    state = SimpleNamespace(bundle=bundle, backends=[], answer_after=3, connected=[], shown=None)

    def connect(name, revision=None):
        state.connected.append(name)
        return remote.RemoteSession(lm=wrap(bundle), bundle=bundle, key="k", host="http://x")

    def backend(lm, key, host):
        state.backends.append(
            FakeNDIF(["RECEIVED", "QUEUED", "RUNNING"], state.answer_after, state.shown)
        )
        return state.backends[-1]

    monkeypatch.setattr(remote, "connect", connect)
    monkeypatch.setattr(remote, "ndif_backend", backend)
    monkeypatch.setattr(remote, "POLL_EVERY_S", 0.2)
    monkeypatch.setattr(remote, "_ship_our_code", lambda: None)  # nothing is serialised here
    return state


def _app(tmp_path, **generation) -> NeuroscopeApp:
    options = {"max_new_tokens": 4, "stop_at_eos": False, "backend": "nnsight", **generation}
    return NeuroscopeApp(
        model_name=NAME, load_options={"remote": True}, save_dir=tmp_path, generation=options
    )


def _notices(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_the_app_waits_for_ndif_then_shows_the_whole_run(ndif, tmp_path):
    app = _app(tmp_path)
    states: list[str] = []  # every state the header showed, in order
    show_waiting = app._show_waiting

    def recorded() -> None:
        show_waiting()
        states.append(app.figures.state)

    app._show_waiting = recorded
    ndif.shown = lambda word: any(s.startswith(f"NDIF: {word.lower()}") for s in states)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.figures.state == "ready")
        assert ndif.connected == [NAME] and app.figures.device == "NDIF"
        app.query_one("#prompt").focus()
        await pilot.press(*PROMPT, "enter")
        while not app.figures.state.startswith(("done", "failed")):
            line = str(app.query_one("#run-line").render())
            assert app.shown is None or app.shown.n_tokens == 0  # nothing before the end
            await asyncio.sleep(0.05)
        assert "comes back when it is finished" in line
        await pilot.pause(0.1)
        assert app.figures.state.startswith("done"), (app.figures.state, _notices(app))
        shown = app.shown
        assert any("NDIF sent the run back whole" in n for n in _notices(app))
        # every view opens on the remote run, and none of them asks the model for anything
        for key in "1234567890!":
            await pilot.press(key)
            await pilot.pause(0.05)
        assert not [n for n in _notices(app) if "failed" in n or "Error" in n], _notices(app)
        await pilot.press("s")
        await wait_until(lambda: any("saved" in n for n in _notices(app)))
    words = {s.split(",")[0] for s in states}
    assert {"NDIF: received", "NDIF: queued", "NDIF: running"} <= words, states
    native = run(
        ndif.bundle, PROMPT, shown.spec, GenerationOptions(max_new_tokens=4, stop_at_eos=False)
    )
    assert shown.token_ids == native.token_ids and shown.notes.get("remote") == "ndif"
    assert shown.spec.full_layers == ()  # summaries and the lens travel, not full rows
    for name in ("resid.norm", "mlp.norm", "attn.norm", "lens.top_ids", "lens.top_probs"):
        np.testing.assert_allclose(shown.get(name), native.get(name), rtol=1e-4, atol=1e-5)
    from neuroscope_tui.snapshot import load_snapshot

    saved = load_snapshot(next(tmp_path.glob("*.nscope")))
    assert saved.token_ids == shown.token_ids


async def test_esc_stops_waiting_and_nothing_is_kept(ndif, tmp_path):
    ndif.answer_after = None  # NDIF's queue never moves
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.figures.state == "ready")
        app.query_one("#prompt").focus()
        await pilot.press(*PROMPT, "enter")
        # the seconds tick while NDIF's status stays the same
        await wait_until(lambda: app.figures.state == "NDIF: running, 2 s")
        await pilot.press("escape")
        await wait_until(lambda: app.figures.state.startswith(("done", "failed")))
        assert app.figures.state == "failed" and app.shown is None
        assert any("stopped waiting for NDIF after RUNNING" in n for n in _notices(app))
        assert not app.engine.running and str(app.query_one("#run-line").render()) == ""


async def test_what_needs_the_model_here_is_refused_once(ndif, tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.figures.state == "ready")
        cancelled: list[bool] = []
        for _ in range(3):  # a view asking on every key press hears it once
            context = app.run_model_task(
                lambda bundle: 1 / 0, on_done=print, kind="patterns heads",
                on_cancelled=lambda: cancelled.append(True),
            )  # fmt: skip
            assert context is None
        errors: list[str] = []
        app.run_model_task(lambda b: 0, on_done=print, label="attribution", on_error=errors.append)
        await pilot.pause(0.1)
        await pilot.press(
            "escape", "M"
        )  # leave the prompt box; watching modules: the trace hooks no other module
        await pilot.pause(0.1)
        notices = _notices(app)
    refusals = [n for n in notices if "an attention pattern on demand needs the model" in n]
    assert len(refusals) == 1 and cancelled == [True, True, True]
    assert errors and errors[0].startswith("attribution needs the model on this machine")
    assert any("watching modules runs on the native backend only" in n for n in notices)


async def test_a_head_ablated_on_ndif_equals_the_native_ablation(ndif, tmp_path):
    """`a` in the heads view sends the prompt again with the head switched off: the edit
    travels with the request; the comparison with the clean run, which needs the model here,
    is refused in one sentence."""
    from neuroscope_tui.capture.interventions import Ablation

    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.figures.state == "ready")
        app.query_one("#prompt").focus()
        await pilot.press(*PROMPT, "enter")
        await wait_until(lambda: app.figures.state.startswith(("done", "failed")))
        await pilot.press("2")  # the heads view: layer 0, head 0
        await pilot.pause(0.1)
        await pilot.press("a")
        await wait_until(lambda: app.shown is not None and bool(app.shown.interventions))
        await wait_until(lambda: app.figures.state.startswith(("done", "failed")))
        await pilot.pause(0.2)
        assert app.figures.state.startswith("done"), (app.figures.state, _notices(app))
        shown = app.shown
        notices = _notices(app)
    native = run(
        ndif.bundle, PROMPT, shown.spec, GenerationOptions(max_new_tokens=4, stop_at_eos=False),
        interventions=[Ablation("head", 0, 0)],
    )  # fmt: skip
    assert shown.interventions == native.interventions and shown.token_ids == native.token_ids
    for name in ("resid.norm", "attn.norm", "mlp.norm"):
        np.testing.assert_allclose(shown.get(name), native.get(name), rtol=1e-4, atol=1e-5)
    assert any("the comparison with the clean run needs the model" in n for n in notices)


def test_without_a_terminal_a_remote_run_prints_its_text(ndif, monkeypatch, capsys):
    monkeypatch.setenv("NDIF_API_KEY", "k")
    monkeypatch.setattr("neuroscope_tui.cli.live.stdout_is_terminal", lambda: False)
    code = main([NAME, "--remote", "--prompt", PROMPT, "--max-new-tokens", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    native = run(ndif.bundle, PROMPT, None, GenerationOptions(max_new_tokens=3))
    assert f"generated: {native.generated_text!r}" in out
    assert "NDIF: queued" in err and "the whole run comes back" in err


def test_remote_without_a_key_is_one_sentence(monkeypatch, capsys):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    assert main([NAME, "--remote"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neuroscope-tui: ") and "NDIF_API_KEY" in err
    assert len(err.splitlines()) == 1


async def test_ndif_unreachable_is_the_load_failure(monkeypatch, tmp_path):
    from neuroscope_tui.capture import remote
    from neuroscope_tui.errors import BackendError

    def connect(name, revision=None):
        raise BackendError("cannot reach NDIF at https://api.ndif.us (refused); check the network")

    monkeypatch.setattr(remote, "connect", connect)
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)):
        await wait_until(lambda: app.figures.state == "failed to load")
        assert app.load_error.startswith("cannot reach NDIF") and app.engine.remote is None
