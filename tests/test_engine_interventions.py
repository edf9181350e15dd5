"""The model worker with interventions (tui/engine.py + tui/intervention_state.py), on a tiny
Llama: a run where only the interventions changed reuses the clean run (never recomputes it),
the interventions reach the trace, and the app's `a` key re-runs with them end to end."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_app import tiny_llama_bundle, wait_until
from neuroscope_tui.analysis.intervention_store import stored_side_by_side
from neuroscope_tui.capture import run as run_module
from neuroscope_tui.capture.interventions import Ablation, intervention_to_dict
from neuroscope_tui.tui.engine import ModelEngine
from neuroscope_tui.tui.intervention_state import InterventionState
from neuroscope_tui.tui.messages import RunEnded

torch = pytest.importorskip("torch")
OPTIONS = {"max_new_tokens": 3, "lens": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny-iv-engine") / "llama")


@pytest.fixture
def counted(monkeypatch):
    """Every call of capture.run.run, with the interventions it got."""
    calls: list = []
    real = run_module.run

    def counting(*args, **kwargs):
        calls.append(list(kwargs.get("interventions", ())))
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "run", counting)
    return calls


def test_the_clean_run_is_kept_and_reused_when_only_the_interventions_change(tiny, counted):
    ended: list = []
    engine = ModelEngine(post=lambda m: ended.append(m) if isinstance(m, RunEnded) else None,
                         model=tiny)  # fmt: skip
    head = Ablation("head", 1, 0)
    engine.generate("the cat sat", None, OPTIONS)
    clean = engine.interventions.clean
    assert counted == [[]] and clean is ended[-1].trace
    engine.generate("the cat sat", None, OPTIONS, [head])
    assert counted == [[], [head]]  # no second clean run
    assert engine.interventions.clean is clean
    assert ended[-1].trace.interventions == [intervention_to_dict(head)]
    engine.generate("the cat sat", None, OPTIONS, [Ablation("mlp", 0)])
    assert counted[-1] == [Ablation("mlp", 0)] and len(counted) == 3
    # another prompt: its clean run first (silently), then the run with the interventions
    engine.generate("a dog ran", None, OPTIONS, [head])
    assert counted[3:] == [[], [head]]
    assert engine.interventions.clean.prompt == "a dog ran"
    assert engine.interventions.clean.interventions == []


def test_an_intervention_the_model_refuses_ends_the_run_with_a_sentence(tiny):
    ended: list = []
    engine = ModelEngine(post=lambda m: ended.append(m) if isinstance(m, RunEnded) else None,
                         model=tiny)  # fmt: skip
    engine.interventions = InterventionState()
    n_layers = tiny.anatomy.n_layers
    engine.generate("the cat sat", None, OPTIONS, [Ablation("head", n_layers + 5, 0)])
    assert ended[-1].trace is None and "out of range" in ended[-1].error


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_in_the_heads_view_reruns_the_tiny_model_and_fills_the_side_by_side(
    tiny, counted, anyio_backend
):
    from neuroscope_tui.tui.app import NeuroscopeApp

    app = NeuroscopeApp(model=tiny, generation=dict(OPTIONS))
    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one("#prompt").focus()
        await pilot.press(*"the cat sat on", "enter")
        await wait_until(lambda: app.figures.state.startswith("done"))
        clean = app.shown
        await pilot.press("2")
        await wait_until(lambda: app.view.has_focus_within)  # keys after this go to the view
        await pilot.press("]", "a")
        await wait_until(lambda: app.shown is not clean and app.figures.state.startswith("done"))
        assert counted == [[], [Ablation("head", 1, 0)]]
        assert app.shown.interventions == [intervention_to_dict(Ablation("head", 1, 0))]
        side = stored_side_by_side(app.shown)
        assert side.clean_tokens == clean.token_text
        assert side.intervened_tokens == app.shown.token_text
        await wait_until(lambda: np.isfinite(stored_side_by_side(app.shown).logit_diff).any())
        await pilot.press("9")
        assert "ablate L1.H0 (zero)" in str(
            app.query_one("#iv-panel").get_option_at_index(0).prompt
        )


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_sweep_from_view_9_on_the_tiny_model_and_a_refused_one(tiny, anyio_backend):
    from neuroscope_tui.analysis.intervention_store import stored_sweep
    from neuroscope_tui.capture.patching import patch_sweep
    from neuroscope_tui.tui.app import NeuroscopeApp
    from neuroscope_tui.tui.views.interventions import InterventionsView

    app = NeuroscopeApp(model=tiny, generation=dict(OPTIONS))
    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one("#prompt").focus()
        await pilot.press(*"The capital of Paris is", "enter")
        await wait_until(lambda: app.figures.state.startswith("done"))
        run = app.shown
        corrupt = "The city of France is"  # 8 tokens, as the clean one, with this tokenizer
        await pilot.press("9")
        await wait_until(lambda: app.view.has_focus_within)
        await pilot.press("w", *corrupt, "tab", *" the", "tab", *" of", "enter")
        view = app.query_one(InterventionsView)
        await wait_until(lambda: view.sweep is not None or view.message)
        assert view.message == ""
        expected = patch_sweep(tiny, "The capital of Paris is", corrupt, target=" the",
                               foil=" of")  # fmt: skip
        np.testing.assert_allclose(view.sweep.recovered, expected.recovered, atol=1e-5)
        assert app.shown is run and stored_sweep(run).rows == expected.rows
        await pilot.press("w", *"The city", "enter")  # fewer tokens: refused, the run stays
        await wait_until(lambda: bool(view.message))
        assert "same token length" in view.message and app.shown is run
        assert view.sweep is not None  # the last good sweep stays on screen


def test_a_pattern_on_demand_of_an_intervened_run_is_the_intervened_models(tiny):
    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.trace import CaptureSpec
    from neuroscope_tui.tui.views.heads import patterns_or_error

    spec = CaptureSpec(pattern_heads=((1, 0),))
    trace = run(tiny, "The capital of Paris is", spec, GenerationOptions(max_new_tokens=3),
                interventions=[Ablation("attn", 0)])  # fmt: skip
    recorded, ids = trace.arrays["pattern.1.0"], list(trace.token_ids)
    replayed = patterns_or_error(tiny, ids, [(1, 0)], trace)[(1, 0)]
    np.testing.assert_allclose(replayed, recorded, atol=1e-5)
    clean_model = patterns_or_error(tiny, ids, [(1, 0)])[(1, 0)]
    assert np.abs(clean_model - recorded).max() > 1e-3  # the ablation changes layer 1's pattern


def test_the_apps_sweep_names_its_form_fields_when_target_and_foil_are_one_token(tiny):
    from neuroscope_tui.tui.views.interventions import sweep_or_error

    clean, corrupt = "The capital of Paris is", "The city of France is"
    said = sweep_or_error(tiny, clean, corrupt, "resid", " the", " the")
    assert isinstance(said, str) and "are the same token" in said
    assert "target and foil fields" in said and "--" not in said  # no CLI option names
