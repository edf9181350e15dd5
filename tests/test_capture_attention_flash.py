"""The head scores of a prompt from the fused kernel's log-sum-exp (capture/attention_flash.py)
equal those computed from eager `output_attentions`, for every architecture, and the model's
own output is unchanged."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import neuroscope_tui.capture.attention_flash as flash_module
import neuroscope_tui.capture.attention_tap as tap_module
import neuroscope_tui.capture.run as run_module
from neuroscope_tui.capture.attention_scores import head_stats
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.trace import CaptureSpec
from tiny_models import ARCHS, tiny_bundle

# repeats, so dup and induction have something to score
PROMPT = "The cat sat on the mat and the cat looked at the dog. The cat sat on the mat again."


@pytest.fixture
def flash_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Score every call in the tap (nothing deferred) and count the flash route's calls."""
    monkeypatch.setattr(tap_module, "DEFER_QUERIES", 0)
    monkeypatch.setattr(run_module, "DEFER_QUERIES", 0)
    calls: list[int] = []
    real = flash_module.flash_scores

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tap_module, "flash_scores", counted)
    return calls


def _eager(bundle, ids: list[int]):
    ref = copy.deepcopy(bundle.model)
    ref.set_attn_implementation("eager")
    with torch.no_grad():
        return ref(input_ids=torch.tensor([ids]), output_attentions=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_flash_scores_equal_eager(arch: str, flash_calls: list[int]) -> None:
    bundle = tiny_bundle(arch)
    spec = CaptureSpec(sites=("resid",), head_scores=True, lens_positions=())
    trace = run(bundle, PROMPT, spec, GenerationOptions(max_new_tokens=0))
    ids = trace.token_ids
    ref = _eager(bundle, ids)
    for layer in range(2):
        att = ref.attentions[layer][0]  # [H, T, T]
        stats = head_stats(att, torch.arange(len(ids)), torch.tensor(ids))
        for name, val in stats.items():
            np.testing.assert_allclose(
                trace.get(f"heads.{name}")[layer], val.numpy(), atol=1e-5, err_msg=name
            )
    # the attention output the model carried on with is its own: same next-token logits
    probs = torch.softmax(ref.logits[0].float(), -1)
    top = probs.topk(trace.get("logits.top_probs").shape[-1], dim=-1)
    np.testing.assert_allclose(trace.get("logits.top_probs"), top.values.numpy(), atol=1e-5)
    if arch not in ("gemma2",):  # soft-capping: the chunked route, which flash cannot repeat
        assert flash_calls, f"{arch}: the prompt did not take the flash route"


def test_flash_scores_in_many_small_blocks(
    flash_calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of a few queries per repeated token give the same dup and induction scores as
    one block per token."""
    bundle = tiny_bundle("llama")
    spec = CaptureSpec(sites=("resid",), head_scores=True, lens_positions=())
    whole = run(bundle, PROMPT, spec, GenerationOptions(max_new_tokens=0))
    monkeypatch.setattr(flash_module, "_BLOCK", 2)
    monkeypatch.setattr(flash_module, "_SIZES", (2,))
    pieces = run(bundle, PROMPT, spec, GenerationOptions(max_new_tokens=0))
    assert len(flash_calls) == 4
    assert whole.get("heads.dup").max() > 0 and whole.get("heads.induction").max() > 0
    for name in ("dup", "induction", "entropy", "first", "prev", "self"):
        np.testing.assert_allclose(
            pieces.get(f"heads.{name}"), whole.get(f"heads.{name}"), atol=1e-6
        )


def test_flash_route_is_skipped_where_it_would_differ() -> None:
    q = torch.zeros(1, 4, 6, 8)
    k = v = torch.zeros(1, 2, 6, 8)
    assert flash_module.can_use_flash(q, k, v, None, {}, False)
    assert not flash_module.can_use_flash(q, k, v, None, {}, True)  # full rows asked
    assert not flash_module.can_use_flash(q, k, v, None, {"softcap": 30.0}, False)
    assert not flash_module.can_use_flash(q, k, v, None, {"sliding_window": 4}, False)
    assert flash_module.can_use_flash(q, k, v, None, {"sliding_window": 64}, False)
    assert not flash_module.can_use_flash(q, k, v, torch.ones(1, 1, 6, 6) > 0, {}, False)
    assert not flash_module.can_use_flash(q[:, :, :2], k, v, None, {}, False)  # cached keys
    assert not flash_module.can_use_flash(q, k, None, None, {}, False)  # own output


@pytest.mark.parametrize("block", [256, 16])
def test_flash_scores_with_peaked_logits_and_many_repeats(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large logits (a later key's logit far above a query's log-sum-exp, probabilities below
    float32's smallest normal number) and few distinct tokens (each repeated ~140 times, so in
    many blocks when a block is 16 queries) give the plain formulas' scores."""
    monkeypatch.setattr(flash_module, "_BLOCK", block)
    from neuroscope_tui.capture.attention_scores import attention_probs
    from neuroscope_tui.capture.attention_tap import _Workspace

    gen = torch.Generator().manual_seed(1)
    n, heads, kv, d = 700, 4, 2, 16
    q = torch.randn(1, heads, n, d, generator=gen) * 3
    k = torch.randn(1, kv, n, d, generator=gen) * 3
    v = torch.randn(1, kv, n, d, generator=gen)
    ids = torch.randint(0, 5, (n,), generator=gen)
    ids[100:103] = 7  # a token right after itself: no induction from the copy just before
    out, stats = flash_module.flash_scores(_Workspace(), q, k, v, ids, d**-0.5)
    probs = attention_probs(q[0], k[0], None, d**-0.5, None, 0)  # [H, T, T]
    ref = head_stats(probs, torch.arange(n), ids)
    for name, val in ref.items():
        # entropy = lse - sum p*s cancels two numbers near 30 here: float32 keeps 1e-5 of them
        tol = 5e-5 if name == "entropy" else 1e-5
        np.testing.assert_allclose(stats[name], val, atol=tol, err_msg=name)
    expected = probs.view(kv, heads // kv, n, n) @ v[0].unsqueeze(1)  # [KV, group, T, D]
    np.testing.assert_allclose(out[0], expected.reshape(heads, n, d).transpose(0, 1), atol=1e-5)
