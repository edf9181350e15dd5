"""Interventions applied during a run, checked against the same change written by hand.

- zero-ablating a head equals zeroing its slice of the output projection's input by hand;
- mean-ablating a neuron equals writing its prompt mean by hand; resampling a block equals
  copying the second prompt's output by hand;
- patching a cell with its own activation changes nothing; patching the residual stream from
  another prompt equals writing that prompt's hidden state (transformers' own) by hand;
- a steering vector stays applied to every generated token;
- on tiny models of several architectures, grouped-query attention (llama, n_kv < n_heads)
  included; hooks are gone afterwards; the trace and the snapshot say what was done.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope_tui.capture.interventions import (
    Ablation,
    InterventionError,
    Patch,
    Steering,
    intervention_from_dict,
)
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.snapshot import load_snapshot, save_snapshot
from tiny_models import tiny_bundle

PROMPT = "The cat sat on the mat and the cat looked at the dog"
OTHER = "The dog sat on the mat and the cat looked at the cat"
ARCHS = ["llama", "gpt2", "gpt_neox", "phi3", "opt", "gemma2"]
OPTIONS = GenerationOptions(max_new_tokens=4)


@pytest.fixture(scope="module", params=ARCHS)
def bundle(request):
    return tiny_bundle(request.param)


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _by_hand(module: torch.nn.Module, change, pre: bool = True):
    """Register a plain torch hook that rewrites the first input (pre) or output."""
    if pre:

        def hook(m, args):
            return (change(args[0].clone()), *args[1:])

        return module.register_forward_pre_hook(hook)

    def out_hook(m, args, output):
        if isinstance(output, torch.Tensor):
            return change(output.clone())
        return (change(output[0].clone()), *output[1:])

    return module.register_forward_hook(out_hook)


def _same_run(a, b) -> None:
    assert a.token_ids == b.token_ids
    for name in ("logits.top_probs", "resid.norm", "mlp.norm", "heads.entropy"):
        np.testing.assert_allclose(a.arrays[name], b.arrays[name], rtol=1e-5, atol=1e-6)


def test_zero_ablating_a_head_is_zeroing_its_slice_by_hand(bundle):
    a = bundle.anatomy
    dh, layer, head = a.d_head, a.n_layers - 1, a.n_heads - 1
    before = _hooks(bundle.model)
    ablated = run(bundle, PROMPT, options=OPTIONS, interventions=[Ablation("head", layer, head)])
    assert _hooks(bundle.model) == before

    def zero(x):
        x[..., head * dh : (head + 1) * dh] = 0
        return x

    handle = _by_hand(a.out_proj[layer], zero)
    try:
        by_hand = run(bundle, PROMPT, options=OPTIONS)
    finally:
        handle.remove()
    _same_run(ablated, by_hand)
    plain = run(bundle, PROMPT, options=OPTIONS)
    assert not np.allclose(plain.arrays["logits.top_probs"], ablated.arrays["logits.top_probs"])


def test_mean_ablating_a_neuron_writes_its_prompt_mean(bundle):
    a = bundle.anatomy
    ids = bundle.tokenizer(PROMPT)["input_ids"]
    seen = {}
    handle = a.down_proj[0].register_forward_pre_hook(
        lambda m, args: seen.setdefault("x", args[0].clone())
    )
    try:
        with torch.no_grad():
            bundle.model(input_ids=torch.tensor([ids]), use_cache=False)
    finally:
        handle.remove()
    x = seen["x"].reshape(-1, len(ids), seen["x"].shape[-1])
    mean = x[0, :, 5].mean()

    def write(x):
        x[..., 5] = mean
        return x

    handle = _by_hand(a.down_proj[0], write)
    try:
        by_hand = run(bundle, PROMPT, options=OPTIONS)
    finally:
        handle.remove()
    ablated = run(
        bundle, PROMPT, options=OPTIONS, interventions=[Ablation("neuron", 0, 5, mode="mean")]
    )
    _same_run(ablated, by_hand)


def test_patching_a_cell_with_its_own_activation_changes_nothing(bundle):
    plain = run(bundle, PROMPT, options=OPTIONS)
    last = bundle.anatomy.n_layers - 1
    own = [
        Patch("resid", 0, (0, 3), source=PROMPT),
        Patch("resid", last, (5,), source=PROMPT),
        Patch("head", last, (1, 2, 7), index=1, source=PROMPT),
        Patch("mlp", 0, (4,), source=PROMPT),
        Ablation("attn", last, mode="resample", source=PROMPT, positions=(2,)),
    ]
    patched = run(bundle, PROMPT, options=OPTIONS, interventions=own)
    _same_run(patched, plain)
    np.testing.assert_array_equal(patched.arrays["resid.norm"], plain.arrays["resid.norm"])


def test_patching_the_stream_writes_the_other_prompts_hidden_state(bundle):
    ids = bundle.tokenizer(PROMPT)["input_ids"]
    other = bundle.tokenizer(OTHER)["input_ids"]
    assert len(ids) == len(other)
    with torch.no_grad():
        hidden = bundle.model(
            input_ids=torch.tensor([other]), use_cache=False, output_hidden_states=True
        ).hidden_states
    layer, pos = 1, 3
    source = hidden[layer][0, pos]  # the input of block `layer` at `pos`

    def write(module, args, kwargs):
        x = (args[0] if args else kwargs["hidden_states"]).clone()
        if x.shape[1] > pos:  # the prompt's pass holds position pos
            x[0, pos] = source
        return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

    block = bundle.anatomy.blocks[layer]
    handle = block.register_forward_pre_hook(write, with_kwargs=True)
    try:
        by_hand = run(bundle, PROMPT, options=OPTIONS)
    finally:
        handle.remove()
    patched = run(
        bundle, PROMPT, options=OPTIONS, interventions=[Patch("resid", layer, (pos,), source=OTHER)]
    )
    _same_run(patched, by_hand)
    plain = run(bundle, PROMPT, options=OPTIONS)
    assert not np.allclose(plain.arrays["resid.norm"], patched.arrays["resid.norm"])


def test_resampling_a_block_copies_the_other_prompts_output(bundle):
    ids = bundle.tokenizer(OTHER)["input_ids"]
    seen = {}
    mlp = bundle.anatomy.mlp[0]
    handle = mlp.register_forward_hook(lambda m, a, out: seen.setdefault("y", out.clone()))
    try:
        with torch.no_grad():
            bundle.model(input_ids=torch.tensor([ids]), use_cache=False)
    finally:
        handle.remove()
    source = seen["y"].reshape(1, len(ids), -1)

    def write(y):
        shaped = y.reshape(1, -1, y.shape[-1])
        if shaped.shape[1] == len(ids):  # the prompt's pass; generated tokens keep their own
            shaped[:] = source
        return y

    handle = _by_hand(mlp, write, pre=False)
    try:
        by_hand = run(bundle, PROMPT, options=OPTIONS)
    finally:
        handle.remove()
    resampled = run(
        bundle,
        PROMPT,
        options=OPTIONS,
        interventions=[Ablation("mlp", 0, mode="resample", source=OTHER)],
    )
    _same_run(resampled, by_hand)


def test_steering_stays_on_for_every_generated_token(bundle):
    a = bundle.anatomy
    plain = run(bundle, PROMPT, options=OPTIONS)
    # steer the last layer towards a token the plain model does not repeat after reading it
    # (a tied-embedding model echoes many): with a large alpha the steered run writes it at
    # every step, a run steered only on the prompt once
    ids = plain.token_ids[: plain.n_prompt]

    def echoed(w: int) -> bool:
        with torch.no_grad():
            logits = bundle.model(input_ids=torch.tensor([[*ids, w]]), use_cache=False).logits
        return int(logits[0, -1].argmax()) == w

    word = next(w for w in range(10, 160) if w not in plain.token_ids and not echoed(w))
    direction = a.unembed.weight[word].detach().clone()
    alpha, layer = 200.0 / float(direction.norm()), a.n_layers - 1
    steer = Steering(layer, alpha, tuple(direction.tolist()), label="towards a word")

    def add_on_prompt(m, args, output):
        x = output if isinstance(output, torch.Tensor) else output[0]
        if x.shape[1] == 1:  # a generated token: not steered
            return None
        x = x + alpha * direction
        return x if isinstance(output, torch.Tensor) else (x, *output[1:])

    handle = a.blocks[layer].register_forward_hook(add_on_prompt)
    try:
        prompt_only = run(bundle, PROMPT, options=OPTIONS)
    finally:
        handle.remove()
    steered = run(bundle, PROMPT, options=OPTIONS, interventions=[steer])
    n = steered.n_prompt
    # the first generated token comes from the prompt's pass: the same in both
    assert steered.token_ids[n] == prompt_only.token_ids[n] == word
    assert steered.token_ids[n + 1] == word != prompt_only.token_ids[n + 1]
    # and it is exactly "added after block `layer` at every forward"
    handle = _by_hand(a.blocks[layer], lambda x: x + alpha * direction, pre=False)
    try:
        always = run(bundle, PROMPT, options=OPTIONS)
    finally:
        handle.remove()
    _same_run(steered, always)


def test_positions_limit_an_ablation():
    bundle = tiny_bundle("llama")
    plain = run(bundle, PROMPT, options=OPTIONS)
    late = run(bundle, PROMPT, options=OPTIONS, interventions=[Ablation("attn", 0, positions=(6,))])
    np.testing.assert_array_equal(
        late.arrays["resid.norm"][:, :6], plain.arrays["resid.norm"][:, :6]
    )
    assert not np.allclose(late.arrays["resid.norm"][:, 6], plain.arrays["resid.norm"][:, 6])


def test_a_disabled_intervention_is_recorded_and_not_applied():
    bundle = tiny_bundle("llama")
    plain = run(bundle, PROMPT, options=OPTIONS)
    off = Ablation("attn", 0, enabled=False)
    traced = run(bundle, PROMPT, options=OPTIONS, interventions=[off])
    _same_run(traced, plain)
    assert [intervention_from_dict(d) for d in traced.interventions] == [off]


@pytest.mark.parametrize(
    "iv, words",
    [
        (Patch("resid", 0, (1,), source="a short one"), "same token length"),
        (Ablation("head", 0, 4), "head 4 is out of range"),
        (Ablation("neuron", 5, 0), "layer 5 is out of range"),
        (Steering(0, 1.0, (1.0,) * 7), "has 7 numbers"),
    ],
)
def test_bad_interventions_are_refused_before_the_run(iv, words):
    bundle = tiny_bundle("llama")
    before = _hooks(bundle.model)
    with pytest.raises(InterventionError, match=words):
        run(bundle, PROMPT, options=OPTIONS, interventions=[iv])
    assert _hooks(bundle.model) == before


def test_the_snapshot_says_what_was_done(tmp_path):
    import json

    from safetensors.numpy import load_file, save_file

    bundle = tiny_bundle("llama")
    ivs = [Ablation("head", 1, 2, mode="mean"), Steering(0, 2.0, (0.5,) * 32, label="v")]
    traced = run(bundle, PROMPT, options=OPTIONS, interventions=ivs)
    path = save_snapshot(traced, tmp_path / "run.nscope")
    loaded = load_snapshot(path)
    assert [intervention_from_dict(d) for d in loaded.interventions] == ivs

    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    key = next(iter(meta))
    manifest = json.loads(meta[key])
    tensors = load_file(str(path))
    del manifest["interventions"]  # an older snapshot
    save_file(tensors, str(tmp_path / "old.nscope"), {key: json.dumps(manifest)})
    assert load_snapshot(tmp_path / "old.nscope").interventions == []
    manifest["interventions"] = [{"kind": "ablate", "site": "head", "layer": 9, "index": 0}]
    save_file(tensors, str(tmp_path / "bad.nscope"), {key: json.dumps(manifest)})
    with pytest.raises(SnapshotError, match="interventions"):
        load_snapshot(tmp_path / "bad.nscope")


def test_a_lens_derived_later_sees_the_intervened_stream():
    from neuroscope_tui.capture.derive import derive_lens
    from neuroscope_tui.trace import CaptureSpec

    bundle = tiny_bundle("llama")
    ivs = [Ablation("head", 1, 2, mode="mean"), Ablation("mlp", 0)]
    now = run(bundle, PROMPT, CaptureSpec(full_layers=()), OPTIONS, interventions=ivs)
    later = run(
        bundle, PROMPT, CaptureSpec(full_layers=(), lens_positions=(0,)), OPTIONS, interventions=ivs
    )
    assert np.isnan(later.arrays["lens.kl"][:, 3]).all()
    derive_lens(bundle, later, [3, later.n_tokens - 2])
    for t in (3, later.n_tokens - 2):
        np.testing.assert_allclose(
            later.arrays["lens.kl"][:, t], now.arrays["lens.kl"][:, t], atol=1e-5
        )
        np.testing.assert_array_equal(
            later.arrays["lens.top_ids"][:, t], now.arrays["lens.top_ids"][:, t]
        )
