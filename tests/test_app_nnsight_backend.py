"""The live app on the nnsight backend (`neuroscope-tui MODEL --backend nnsight`): the engine
runs capture/nnsight_backend.py instead of capture/run.py and the app shows the same run, array
for array; `--remote` and a missing nnsight are refused before the screen starts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from _fixtures_app import tiny_llama_bundle, wait_until
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.tui.app import NeuroscopeApp
from tiny_models import build_tiny

pytest.importorskip("nnsight", reason="nnsight is an optional extra (in the test extra)")
pytestmark = pytest.mark.anyio
PROMPT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny") / "llama")


def nnsight_app(tiny, tmp_path) -> NeuroscopeApp:
    generation = {"max_new_tokens": 4, "stop_at_eos": False, "backend": "nnsight"}
    return NeuroscopeApp(model=tiny, save_dir=tmp_path, generation=generation)


async def run_prompt(app: NeuroscopeApp, pilot) -> None:
    """Type PROMPT, run it, and wait for the run to end well."""
    app.query_one("#prompt").focus()
    await pilot.press(*PROMPT, "enter")
    await wait_until(lambda: app.figures.state.startswith(("done", "failed")))
    await pilot.pause(0.1)
    assert app.figures.state.startswith("done"), app.figures.state


async def test_the_app_runs_on_the_nnsight_backend_and_shows_the_same_run(tiny, tmp_path):
    app = nnsight_app(tiny, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await run_prompt(app, pilot)
        shown = app.shown
    assert shown.notes.get("backend") == "nnsight"
    native = run(tiny, PROMPT, shown.spec, GenerationOptions(max_new_tokens=4, stop_at_eos=False))
    assert shown.token_ids == native.token_ids
    for name in ("resid.norm", "mlp.norm", "attn.norm", "heads.entropy", "logits.top_ids"):
        np.testing.assert_allclose(shown.get(name), native.get(name), rtol=1e-4, atol=1e-5)


def test_without_nnsight_the_app_says_how_to_install_it(tmp_path):
    folder = build_tiny("llama", tmp_path / "tiny")
    code = (
        "import sys; sys.modules['nnsight'] = None\n"
        "from neuroscope_tui.cli import main\n"
        f"sys.exit(main([{str(folder)!r}, '--backend', 'nnsight', '--prompt', 'hi']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert "neuroscope-tui[nnsight]" in done.stderr and "Traceback" not in done.stderr


def test_without_a_terminal_the_nnsight_backend_prints_the_same_text(tmp_path):
    folder = build_tiny("llama", tmp_path / "tiny")
    outs = []
    for backend in ("native", "nnsight"):
        done = subprocess.run(
            [sys.executable, "-m", "neuroscope_tui", str(folder), "--prompt", PROMPT,
             "--max-new-tokens", "5", "--backend", backend],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        outs.append(done.stdout)
    assert outs[0] == outs[1] and "generated:" in outs[0]


async def test_ablating_a_head_on_the_nnsight_backend_equals_the_native_run(tiny, tmp_path):
    """`a` in the heads view re-runs the prompt with the head switched off; on the nnsight
    backend the ablation is an nnsight edit, and the run equals the native one."""
    from neuroscope_tui.capture.interventions import Ablation

    app = nnsight_app(tiny, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await run_prompt(app, pilot)
        await pilot.press("2")  # the heads view: layer 0, head 0 selected
        await pilot.pause(0.1)
        await pilot.press("a")
        await wait_until(lambda: app.shown is not None and bool(app.shown.interventions))
        await wait_until(lambda: app.figures.state.startswith(("done", "failed")))
        await pilot.pause(0.1)
        assert app.figures.state.startswith("done"), app.figures.state
        shown = app.shown
    assert shown.notes.get("backend") == "nnsight"
    ablation = Ablation("head", 0, 0)
    native = run(
        tiny, PROMPT, shown.spec, GenerationOptions(max_new_tokens=4, stop_at_eos=False),
        interventions=[ablation],
    )  # fmt: skip
    assert shown.interventions == native.interventions
    assert shown.token_ids == native.token_ids
    for name in ("resid.norm", "attn.norm", "mlp.norm", "logits.top_ids"):
        np.testing.assert_allclose(shown.get(name), native.get(name), rtol=1e-4, atol=1e-5)
