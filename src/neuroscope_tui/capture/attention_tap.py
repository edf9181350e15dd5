"""The attention tap: an attention function registered with transformers' AttentionInterface.

It wraps the model's own attention function (sdpa, or the model's eager one), so the output
is exactly what the model computes, and beside it computes softmax(QKᵀ) in query chunks for
what was asked: six summary scores per head for every head, and full rows only for the heads
on screen. It sees Q and K after RoPE, the model's scaling, soft-capping and mask, so it works
for every architecture that calls the interface. Memory is one chunk of [heads, chunk, keys]
at a time, never layers x heads x T².

A model uses the tap while `tapped(model, sink)` is active; modules without an active sink
(another model in the same process) pass straight through.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch

SDPA_KEY = "neuroscope_sdpa"
EAGER_KEY = "neuroscope_eager"
_CHUNK_ELEMENTS = 1 << 22  # about 16 MiB of float32 scores per chunk


class AttentionSink(Protocol):
    """Receives what the tap computed for one attention call."""

    def wants_patterns(self, layer: int) -> list[int]:
        """Heads of `layer` whose full rows are wanted (-1: the mean over heads)."""

    def attention(
        self, layer: int, stats: dict[str, torch.Tensor], rows: dict[int, torch.Tensor]
    ) -> None:
        """stats: name -> [q, H]; rows: head -> [q, k] full pattern rows."""


def head_stats(
    probs: torch.Tensor,
    q_pos: torch.Tensor,
    ids: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """Per-head summary scores of attention probabilities.

    probs [H, q, k] (rows sum to 1), q_pos [q] the absolute position of each query, ids [k] the
    token ids of the keys (None: dup and induction are not computed). Returns name -> [q, H]:
    entropy (nats), first (weight on key 0), prev (on key t-1, 0 for t=0), self (on key t),
    dup (on earlier keys with the same token id), induction (on keys j >= 1 with
    ids[j-1] == ids[t], j < t: the token after an earlier copy of the current token).
    """
    n_keys = probs.shape[-1]
    p = probs.float()
    plogp = torch.where(p > 0, p * torch.log(p.clamp_min(1e-30)), torch.zeros_like(p))
    out = {"entropy": -plogp.sum(-1).T, "first": p[..., 0].T}
    cols = torch.arange(n_keys, device=p.device)
    self_idx = q_pos.clamp(max=n_keys - 1)
    out["self"] = p.gather(-1, self_idx.view(1, -1, 1).expand(p.shape[0], -1, 1))[..., 0].T
    prev_idx = (q_pos - 1).clamp(min=0)
    prev = p.gather(-1, prev_idx.view(1, -1, 1).expand(p.shape[0], -1, 1))[..., 0]
    out["prev"] = torch.where(q_pos.view(1, -1) >= 1, prev, torch.zeros_like(prev)).T
    if ids is not None:
        q_ids = ids[q_pos]  # [q]
        earlier = cols.view(1, -1) < q_pos.view(-1, 1)  # [q, k]
        dup = (ids.view(1, -1) == q_ids.view(-1, 1)) & earlier
        prev_ids = torch.cat([ids.new_full((1,), -1), ids[:-1]])  # id of key j-1
        ind = (prev_ids.view(1, -1) == q_ids.view(-1, 1)) & earlier
        out["dup"] = (p * dup.unsqueeze(0)).sum(-1).T
        out["induction"] = (p * ind.unsqueeze(0)).sum(-1).T
    return out


def attention_probs(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    softcap: float | None,
    q_offset: int,
    sliding_window: int | None = None,
) -> torch.Tensor:
    """softmax(QKᵀ·scaling + mask) for one batch element: query [H, q, D], key [KV, k, D].

    Grouped-query heads share keys without copying them. `mask` is the model's own mask for
    these queries ([q, k], bool keep-mask or additive float) or None, in which case the mask
    is causal (query i at absolute position q_offset + i sees keys <= it) and, for a sliding
    window, only the last `sliding_window` keys. Returns float32 [H, q, k].
    """
    n_heads, n_q, d = query.shape
    n_kv, n_k, _ = key.shape
    group = n_heads // n_kv
    # [KV, group, q, D] @ [KV, 1, D, k] -> [KV, group, q, k] -> [H, q, k]
    q = query.float().reshape(n_kv, group, n_q, d)
    scores = (q @ key.float().transpose(-1, -2).unsqueeze(1)).reshape(n_heads, n_q, n_k)
    scores = scores * scaling
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    if mask is None:
        rows = torch.arange(n_q, device=scores.device).view(-1, 1) + q_offset
        cols = torch.arange(n_k, device=scores.device).view(1, -1)
        keep = cols <= rows
        if sliding_window:
            keep = keep & (cols > rows - sliding_window)
        scores = scores.masked_fill(~keep, float("-inf"))
    elif mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    else:
        scores = scores + mask.float()
    return torch.softmax(scores, dim=-1)


def _inner_function(module: torch.nn.Module, inner: str) -> Callable[..., Any]:
    """The function the model would have called: sdpa, or its own module's eager one."""
    if inner == "sdpa":
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        raise RuntimeError(f"{type(module).__name__} has no eager_attention_forward")
    return eager


def _tap_call(inner: str, module, query, key, value, attention_mask, **kwargs):
    out = _inner_function(module, inner)(module, query, key, value, attention_mask, **kwargs)
    tap = getattr(module, "_neuroscope_tap", None)
    if tap is not None:
        with torch.no_grad():
            _observe(tap, module, query, key, attention_mask, kwargs)
    return out


def _tap_sdpa(module, query, key, value, attention_mask, **kwargs):
    return _tap_call("sdpa", module, query, key, value, attention_mask, **kwargs)


def _tap_eager(module, query, key, value, attention_mask, **kwargs):
    return _tap_call("eager", module, query, key, value, attention_mask, **kwargs)


class _Tap:
    """What one attention module needs to report: its layer, the sink, the token ids."""

    def __init__(self, layer: int, sink: AttentionSink, ids: Callable[[], torch.Tensor | None]):
        self.layer = layer
        self.sink = sink
        self.ids = ids


def _observe(tap: _Tap, module, query, key, attention_mask, kwargs) -> None:
    """Compute the summary scores (and asked rows) of one attention call, chunk by chunk."""
    n_q, n_k = query.shape[-2], key.shape[-2]
    q_offset = n_k - n_q
    scaling = kwargs.get("scaling") or query.shape[-1] ** -0.5
    softcap = kwargs.get("softcap")
    window = kwargs.get("sliding_window")
    ids = tap.ids()
    if ids is not None:
        ids = ids.to(query.device)[-n_k:] if ids.shape[0] >= n_k else None
    heads_wanted = tap.sink.wants_patterns(tap.layer)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, query.shape[1] * n_k))
    stats_parts: dict[str, list[torch.Tensor]] = {}
    row_parts: dict[int, list[torch.Tensor]] = {h: [] for h in heads_wanted}
    for start in range(0, n_q, chunk):
        stop = min(n_q, start + chunk)
        mask = None
        if attention_mask is not None:
            mask = attention_mask[0, 0, start:stop, :n_k]
        probs = attention_probs(
            query[0, :, start:stop], key[0], mask, scaling, softcap, q_offset + start, window
        )
        q_pos = torch.arange(start, stop, device=probs.device) + q_offset
        for name, val in head_stats(probs, q_pos, ids).items():
            stats_parts.setdefault(name, []).append(val)
        for h in heads_wanted:
            row_parts[h].append(probs.mean(0) if h < 0 else probs[h])
    stats = {name: torch.cat(parts) for name, parts in stats_parts.items()}
    rows = {h: torch.cat(parts) for h, parts in row_parts.items()}
    tap.sink.attention(tap.layer, stats, rows)


def register_tap_functions() -> None:
    """Register the two tap variants (over sdpa, over eager) and their mask builders."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

    AttentionInterface.register(SDPA_KEY, _tap_sdpa)
    AttentionInterface.register(EAGER_KEY, _tap_eager)
    AttentionMaskInterface.register(SDPA_KEY, sdpa_mask)
    AttentionMaskInterface.register(EAGER_KEY, eager_mask)


def _set_impl(model: torch.nn.Module, impl: str) -> None:
    """Switch the attention implementation the model's config names."""
    setter = getattr(model, "set_attn_implementation", None)
    if callable(setter):
        setter(impl)
    else:
        model.config._attn_implementation = impl


@contextmanager
def tapped(
    model: torch.nn.Module,
    attention: list[torch.nn.Module],
    sink: AttentionSink,
    ids: Callable[[], torch.Tensor | None],
) -> Iterator[bool]:
    """Route `model`'s attention through the tap while the block runs; always undo it.

    Yields False when the model cannot use the interface (the caller falls back to eager
    `output_attentions`), True otherwise.
    """
    original = getattr(model.config, "_attn_implementation", None)
    if original not in ("sdpa", "eager", SDPA_KEY, EAGER_KEY):
        yield False
        return
    register_tap_functions()
    key = EAGER_KEY if original in ("eager", EAGER_KEY) else SDPA_KEY
    original = "eager" if key == EAGER_KEY else "sdpa"
    try:
        _set_impl(model, key)
    except (ValueError, KeyError):
        yield False
        return
    try:
        for layer, module in enumerate(attention):
            module._neuroscope_tap = _Tap(layer, sink, ids)
        yield True
    finally:
        for module in attention:
            if hasattr(module, "_neuroscope_tap"):
                del module._neuroscope_tap
        _set_impl(model, original)
