"""Gradient health of one prompt (capture/gradients.py) against torch.autograd.grad by hand.

The reference works on a separate copy of the model: the loss from its own forward with
`output_hidden_states`, gradients of the hidden states and of each block's parameters from
`torch.autograd.grad`. The last block's output is not among the hidden states (transformers
gives it after the final norm), so its gradient comes from the head run by hand: the loss as a
function of that output, through the final norm and the unembedding.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuroscope_tui.capture.gradients import mlp_parameters, prompt_gradients
from tiny_models import ARCHS, tiny_bundle

IDS = [2, 17, 40, 33, 90, 12, 61, 7, 120, 44, 5]


def _reference(arch: str, model, ids: list[int]) -> dict[str, object]:
    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(True)
    inputs = torch.tensor([ids])
    out = ref(input_ids=inputs, output_hidden_states=True, use_cache=False)
    logits = out.logits[0]
    loss = F.cross_entropy(logits[:-1], inputs[0, 1:])
    hidden = out.hidden_states  # embeddings, blocks 0..L-2's outputs, the final norm's output
    n = len(hidden) - 1
    blocks = ref.model.layers if arch == "llama" else ref.transformer.h
    final = ref.model.norm if arch == "llama" else ref.transformer.ln_f
    grads = torch.autograd.grad(loss, [*hidden[:n], *ref.parameters()])
    by_param = dict(zip([id(p) for p in ref.parameters()], grads[n:], strict=True))

    def norm(params) -> float:
        return float(torch.sqrt(sum(by_param[id(p)].pow(2).sum() for p in params)))

    # the last block's output: the same value, as a leaf, through the head by hand
    with torch.no_grad():
        last = _last_block_output(ref, blocks, inputs)
    last.requires_grad_(True)
    head_logits = ref.get_output_embeddings()(final(last))[0]
    torch.testing.assert_close(head_logits, logits, atol=1e-5, rtol=1e-4)
    (g_last,) = torch.autograd.grad(F.cross_entropy(head_logits[:-1], inputs[0, 1:]), [last])
    if arch == "llama":
        attn = [b.self_attn for b in blocks]
        mlp = [list(b.mlp.parameters()) for b in blocks]
    else:
        attn = [b.attn for b in blocks]
        mlp = [list(b.mlp.parameters()) for b in blocks]
    return {
        "loss": float(loss.detach()),
        "embed": float(grads[0].norm()),
        "resid": [float(g.norm()) for g in grads[1:n]] + [float(g_last.norm())],
        "params": [norm(b.parameters()) for b in blocks],
        "attn_params": [norm(a.parameters()) for a in attn],
        "mlp_params": [norm(ps) for ps in mlp],
    }


def _last_block_output(ref, blocks, inputs) -> torch.Tensor:
    seen = {}
    handle = blocks[-1].register_forward_hook(
        lambda m, a, out: seen.__setitem__("x", out[0] if isinstance(out, tuple) else out)
    )
    try:
        ref(input_ids=inputs, use_cache=False)
    finally:
        handle.remove()
    return seen["x"].detach().clone()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_gradient_norms_match_autograd_by_hand(arch: str) -> None:
    bundle = tiny_bundle(arch)
    got = prompt_gradients(bundle.model, bundle.anatomy, IDS)
    expect = _reference(arch, bundle.model, IDS)
    assert got["loss"] == pytest.approx(expect["loss"], rel=1e-5)
    assert got["embed"] == pytest.approx(expect["embed"], rel=1e-4)
    for key in ("resid", "params", "attn_params", "mlp_params"):
        np.testing.assert_allclose(got[key], expect[key], rtol=1e-4, err_msg=key)
    # the test means something: the layers differ
    assert len(set(np.round(got["resid"], 6))) == bundle.anatomy.n_layers


def test_the_model_is_left_as_it_was() -> None:
    bundle = tiny_bundle("llama")
    model = bundle.model
    frozen = bundle.anatomy.attention[0].q_proj.weight
    frozen.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    weights = [p.detach().clone() for p in model.parameters()]
    before = _hook_count(model)
    got = prompt_gradients(model, bundle.anatomy, IDS)
    assert not model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())  # nothing written, nothing to zero
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))
    assert _hook_count(model) == before
    # the frozen weight still counts: its gradient is asked for while the pass runs
    assert np.isfinite(got["attn_params"]).all()


def test_a_one_token_prompt_has_no_loss() -> None:
    bundle = tiny_bundle("llama")
    got = prompt_gradients(bundle.model, bundle.anatomy, [2])
    assert np.isnan(got["loss"]) and np.isnan(got["resid"]).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_gives_finite_norms(arch: str) -> None:
    bundle = tiny_bundle(arch)
    got = prompt_gradients(bundle.model, bundle.anatomy, IDS)
    for key in ("resid", "params", "attn_params", "mlp_params"):
        values = np.asarray(got[key])
        assert values.shape == (bundle.anatomy.n_layers,) and np.isfinite(values).all(), key
        assert (values > 0).all(), key
    assert np.isfinite(got["embed"]) and got["embed"] > 0
    # attention and MLP are parts of the block
    assert all(np.asarray(got["attn_params"]) < np.asarray(got["params"]) + 1e-12)
    assert all(np.asarray(got["mlp_params"]) < np.asarray(got["params"]) + 1e-12)


def test_opt_mlp_parameters_are_its_two_linear_layers() -> None:
    bundle = tiny_bundle("opt")
    block = bundle.anatomy.blocks[0]
    names = {id(p): n for n, p in block.named_parameters()}
    got = sorted(names[id(p)] for p in mlp_parameters(bundle.anatomy, 0))
    assert got == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]


def _hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._forward_hooks_with_kwargs)
        for m in model.modules()
    )
