"""diagnostic_inputs (capture/diagnostics.py): one run per prompt with DIAGNOSTIC_SPEC, neuron
and gradient health, what is missing and why, progress and cancel, and timings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuroscope_tui.capture.diagnostics as diag
from neuroscope_tui.capture.diagnostics import (
    DIAGNOSTIC_SPEC,
    PATTERN_TOKENS,
    diagnostic_inputs,
)
from neuroscope_tui.capture.gradients import prompt_gradients
from neuroscope_tui.errors import PromptError
from neuroscope_tui.tasks import TaskCancelled, TaskContext
from tiny_models import tiny_bundle

SHORT = "The cat sat on the mat."
LONG = "One two three four five six seven eight nine ten. " * 12  # past PATTERN_TOKENS


@pytest.fixture(scope="module")
def bundle():
    return tiny_bundle("llama")


@pytest.fixture(scope="module")
def inputs(bundle):
    return diagnostic_inputs(bundle, [SHORT, LONG], max_tokens=100)


def test_one_trace_per_prompt_with_the_diagnostic_spec(bundle, inputs) -> None:
    a = bundle.anatomy
    short, long = inputs.traces
    assert inputs.source == "model" and inputs.prompts == [SHORT, LONG]
    assert short.token_ids == list(bundle.tokenizer(SHORT)["input_ids"])
    for trace in inputs.traces:
        assert trace.n_tokens == trace.n_prompt
        assert trace.get("resid.full").shape == (a.n_layers, trace.n_tokens, a.d_model)
        assert trace.get("heads.first").shape == (a.n_layers, trace.n_tokens, a.n_heads)
        assert not any(name.startswith("lens.") for name in trace.arrays)
        assert not trace.has("neurons.full")
    # every head's pattern for the short prompt, none for the long one
    patterns = sorted(name for name in short.arrays if name.startswith("pattern."))
    assert len(patterns) == a.n_layers * a.n_heads
    assert short.get("pattern.1.3").shape == (short.n_tokens, short.n_tokens)
    assert not any(name.startswith("pattern.") for name in long.arrays)
    assert long.n_tokens > PATTERN_TOKENS


def test_the_residual_rows_are_the_models_hidden_states(bundle, inputs) -> None:
    trace = inputs.traces[0]
    with torch.no_grad():
        out = bundle.model(input_ids=torch.tensor([trace.token_ids]), output_hidden_states=True)
    full = trace.get("resid.full")
    for layer in range(bundle.anatomy.n_layers - 1):
        np.testing.assert_allclose(full[layer], out.hidden_states[layer + 1][0], atol=1e-5)


def test_a_long_prompt_keeps_its_first_tokens(bundle, inputs) -> None:
    long = inputs.traces[1]
    ids = list(bundle.tokenizer(LONG)["input_ids"])
    assert len(ids) > 100 and long.token_ids == ids[:100]
    assert "only the first 100 of" in long.notes["truncated"]
    assert "truncated" not in inputs.traces[0].notes


def test_neuron_and_gradient_health_cover_every_prompt(bundle, inputs) -> None:
    a = bundle.anatomy
    n_tokens = sum(t.n_tokens for t in inputs.traces)
    assert inputs.neurons is not None and inputs.neurons.n_tokens == n_tokens
    assert inputs.neurons.active_frac.shape == (a.n_layers, a.d_mlp)
    grads = inputs.gradients
    assert grads is not None and grads.resid.shape == (2, a.n_layers)
    assert grads.params.shape == grads.attn_params.shape == grads.mlp_params.shape == (2, 2)
    assert grads.embed.shape == grads.loss.shape == (2,)
    # the same numbers as one prompt's pass on its own (the trace's own ids)
    one = prompt_gradients(bundle.model, a, inputs.traces[1].token_ids)
    np.testing.assert_allclose(grads.resid[1], one["resid"], rtol=1e-5)
    assert grads.loss[1] == pytest.approx(one["loss"], rel=1e-5)
    assert inputs.missing == {}
    assert set(inputs.timings) == {"capture.traces", "capture.gradients"}
    assert all(v > 0 for v in inputs.timings.values())


def test_turned_off_parts_say_why(bundle) -> None:
    got = diagnostic_inputs(bundle, [SHORT], neurons=False, gradients=False)
    assert got.neurons is None and got.gradients is None
    assert "turned off" in got.missing["neurons"]
    assert "--no-gradients" in got.missing["gradients"]
    assert set(got.timings) == {"capture.traces"}


def test_a_model_that_cannot_take_gradients_still_gives_the_rest(bundle, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise RuntimeError("only Tensors of floating point dtype can require gradients\nmore")

    monkeypatch.setattr(diag, "prompt_gradients", refuse)
    got = diagnostic_inputs(bundle, [SHORT])
    assert got.gradients is None and got.neurons is not None and len(got.traces) == 1
    assert got.missing["gradients"] == (
        "the model cannot take gradients here "
        "(only Tensors of floating point dtype can require gradients)"
    )


def test_progress_rises_to_one_and_a_cancel_stops_it(bundle) -> None:
    seen: list[tuple[float, str]] = []
    diagnostic_inputs(bundle, [SHORT, SHORT, SHORT], progress=lambda f, t: seen.append((f, t)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] == 0.0
    assert any("gradients" in t for _, t in seen) and "prompt 3 of 3" in seen[2][1]

    ctx = TaskContext()
    ran: list[int] = []
    original = diag.run

    def counting_run(*args, **kwargs):
        ran.append(1)
        ctx.cancel()  # the user presses Esc during the first prompt
        return original(*args, **kwargs)

    diag.run = counting_run
    try:
        with pytest.raises(TaskCancelled):
            diagnostic_inputs(bundle, [SHORT, SHORT, SHORT], progress=ctx)
    finally:
        diag.run = original
    assert len(ran) == 1


def test_an_empty_prompt_is_one_sentence(bundle) -> None:
    with pytest.raises(PromptError, match="empty"):
        diagnostic_inputs(bundle, [SHORT, "   "])


def test_the_spec_keeps_what_the_detectors_read() -> None:
    assert DIAGNOSTIC_SPEC.full_layers is None and DIAGNOSTIC_SPEC.layers is None
    assert DIAGNOSTIC_SPEC.head_scores and DIAGNOSTIC_SPEC.lens_positions == ()
    assert set(DIAGNOSTIC_SPEC.sites) == {"resid", "attn", "mlp", "neurons"}
