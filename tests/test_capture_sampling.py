"""Sparse sampling (capture/sampling.py): every k-th layer, a random or fixed subset of MLP
neurons, top-k only, float16 rows. The sampled arrays equal the matching slices of a full
capture; snapshots record the sampling; every view and every export opens a sampled capture."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from neuroscope_tui.capture.sampling import Sampling, layer_choice, neuron_choice
from neuroscope_tui.errors import UsageError
from neuroscope_tui.trace import CaptureSpec
from tiny_models import build_tiny, tiny_bundle

pytestmark = pytest.mark.anyio


PROMPT = "The capital of France is Paris. The cat sat on the mat."


def test_layer_and_neuron_choices_parse_and_refuse():
    assert layer_choice("all", 8) is None
    assert layer_choice("every:3", 8) == (0, 3, 6)
    assert layer_choice("5,1,1", 8) == (1, 5)
    subset, full, how, _ = neuron_choice("random:4:7", 16)
    assert len(subset) == 4 and len(set(subset)) == 4 and full and how == "random:4:7"
    assert subset == tuple(sorted(np.random.default_rng(7).choice(16, 4, replace=False)))
    assert neuron_choice("random:4:7", 16) == neuron_choice("random:4:7", 16)  # seeded
    assert neuron_choice("top:3", 16) == (None, False, "top:3", 3)
    assert neuron_choice("9,2", 16)[0] == (2, 9)
    for bad in ("every:0", "every:x", "1,a", "-1"):
        with pytest.raises(UsageError):
            layer_choice(bad, None)
    with pytest.raises(UsageError, match="has layers 0 to 7"):
        layer_choice("9", 8, "m")
    for bad in ("random:", "random:4:x", "top:0", "1,b"):
        with pytest.raises(UsageError):
            neuron_choice(bad, None)
    with pytest.raises(UsageError, match="16 MLP neurons"):
        neuron_choice("random:40", 16, "m")
    with pytest.raises(UsageError, match="memory-budget"):
        Sampling(memory_budget="lots").check()
    with pytest.raises(UsageError, match="not among the layers"):
        Sampling(layers="every:2").apply(CaptureSpec(full_layers=(1,)), 4, 16, "m")


def test_sampled_capture_equals_the_slices_of_a_full_capture():
    from neuroscope_tui.capture.run import GenerationOptions, run

    bundle = tiny_bundle("llama", num_hidden_layers=4)
    options = GenerationOptions(max_new_tokens=3)
    full = run(bundle, PROMPT, CaptureSpec(full_layers=None), options)
    sampling = Sampling(layers="every:2", neurons="random:8:1", full_dtype="float16")
    spec = sampling.apply(CaptureSpec(full_layers=None), 4, bundle.anatomy.d_mlp, "tiny")
    assert spec.layers == (0, 2) and len(spec.neuron_subset) == 8
    part = run(bundle, PROMPT, spec, options)
    assert part.token_ids == full.token_ids
    cols = list(spec.neuron_subset)
    for name in ("resid.norm", "mlp.max_abs", "heads.entropy", "lens.kl", "neurons.top_val"):
        np.testing.assert_allclose(part.get(name), full.get(name)[[0, 2]], rtol=1e-5, atol=1e-6)
    assert part.get("neurons.full").dtype == np.float16
    assert part.get("neurons.full").shape == (2, full.n_tokens, 8)
    np.testing.assert_array_equal(
        part.get("neurons.full"), full.get("neurons.full")[[0, 2]][..., cols].astype(np.float16)
    )
    np.testing.assert_array_equal(
        part.get("resid.full"), full.get("resid.full")[[0, 2]].astype(np.float16)
    )
    top = run(bundle, PROMPT, Sampling(neurons="top:4").apply(CaptureSpec(), 4, 64, "t"), options)
    assert not top.has("neurons.full") and top.get("neurons.top_idx").shape[-1] == 4


def test_spec_records_sampling_and_reads_old_specs():
    spec = CaptureSpec(
        layers=(0, 4), neuron_subset=(3, 9), neuron_sampling="fixed", full_dtype="float16"
    )
    assert CaptureSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in spec.to_dict().items() if k in ("sites", "layers", "top_k")}
    back = CaptureSpec.from_dict(old)
    assert back.neuron_subset is None and back.full_neurons and back.full_dtype == "float32"
    notes = spec.sampling_notes(8, 64)
    assert notes == [
        "2 of 8 layers sampled",
        "2 of 64 MLP neurons kept (fixed)",
        "full rows stored as float16",
    ]
    assert CaptureSpec().sampling_notes(8, 64) == []
    assert replace(spec, full_neurons=False).sampling_notes(8)[1].startswith("no full MLP")


def test_neuron_series_maps_a_neuron_to_its_sampled_column():
    from neuroscope_tui.trace import ModelInfo, Trace
    from neuroscope_tui.tui.widgets.series import neuron_series

    trace = Trace(
        model=ModelInfo(name="m", n_layers=2, d_mlp=16),
        spec=CaptureSpec(full_layers=None, neuron_subset=(3, 9)),
    )
    full = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    top_idx = np.full((2, 3, 1), 9, np.int32)
    trace.append([1, 2, 3], ["a", "b", "c"], {"neurons.full": full, "neurons.top_idx": top_idx,
                                              "neurons.top_val": full[..., 1:]})  # fmt: skip
    values, complete = neuron_series(trace, 1, 9)
    assert complete and values.tolist() == full[1, :, 1].tolist()
    values, complete = neuron_series(trace, 1, 5)  # not sampled: top-k appearances only
    assert not complete and np.isnan(values).all()


@pytest.fixture(scope="module")
def sampled_snapshot(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sampled")
    model = build_tiny("llama", folder / "model", num_hidden_layers=4)
    out = folder / "sampled.nscope"
    cmd = [sys.executable, "-m", "neuroscope_tui", "capture", str(model), "--prompt", PROMPT,
           "-o", str(out), "--max-new-tokens", "3", "--layers", "every:2",
           "--neurons", "random:8:0", "--full-dtype", "float16"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "memory estimate for" in done.stderr
    return out


def test_every_export_of_a_sampled_capture_works_or_says_what_is_missing(sampled_snapshot):
    from neuroscope_tui.analysis.exports import EXPORTS

    for kind in EXPORTS:
        cmd = [sys.executable, "-m", "neuroscope_tui", "export", str(sampled_snapshot), kind,
               "--format", "json"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in done.stderr, (kind, done.stderr)
        if kind in ("flow",):
            assert done.returncode == 2 and "sampled 2 of 4 layers" in done.stderr
        elif kind in (
            "attribution",
            "patching",
            "interventions",
            "concepts",
            "watch",
        ) or kind.startswith("drift"):
            # not asked for at capture: one sentence, exit 2
            assert done.returncode == 2 and done.stderr.count("\n") == 1
        else:
            assert done.returncode == 0, (kind, done.stderr)


async def test_every_view_opens_a_sampled_capture(sampled_snapshot):
    from neuroscope_tui.snapshot import load_snapshot
    from neuroscope_tui.tui.app import NeuroscopeApp

    trace = load_snapshot(sampled_snapshot)
    app = NeuroscopeApp(snapshot=trace, snapshot_path=str(sampled_snapshot))
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any("2 of 4 layers sampled" in n and "8 of" in n for n in notes)
        for key in "12345678":
            await pilot.press(key)
            await pilot.pause()
            assert app.current_view  # the app is still up: no exception ended it
        await pilot.press("1", "down", "right")
        await pilot.pause()
    assert app.return_code in (None, 0)
