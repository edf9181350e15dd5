"""The nnsight backend fills the same Trace as the native capture (capture/nnsight_backend.py),
token by token and as one whole-run request (capture/remote.py run locally), on tiny models of
three architectures and on SmolLM2; its snapshots open in every view."""

from __future__ import annotations

import importlib.util
import sys
import threading

import numpy as np
import pytest

from neuroscope_tui.capture.nnsight_backend import (
    INSTALL_HINT,
    require_nnsight,
    run_nnsight,
    wrap,
)
from neuroscope_tui.capture.remote import whole_run
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.errors import BackendError, UsageError
from neuroscope_tui.trace import HEAD_SCORES, HEADS_MISSING_NOTE, CaptureSpec, Trace
from tiny_models import tiny_bundle

# every test but the one about its absence runs nnsight (the `test` extra installs it)
needs_nnsight = pytest.mark.skipif(
    importlib.util.find_spec("nnsight") is None, reason="nnsight is not installed"
)

PROMPT = "The capital of France is"
ARCHS = ("llama", "gpt2", "opt")  # rotary + GQA, fused qkv Conv1D, the MLP on the block itself
# everything a run can record: full rows of every layer, two heads' patterns, part of the lens
FULL_SPEC = CaptureSpec(full_layers=None, pattern_heads=((0, 1), (1, 3)), lens_positions=(1, 4, 7))


def assert_same_trace(native: Trace, other: Trace, without: tuple[str, ...] = ()) -> None:
    """Same tokens, texts, stop and every array (ints exactly, floats to float tolerance)."""
    assert other.token_ids == native.token_ids
    assert other.token_text == native.token_text
    assert (other.n_prompt, other.stop_reason, other.finished) == (
        native.n_prompt,
        native.stop_reason,
        native.finished,
    )
    expected = (
        {k for k in native.arrays if not k.startswith(without)} if without else set(native.arrays)
    )
    assert set(other.arrays) == expected
    for name in expected:
        a, b = native.arrays[name], other.arrays[name]
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if a.dtype.kind in "iu":
            np.testing.assert_array_equal(b, a, err_msg=name)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, equal_nan=True, err_msg=name)
    assert other.notes["id_text"] == native.notes["id_text"]


@needs_nnsight
@pytest.mark.parametrize("arch", ARCHS)
def test_token_by_token_equals_the_native_run(arch):
    bundle = tiny_bundle(arch)
    options = GenerationOptions(max_new_tokens=4)
    native = run(bundle, PROMPT, FULL_SPEC, options)
    other = run_nnsight(bundle, PROMPT, FULL_SPEC, options)
    assert_same_trace(native, other)
    assert other.has("heads.entropy") and other.has("pattern.1.3")  # the tap works inside
    assert other.notes["backend"] == "nnsight" and HEADS_MISSING_NOTE not in other.notes


@needs_nnsight
def test_the_default_spec_and_sampling_equal_the_native_run():
    bundle = tiny_bundle("llama")
    options = GenerationOptions(max_new_tokens=5, temperature=0.8, top_p=0.9, seed=3)
    assert_same_trace(
        run(bundle, PROMPT, None, options), run_nnsight(bundle, PROMPT, None, options)
    )


@needs_nnsight
def test_steps_are_reported_and_a_cancel_stops_the_run():
    bundle = tiny_bundle("llama")
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def on_step(trace: Trace, start: int, stop: int) -> None:
        seen.append((start, stop))
        if len(seen) == 3:
            cancel.set()

    trace = run_nnsight(
        bundle, PROMPT, None, GenerationOptions(max_new_tokens=8), on_step=on_step, cancel=cancel
    )
    n = trace.n_prompt
    assert seen == [(0, n), (n, n + 1), (n + 1, n + 2)]
    assert trace.stop_reason == "cancelled" and trace.n_generated == 2


@needs_nnsight
@pytest.mark.parametrize("arch", ARCHS)
def test_interventions_as_nnsight_edits_equal_the_native_hooks(arch):
    """Every kind of intervention (zero, mean and resample-free ablations of a head, a neuron
    and a block at some positions, a patch from a second prompt, a steering vector), written
    as nnsight edits inside each step's trace, changes the run exactly as the native hooks do,
    the generated tokens included."""
    from neuroscope_tui.capture.interventions import Ablation, Patch, Steering

    bundle = tiny_bundle(arch)
    direction = np.random.default_rng(0).standard_normal(bundle.anatomy.d_model)
    prompt = "the cat sat on the mat"
    ivs = [
        Ablation("head", 0, 1),
        Ablation("neuron", 1, 3, mode="mean"),
        Ablation("mlp", 1, positions=(1, 2)),
        Patch("resid", 1, (2,), source="the mat sat on the cat"),  # same token length
        Steering(0, 3.0, tuple(direction.tolist())),
    ]
    options = GenerationOptions(max_new_tokens=4, stop_at_eos=False)
    native = run(bundle, prompt, FULL_SPEC, options, interventions=ivs)
    other = run_nnsight(bundle, prompt, FULL_SPEC, options, interventions=ivs)
    clean = run(bundle, prompt, FULL_SPEC, options)
    assert not np.allclose(native.get("resid.norm"), clean.get("resid.norm"))  # they bite
    assert other.interventions == native.interventions and len(other.interventions) == 5
    assert_same_trace(native, other)


@needs_nnsight
def test_a_patch_of_another_length_is_refused_as_natively():
    from neuroscope_tui.capture.interventions import InterventionError, Patch

    iv = Patch("resid", 1, (2,), source="a much longer second prompt than the first one")
    with pytest.raises(InterventionError, match="same token length"):
        run_nnsight(tiny_bundle("llama"), PROMPT, interventions=[iv])


@needs_nnsight
@pytest.mark.parametrize("arch", ARCHS)
def test_one_request_run_equals_the_native_run_but_heads(arch):
    """The whole run as one generate trace (what NDIF runs), here on this machine."""
    bundle = tiny_bundle(arch)
    options = GenerationOptions(max_new_tokens=4)
    native = run(bundle, PROMPT, FULL_SPEC, options)
    other = whole_run(wrap(bundle), bundle, PROMPT, FULL_SPEC, options)
    assert_same_trace(native, other, without=("heads.", "pattern."))
    assert "attention probabilities" in other.notes[HEADS_MISSING_NOTE]
    assert not other.spec.head_scores and other.spec.pattern_heads == ()


@needs_nnsight
def test_one_request_run_stops_after_the_eos_token_as_run_does():
    bundle = tiny_bundle("llama")
    free = run(bundle, PROMPT, None, GenerationOptions(max_new_tokens=4))
    eos = free.token_ids[free.n_prompt + 1]  # make the second generated token the EOS
    bundle.model.generation_config.eos_token_id = eos
    options = GenerationOptions(max_new_tokens=6)
    native = run(bundle, PROMPT, None, options)
    other = whole_run(wrap(bundle), bundle, PROMPT, None, options)
    assert native.stop_reason == "eos" and native.n_generated == 2
    assert_same_trace(native, other, without=("heads.",))


@needs_nnsight
def test_one_request_run_refuses_sampling():
    bundle = tiny_bundle("llama")
    with pytest.raises(UsageError, match="greedily"):
        whole_run(wrap(bundle), bundle, PROMPT, None, GenerationOptions(temperature=0.7))


def test_without_nnsight_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "nnsight", None)  # import nnsight -> ImportError
    with pytest.raises(BackendError) as err:
        require_nnsight()
    assert str(err.value) == INSTALL_HINT and "neuroscope-tui[nnsight]" in INSTALL_HINT
    with pytest.raises(BackendError):
        run_nnsight(tiny_bundle("llama"), PROMPT)


@needs_nnsight
@pytest.mark.smollm2
def test_smollm2_equals_the_native_run(smollm2):
    options = GenerationOptions(max_new_tokens=2)
    spec = CaptureSpec(pattern_heads=((3, 2),))
    native = run(smollm2, PROMPT, spec, options)
    assert_same_trace(native, run_nnsight(smollm2, PROMPT, spec, options))
    other = whole_run(wrap(smollm2), smollm2, PROMPT, spec, options)
    assert_same_trace(native, other, without=("heads.", "pattern."))
    assert set(HEAD_SCORES) <= {k.split(".")[1] for k in native.arrays if k.startswith("heads.")}
