"""Capture on a tiny random model of every claimed architecture, checked against transformers.

- the attention tap's patterns equal eager `output_attentions` within 1e-5;
- the tap's per-head scores equal the same scores computed from eager `output_attentions`;
- the residual after each block equals `output_hidden_states` (the last with the final norm);
- the last layer's logit lens is the model's own prediction;
- generation records one new row per step and matches a full forward of the whole sequence;
- hooks and the tap are gone after a run, after an error and after a cancel.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from neuroscope_tui.capture.anatomy import find_anatomy
from neuroscope_tui.capture.attention_scores import head_stats
from neuroscope_tui.capture.patterns import compute_patterns
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import CaptureSpec
from tiny_models import ARCHS, build_model, tiny_bundle

PROMPT = "The cat sat on the mat and the cat looked at the dog"


def bundle_for(arch: str, attn: str | None = None) -> LoadedModel:
    bundle = tiny_bundle(arch)
    if attn:
        bundle.model.set_attn_implementation(attn)
    return bundle


def _hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._forward_hooks_with_kwargs)
        for m in model.modules()
    )


def _eager_reference(bundle: LoadedModel, ids: list[int]):
    """output_attentions / output_hidden_states from a separate eager copy of the model."""
    import copy

    ref = copy.deepcopy(bundle.model)
    ref.set_attn_implementation("eager")
    with torch.no_grad():
        return ref(input_ids=torch.tensor([ids]), output_attentions=True, output_hidden_states=True)


@pytest.fixture(params=ARCHS)
def arch(request: pytest.FixtureRequest) -> str:
    return request.param


def test_anatomy_counts(arch: str) -> None:
    b = bundle_for(arch)
    a = b.anatomy
    assert a.n_layers == 2 and len(a.blocks) == len(a.attention) == len(a.mlp) == 2
    assert a.n_heads == 4 and a.d_model == 32
    assert a.d_mlp in (64, 128)  # gpt2 uses 4 x width
    assert a.final_norm is not None


@pytest.fixture(params=["batched", "chunked"])
def scoring(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Short calls are scored after the step for all layers at once ("batched"); long ones
    chunk by chunk as they happen ("chunked"). Force each path on the same short prompt."""
    if request.param == "chunked":
        import neuroscope_tui.capture.attention_tap as tap_module
        import neuroscope_tui.capture.run as run_module

        monkeypatch.setattr(tap_module, "DEFER_QUERIES", 0)
        monkeypatch.setattr(tap_module, "MIN_CHUNK", 4)  # several chunks, causal key cut-off
        monkeypatch.setattr(run_module, "DEFER_QUERIES", 0)
    return request.param


def test_prompt_capture_matches_transformers(arch: str, scoring: str) -> None:
    b = bundle_for(arch)
    heads = [(layer, h) for layer in range(2) for h in range(4)] + [(0, -1), (1, -1)]
    spec = CaptureSpec(full_layers=None, pattern_heads=tuple(heads))
    before = _hook_count(b.model)
    impl = b.model.config._attn_implementation
    trace = run(b, PROMPT, spec, GenerationOptions(max_new_tokens=0))
    assert _hook_count(b.model) == before
    assert b.model.config._attn_implementation == impl
    ids = trace.token_ids
    ref = _eager_reference(b, ids)
    n = len(ids)
    for layer in range(2):
        att = ref.attentions[layer][0].numpy()  # [H, T, T]
        for h in range(4):
            np.testing.assert_allclose(trace.get(f"pattern.{layer}.{h}"), att[h], atol=1e-5)
        np.testing.assert_allclose(trace.get(f"pattern.{layer}.-1"), att.mean(0), atol=1e-5)
        stats = head_stats(torch.from_numpy(att), torch.arange(n), torch.tensor(ids))
        for name, val in stats.items():
            np.testing.assert_allclose(
                trace.get(f"heads.{name}")[layer], val.numpy(), atol=1e-4, err_msg=name
            )
    # residual stream after each block
    full = trace.get("resid.full")  # [L, T, D]
    hs = ref.hidden_states
    np.testing.assert_allclose(full[0], hs[1][0].numpy(), atol=1e-4)
    with torch.no_grad():
        normed = b.anatomy.final_norm(torch.from_numpy(full[1]))
    np.testing.assert_allclose(normed.numpy(), hs[2][0].numpy(), atol=1e-4)
    norms = np.linalg.norm(full, axis=-1)
    np.testing.assert_allclose(trace.get("resid.norm"), norms, rtol=1e-4)
    # the last layer's lens is the model's own prediction
    top1 = trace.get("lens.top_ids")[-1, :, 0]
    np.testing.assert_array_equal(top1, ref.logits[0].argmax(-1).numpy())
    np.testing.assert_array_equal(trace.get("lens.pred_rank")[-1], 0)
    np.testing.assert_allclose(trace.get("lens.kl")[-1], 0, atol=1e-4)


def test_generation_streams_one_row_per_step(arch: str, scoring: str) -> None:
    b = bundle_for(arch)
    steps: list[tuple[int, int]] = []
    spec = CaptureSpec(full_layers=None, pattern_heads=((1, 2),))
    trace = run(
        b,
        PROMPT,
        spec,
        GenerationOptions(max_new_tokens=5, stop_at_eos=False),
        on_step=lambda t, a, z: steps.append((a, z)),
    )
    n_prompt = trace.n_prompt
    assert trace.n_generated == 5
    assert steps[0] == (0, n_prompt)
    assert steps[1:] == [(n_prompt + i, n_prompt + i + 1) for i in range(5)]
    total = trace.n_tokens
    for name, arr in trace.arrays.items():
        if name.startswith("pattern."):
            assert arr.shape == (total, total), name
        else:
            assert arr.shape[Trace_axis(name)] == total, name
    # the streamed rows equal one forward pass over the whole sequence
    ref = _eager_reference(b, trace.token_ids)
    np.testing.assert_allclose(trace.get("pattern.1.2"), ref.attentions[1][0, 2].numpy(), atol=1e-5)
    np.testing.assert_allclose(trace.get("resid.full")[0], ref.hidden_states[1][0], atol=1e-4)
    # head scores of generated rows (scored in one batch per step) equal eager's
    ids = torch.tensor(trace.token_ids)
    for layer in range(2):
        att = ref.attentions[layer][0]
        stats = head_stats(att, torch.arange(total), ids)
        for name, val in stats.items():
            np.testing.assert_allclose(
                trace.get(f"heads.{name}")[layer], val.numpy(), atol=1e-4, err_msg=name
            )
    # block change and cosine from the full vectors
    full = trace.get("resid.full")
    x_in = np.concatenate([ref.hidden_states[0][0].numpy()[None], full[:-1]])
    delta = np.linalg.norm(full - x_in, axis=-1) / np.linalg.norm(x_in, axis=-1)
    np.testing.assert_allclose(trace.get("resid.delta"), delta, rtol=1e-3, atol=1e-5)
    # greedy: each generated token is the argmax of the previous position
    pred = ref.logits[0].argmax(-1).numpy()
    np.testing.assert_array_equal(trace.token_ids[n_prompt:], pred[n_prompt - 1 : -1])


def Trace_axis(name: str) -> int:
    from neuroscope_tui.trace import Trace

    return Trace.token_axis(name)


def test_eager_model_uses_tap_over_eager() -> None:
    b = bundle_for("llama", attn="eager")
    trace = run(b, PROMPT, CaptureSpec(pattern_heads=((0, 1),)), GenerationOptions(0))
    ref = _eager_reference(b, trace.token_ids)
    np.testing.assert_allclose(trace.get("pattern.0.1"), ref.attentions[0][0, 1], atol=1e-5)
    assert b.model.config._attn_implementation == "eager"


def test_compute_patterns_on_demand() -> None:
    b = bundle_for("qwen2")
    ids = b.tokenizer(PROMPT)["input_ids"]
    got = compute_patterns(b, ids, [(1, 3), (0, -1)])
    ref = _eager_reference(b, ids)
    np.testing.assert_allclose(got[(1, 3)], ref.attentions[1][0, 3], atol=1e-5)
    np.testing.assert_allclose(got[(0, -1)], ref.attentions[0][0].mean(0), atol=1e-5)


def test_hooks_removed_after_error_and_cancel() -> None:
    b = bundle_for("llama")
    before = _hook_count(b.model)

    def boom(trace, start, stop):
        if start > 0:
            raise RuntimeError("model failed")

    with pytest.raises(RuntimeError) as info:
        run(b, PROMPT, None, GenerationOptions(max_new_tokens=4, stop_at_eos=False), on_step=boom)
    assert info.value.trace.n_generated == 1  # the trace so far travels with the error
    assert _hook_count(b.model) == before
    assert not any(hasattr(m, "_neuroscope_tap") for m in b.model.modules())
    assert b.model.config._attn_implementation == "sdpa"

    cancel = threading.Event()

    def stop_after_two(trace, start, stop):
        if trace.n_generated >= 2:
            cancel.set()

    trace = run(
        b,
        PROMPT,
        None,
        GenerationOptions(max_new_tokens=10, stop_at_eos=False),
        on_step=stop_after_two,
        cancel=cancel,
    )
    assert trace.stop_reason == "cancelled" and trace.n_generated == 2
    assert _hook_count(b.model) == before


def test_sampling_is_seeded() -> None:
    b = bundle_for("gpt2")
    opts = GenerationOptions(
        max_new_tokens=6, temperature=1.0, top_p=0.9, seed=7, stop_at_eos=False
    )
    a = run(b, PROMPT, CaptureSpec(head_scores=False, lens_positions=()), opts)
    c = run(b, PROMPT, CaptureSpec(head_scores=False, lens_positions=()), opts)
    assert a.token_ids == c.token_ids


def test_unmappable_model_names_what_is_missing() -> None:
    from neuroscope_tui.errors import AnatomyError

    model = build_model("llama")
    model.model.layers = torch.nn.ModuleList(list(model.model.layers)[:1])  # config says 2
    with pytest.raises(AnatomyError, match="could not find the transformer blocks"):
        find_anatomy(model)
    model = build_model("llama")
    for block in model.model.layers:
        block.mixer = block.self_attn  # an attention module under a name nobody uses
        del block.self_attn
    with pytest.raises(AnatomyError, match="attention module in block 0"):
        find_anatomy(model)


def test_eager_fallback_for_models_without_the_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose code does not call AttentionInterface: scores from output_attentions."""
    from contextlib import contextmanager

    import neuroscope_tui.capture.run as run_module

    @contextmanager
    def no_tap(*args, **kwargs):
        yield False

    monkeypatch.setattr(run_module, "tapped", no_tap)
    b = bundle_for("qwen2")
    trace = run(
        b, PROMPT, CaptureSpec(pattern_heads=((1, 0),)), GenerationOptions(3, stop_at_eos=False)
    )
    assert b.model.config._attn_implementation == "sdpa"  # the fallback is undone
    ref = _eager_reference(b, trace.token_ids)
    n = trace.n_tokens
    np.testing.assert_allclose(trace.get("pattern.1.0"), ref.attentions[1][0, 0], atol=1e-5)
    stats = head_stats(ref.attentions[0][0], torch.arange(n), torch.tensor(trace.token_ids))
    np.testing.assert_allclose(trace.get("heads.entropy")[0], stats["entropy"], atol=1e-4)
