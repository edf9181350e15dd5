"""The recorder's one-batch reduction of a generated token equals the per-layer hooks' rows.

A generated token's hooks only keep references; `flush()` stacks every block's input and
output, every attention and MLP output into one tensor and reduces them at once
(`Recorder._summarise_together`). These tests run the same generation with that path and
with the per-layer path (every row reduced inside its hook) on a tiny model of every
architecture, and check the rows agree, that the batched path was the one taken where the
blocks chain, and that a run's inference mode does not reach its `on_step` callback.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuroscope_tui.capture.run as run_module
from neuroscope_tui.capture.recorder import Recorder
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.trace import CaptureSpec
from tiny_models import ARCHS, tiny_bundle

PROMPT = "The cat sat on the mat and the cat looked at the dog"
SPEC = CaptureSpec(full_layers=None, lens_positions=(), pattern_heads=((1, 0),))
OPTIONS = GenerationOptions(max_new_tokens=4, stop_at_eos=False)


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_step_rows_equal_per_layer_rows(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tiny_bundle(arch)
    together: list[bool] = []
    original = Recorder._summarise_together

    def spy(self, raw, rows, near_zero):
        together.append(original(self, raw, rows, near_zero))
        return together[-1]

    monkeypatch.setattr(Recorder, "_summarise_together", spy)
    batched = run(bundle, PROMPT, SPEC, OPTIONS)
    assert together, "no generated token went through the batched reduction"
    # decoder blocks hand their output on as the next block's input: the one-stack path runs
    assert all(together), arch
    monkeypatch.setattr(run_module, "DEFER_QUERIES", 0)  # every row reduced in its hook
    per_layer = run(bundle, PROMPT, SPEC, OPTIONS)
    assert batched.token_ids == per_layer.token_ids
    assert sorted(batched.arrays) == sorted(per_layer.arrays)
    for name, arr in batched.arrays.items():
        ref = per_layer.arrays[name]
        assert arr.dtype == ref.dtype, name
        if arr.dtype.kind == "i":
            np.testing.assert_array_equal(arr, ref, err_msg=name)
        else:
            np.testing.assert_allclose(arr, ref, rtol=1e-5, atol=1e-6, err_msg=name)


def test_batched_path_falls_back_for_a_layer_subset() -> None:
    bundle = tiny_bundle("llama")
    spec = CaptureSpec(layers=(0,), full_layers=None, lens_positions=())
    whole = run(bundle, PROMPT, CaptureSpec(full_layers=None, lens_positions=()), OPTIONS)
    part = run(bundle, PROMPT, spec, OPTIONS)
    for name in ("resid.norm", "resid.delta", "resid.cos", "attn.norm", "mlp.mean"):
        np.testing.assert_allclose(part.get(name)[0], whole.get(name)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(part.get("resid.full")[0], whole.get("resid.full")[0], atol=1e-6)


def test_float16_full_rows_from_the_batched_path() -> None:
    bundle = tiny_bundle("llama")
    spec = CaptureSpec(full_layers=None, lens_positions=(), full_dtype="float16")
    half = run(bundle, PROMPT, spec, OPTIONS)
    full = run(bundle, PROMPT, CaptureSpec(full_layers=None, lens_positions=()), OPTIONS)
    for name in ("resid.full", "neurons.full"):
        assert half.get(name).dtype == np.float16, name
        np.testing.assert_array_equal(half.get(name), full.get(name).astype(np.float16))


def test_on_step_runs_outside_inference_mode() -> None:
    """The run itself is in inference mode; what its caller computes between steps (an
    attribution's gradients) gets ordinary tensors, with grad off as under no_grad."""
    bundle = tiny_bundle("llama")
    seen: list[tuple[bool, bool, bool]] = []

    def on_step(trace, start, stop) -> None:
        with torch.enable_grad():
            x = torch.ones(3, requires_grad=True)
            (x * 2).sum().backward()
        seen.append(
            (torch.is_inference_mode_enabled(), torch.is_grad_enabled(), x.grad is not None)
        )

    run(bundle, PROMPT, SPEC, GenerationOptions(max_new_tokens=2), on_step=on_step)
    assert seen and all(s == (False, False, True) for s in seen)
