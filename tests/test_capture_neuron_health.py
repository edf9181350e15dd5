"""Neuron health (capture/neuron_health.py) against an independent computation.

The reference runs each block by hand from transformers' own `output_hidden_states` (the
attention module on the block's input, then the MLP's up projection), checks that the hand-run
block reproduces the next hidden state, applies the activation's formula in numpy and counts
there. The weights into the MLP are scaled up so that many pre-activations reach the flat part
of the activation and the flat fractions are not all zero.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from neuroscope_tui.capture.anatomy import find_anatomy
from neuroscope_tui.capture.neuron_health import (
    ACTIVE_THRESHOLD,
    FLAT_SLOPE,
    NO_ACTIVATION,
    NeuronObserver,
    slope,
)
from neuroscope_tui.capture.recorder import recording
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.trace import CaptureSpec
from tiny_models import ARCHS, build_model, tiny_bundle

PROMPTS = ["The cat sat on the mat and looked at the dog.", "One two three four five six"]
SPEC = CaptureSpec(full_layers=(), lens_positions=(), head_scores=False)


def _silu(x):
    return x / (1 + np.exp(-x))


def _silu_slope(x):
    s = 1 / (1 + np.exp(-x))
    return s * (1 + x * (1 - s))


def _gelu_new(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _gelu_new_slope(x):
    c = np.sqrt(2 / np.pi)
    u = c * (x + 0.044715 * x**3)
    t = np.tanh(u)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)


def _pre_activations(arch: str, model, ids: list[int]) -> list[np.ndarray]:
    """Each layer's MLP pre-activations [T, N] (float64), by hand from hidden states."""
    ref = copy.deepcopy(model)
    inputs = torch.tensor([ids])
    with torch.no_grad():
        hidden = ref(input_ids=inputs, output_hidden_states=True).hidden_states
        out = []
        n = len(hidden) - 1
        for layer in range(n):
            h = hidden[layer]
            if arch == "llama":
                block = ref.model.layers[layer]
                pos = torch.arange(len(ids))[None]
                rope = ref.model.rotary_emb(h, pos)
                attn = block.self_attn(
                    hidden_states=block.input_layernorm(h),
                    position_embeddings=rope,
                    attention_mask=None,
                )[0]
                mid = h + attn
                x = block.post_attention_layernorm(mid)
                pre = block.mlp.gate_proj(x)
                nxt = mid + block.mlp(x)
                final = ref.model.norm
            else:
                block = ref.transformer.h[layer]
                mid = h + block.attn(block.ln_1(h))[0]
                x = block.ln_2(mid)
                pre = block.mlp.c_fc(x)
                nxt = mid + block.mlp(x)
                final = ref.transformer.ln_f
            # the hand-run block is the model's block (the last hidden state has the final norm)
            expect = hidden[layer + 1]
            got = final(nxt) if layer == n - 1 else nxt
            torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-4)
            out.append(pre[0].double().numpy())
    return out


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_counts_match_a_hand_run_mlp(arch: str) -> None:
    bundle = tiny_bundle(arch)
    anatomy = bundle.anatomy
    with torch.no_grad():  # spread the pre-activations into the flat parts
        for layer in range(anatomy.n_layers):
            up = anatomy.mlp[layer].gate_proj if arch == "llama" else anatomy.mlp[layer].c_fc
            up.weight.mul_(40)
    observer = NeuronObserver(anatomy)
    options = GenerationOptions(max_new_tokens=0)
    traces = [run(bundle, p, SPEC, options, observer=observer) for p in PROMPTS]
    health = observer.health()

    f, df = (_silu, _silu_slope) if arch == "llama" else (_gelu_new, _gelu_new_slope)
    per_layer = [_pre_activations(arch, bundle.model, t.token_ids) for t in traces]
    n_tokens = sum(t.n_tokens for t in traces)
    assert health.n_tokens == n_tokens
    assert health.activation == ("SiLUActivation" if arch == "llama" else "NewGELUActivation")
    for layer in range(anatomy.n_layers):
        x = np.concatenate([p[layer] for p in per_layer])  # [tokens, N]
        fx = f(x)
        active = (np.abs(fx) > ACTIVE_THRESHOLD).mean(0)
        flat = (np.abs(df(x)) < FLAT_SLOPE).mean(0)
        # a value within float32 rounding of a threshold may fall either way: one token
        assert np.abs(health.active_frac[layer] - active).max() <= 1.01 / n_tokens
        assert np.abs(health.flat_frac[layer] - flat).max() <= 1.01 / n_tokens
        assert 0.05 < flat.mean() < 0.95  # the test means something: flat and active both
        np.testing.assert_allclose(health.max_abs[layer], np.abs(fx).max(0), rtol=1e-4)
        np.testing.assert_allclose(health.mean[layer], fx.mean(0), rtol=1e-3, atol=1e-4)


def test_the_slope_of_known_functions() -> None:
    x = torch.linspace(-8, 8, 161, dtype=torch.float64).float()
    relu = slope(torch.nn.ReLU(), x)
    away = x.abs() > 0.1  # the kink itself has no slope
    torch.testing.assert_close(relu[away], (x[away] > 0).float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(slope(torch.nn.Tanh(), x), 1 - torch.tanh(x) ** 2, atol=1e-4, rtol=0)
    sig = torch.sigmoid(x)
    torch.testing.assert_close(slope(torch.nn.Sigmoid(), x), sig * (1 - sig), atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_has_its_activation_module(arch: str) -> None:
    model = build_model(arch)
    anatomy = find_anatomy(model)
    assert len(anatomy.activation) == anatomy.n_layers
    for layer, act in enumerate(anatomy.activation):
        assert isinstance(act, torch.nn.Module)
        holder = anatomy.blocks[layer] if arch == "opt" else anatomy.mlp[layer]
        assert any(child is act for child in holder.children())
    assert len({id(a) for a in anatomy.activation}) == anatomy.n_layers


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_counts_every_token_and_removes_its_hooks(arch: str) -> None:
    bundle = tiny_bundle(arch)
    observer = NeuronObserver(bundle.anatomy)
    before = _hook_count(bundle.model)
    trace = run(bundle, PROMPTS[0], SPEC, GenerationOptions(max_new_tokens=0), observer=observer)
    assert _hook_count(bundle.model) == before
    health = observer.health()
    assert health.n_tokens == trace.n_tokens
    assert health.active_frac.shape == (bundle.anatomy.n_layers, bundle.anatomy.d_mlp)
    assert np.isfinite(health.active_frac).all() and np.isfinite(health.flat_frac).all()


def test_without_an_activation_module_it_counts_the_down_projection_input() -> None:
    bundle = tiny_bundle("llama")
    anatomy = bundle.anatomy
    anatomy.activation = [None] * anatomy.n_layers
    observer = NeuronObserver(anatomy)
    seen: dict[int, torch.Tensor] = {}
    handles = [
        anatomy.down_proj[layer].register_forward_pre_hook(
            lambda m, args, layer=layer: seen.__setitem__(layer, args[0][0].detach().clone())
        )
        for layer in range(anatomy.n_layers)
    ]
    try:
        run(bundle, PROMPTS[0], SPEC, GenerationOptions(max_new_tokens=0), observer=observer)
    finally:
        for h in handles:
            h.remove()
    health = observer.health()
    assert health.activation == NO_ACTIVATION
    assert np.isnan(health.flat_frac).all()
    for layer, rows in seen.items():
        expect = (rows.abs() > ACTIVE_THRESHOLD).float().mean(0).numpy()
        np.testing.assert_allclose(health.active_frac[layer], expect)


def test_a_neuron_that_made_nan_is_not_counted_dead() -> None:
    bundle = tiny_bundle("llama")
    anatomy = bundle.anatomy
    with torch.no_grad():
        anatomy.mlp[1].gate_proj.weight[5, 0] = float("nan")
    observer = NeuronObserver(anatomy)
    with torch.no_grad(), recording(anatomy, SPEC, observer=observer):
        bundle.model(input_ids=torch.tensor([[2, 10, 11, 12]]))
    health = observer.health()
    assert np.isnan(health.active_frac[1, 5]) and np.isnan(health.max_abs[1, 5])
    assert np.isfinite(health.active_frac[0]).all()
    assert np.isfinite(np.delete(health.active_frac[1], 5)).all()


def _hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._forward_hooks_with_kwargs)
        for m in model.modules()
    )
