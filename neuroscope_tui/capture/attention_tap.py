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

from neuroscope_tui.capture.attention_flash import (
    ENTROPY_LATER_TOKENS,
    can_use_flash,
    flash_scores,
)

SDPA_KEY = "neuroscope_sdpa"
EAGER_KEY = "neuroscope_eager"
_CHUNK_ELEMENTS = 1 << 22  # about 16 MiB of float32 scores per chunk
# A finite "minus infinity" for masked scores: exp() of it is exactly 0 in float32, and
# 0 times it is 0 (not NaN), so the entropy can come from one dot product per row.
_HIDDEN = -1e30
# Calls with at most this many queries (generated tokens, short prompts) are scored after the
# step, for all layers at once: below this size per-layer kernel launches cost more than the
# arithmetic. The logits kept meanwhile are layers x heads x q x k floats (1.1 MiB for
# SmolLM2 at 32 tokens).
DEFER_QUERIES = 32
# Longer calls go in query chunks of at least this many queries.
MIN_CHUNK = 128


class AttentionSink(Protocol):
    """Receives what the tap computed for one attention call."""

    def wants_patterns(self, layer: int) -> list[int]:
        """Heads of `layer` whose full rows are wanted (-1: the mean over heads)."""

    def attention(
        self, layer: int, stats: dict[str, torch.Tensor], rows: dict[int, torch.Tensor]
    ) -> None:
        """stats: name -> [q, H]; rows: head -> [q, k] full pattern rows."""


def _inner_function(module: torch.nn.Module, inner: str) -> Callable[..., Any]:
    """The function the model would have called: sdpa, or its own module's eager one.

    Looked up once per module (it runs for every layer of every generated token)."""
    found = module.__dict__.get("_neuroscope_inner")
    if found is None or found[0] != inner:
        found = (inner, _find_inner_function(module, inner))
        module.__dict__["_neuroscope_inner"] = found
    return found[1]


def _find_inner_function(module: torch.nn.Module, inner: str) -> Callable[..., Any]:
    if inner == "sdpa":
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        raise RuntimeError(f"{type(module).__name__} has no eager_attention_forward")
    return eager


def _tap_call(inner: str, module, query, key, value, attention_mask, **kwargs):
    tap = module.__dict__.get("_neuroscope_tap")
    if tap is None:
        return _inner_function(module, inner)(module, query, key, value, attention_mask, **kwargs)
    defer = tap.defer
    if defer is not None and query.shape[-2] <= DEFER_QUERIES:
        # A generated token: the model's own (fused) function computes the output; the
        # logits wait, so one batch of kernels scores every layer at the end of the step.
        # This runs for every layer of every token, so it skips what costs Python time:
        # a no_grad context where grad is already off (a run), the inner function's lookup.
        if torch.is_grad_enabled():
            with torch.no_grad():
                defer(tap.layer, _call_scores(tap.ws, query, key, attention_mask, kwargs))
        else:
            defer(tap.layer, _call_scores(tap.ws, query, key, attention_mask, kwargs))
        return _inner_function(module, inner)(module, query, key, value, attention_mask, **kwargs)
    # Features the tap does not reproduce (attention sinks, a position bias, dropout while
    # training): let the model's own function compute the output, and observe beside it.
    own_output = module.training or any(
        kwargs.get(name) is not None for name in ("s_aux", "sinks", "position_bias")
    )
    with torch.no_grad():
        out = _observe(tap, query, key, None if own_output else value, attention_mask, kwargs)
    if own_output:
        return _inner_function(module, inner)(module, query, key, value, attention_mask, **kwargs)
    return out, None


def _tap_sdpa(module, query, key, value, attention_mask, **kwargs):
    return _tap_call("sdpa", module, query, key, value, attention_mask, **kwargs)


def _tap_eager(module, query, key, value, attention_mask, **kwargs):
    return _tap_call("eager", module, query, key, value, attention_mask, **kwargs)


class _Workspace:
    """Scratch tensors reused across layers and steps.

    Fresh multi-megabyte tensors per layer cost page faults (on CPU, several times the
    arithmetic); reusing a few buffers of the largest chunk shape avoids them.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}
        self.masks_key: tuple | None = None
        self.masks: tuple | None = None
        self.bias: dict[tuple, torch.Tensor] = {}
        self._zero: torch.Tensor | None = None
        # (token ids, dense products) of dup and induction on the flash route
        self.repeats: tuple | None = None

    def zero(self, device) -> torch.Tensor:
        """A float32 zero that broadcasts to any batched product (baddbmm with beta=0)."""
        if self._zero is None or self._zero.device != device:
            self._zero = torch.zeros(1, 1, 1, device=device)
        return self._zero

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
        n = 1
        for d in shape:
            n *= d
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype or buf.device != device:
            buf = torch.empty(n, dtype=dtype, device=device)
            self._buffers[name] = buf
        return buf[:n].view(shape)


class _Tap:
    """What one attention module needs to report: its layer, the sink, the token ids."""

    def __init__(
        self,
        layer: int,
        sink: AttentionSink,
        ids: Callable[[], torch.Tensor | None],
        workspace: _Workspace,
    ):
        self.layer = layer
        self.sink = sink
        self.ids = ids
        self.ws = workspace
        self.defer = getattr(sink, "defer_scores", None)  # looked up once, not per call


def _repeat_pairs(ws: _Workspace, ids: torch.Tensor, q_pos: torch.Tensor):
    """(query index in chunk, key index) pairs for dup (an earlier key with the query's token)
    and induction (a key right after an earlier copy of the query's token). Cached per step:
    every layer sees the same ids."""
    key = (ids.data_ptr(), ids.shape[0], int(q_pos[0]), int(q_pos[-1]))
    if ws.masks_key == key:
        return ws.masks
    q_ids = ids[q_pos]
    earlier = torch.arange(ids.shape[0], device=ids.device).view(1, -1) < q_pos.view(-1, 1)
    dup = (ids.view(1, -1) == q_ids.view(-1, 1)) & earlier
    prev_ids = torch.cat([ids.new_full((1,), -1), ids[:-1]])
    ind = (prev_ids.view(1, -1) == q_ids.view(-1, 1)) & earlier
    pairs = (tuple(dup.nonzero(as_tuple=True)), tuple(ind.nonzero(as_tuple=True)))
    ws.masks_key, ws.masks = key, pairs
    return pairs


def _causal_bias(ws: _Workspace, n_q: int, n_k: int, q_offset: int, window, group: int, device):
    """Additive mask [group * n_q, n_k] (0 or -inf) for causal (and sliding-window) attention,
    laid out as the (head-in-group, query) rows of the grouped score matrix. Cached: every
    layer of a step uses the same one."""
    key = ("bias", n_q, n_k, q_offset, window, group)
    cached = ws.bias.get(key)
    if cached is not None:
        return cached
    rows = torch.arange(n_q, device=device).view(-1, 1) + q_offset
    cols = torch.arange(n_k, device=device).view(1, -1)
    hide = cols > rows
    if window:
        hide = hide | (cols <= rows - window)
    bias = torch.zeros(n_q, n_k, device=device).masked_fill_(hide, _HIDDEN)
    bias = bias.repeat(group, 1)
    if len(ws.bias) > 8:
        ws.bias.clear()
    ws.bias[key] = bias
    return bias


def _chunk_scores(ws: _Workspace, q, k, mask, scaling, softcap, q_offset, window):
    """Masked attention logits of one query chunk: q [H, qc, D], k [KV, n_k, D] ->
    [KV, group, qc, n_k] float32, hidden keys at a finite _HIDDEN. Without soft-capping,
    scaling and the causal mask are fused into one baddbmm."""
    n_heads, n_q, d = q.shape
    n_kv, n_k, _ = k.shape
    group = n_heads // n_kv
    qg = q.reshape(n_kv, group * n_q, d)  # rows: (head in group, query)
    kt = k.transpose(-1, -2)
    if mask is None and not softcap:
        bias = _causal_bias(ws, n_q, n_k, q_offset, window, group, q.device)
        s = torch.baddbmm(bias.unsqueeze(0), qg, kt, alpha=scaling)
        return s.view(n_kv, group, n_q, n_k)
    s = torch.bmm(qg, kt).mul_(scaling)
    if softcap:
        s.div_(softcap).tanh_().mul_(softcap)
    s = s.view(n_kv, group, n_q, n_k)
    if mask is None:
        s.add_(_causal_bias(ws, n_q, n_k, q_offset, window, 1, q.device))
    elif mask.dtype == torch.bool:
        s.masked_fill_(~mask, _HIDDEN)
    else:
        s.add_(mask.float()).clamp_min_(_HIDDEN)
    return s


def _chunk_probs(ws: _Workspace, q, k, mask, scaling, softcap, q_offset, window):
    """(masked logits, softmax probabilities) of one query chunk, both [KV, group, qc, n_k]."""
    s = _chunk_scores(ws, q, k, mask, scaling, softcap, q_offset, window)
    return s, torch.softmax(s, dim=-1)


def _call_scores(ws: _Workspace, query, key, attention_mask, kwargs) -> torch.Tensor:
    """Masked logits [H, q, k] of a whole (short) attention call."""
    n_q, n_k = query.shape[-2], key.shape[-2]
    window, softcap = kwargs.get("sliding_window"), kwargs.get("softcap")
    if n_q == 1 and attention_mask is None and not softcap and not (window and window < n_k):
        # A generated token without padding: the last query sees every key, so there is no
        # mask to add, and one kernel per layer does it (this runs 30 times a token).
        _, n_heads, _, d = query.shape
        n_kv = key.shape[1]
        if query.dtype != torch.float32:
            query, key = query.float(), key.float()
        qg = query.reshape(n_kv, n_heads // n_kv, d)  # [KV, group, D]: the one query row
        s = torch.baddbmm(
            ws.zero(query.device), qg, key[0].transpose(-1, -2),
            beta=0.0, alpha=kwargs.get("scaling") or d**-0.5,
        )  # fmt: skip
        return s.view(n_heads, 1, n_k)
    mask = None if attention_mask is None else attention_mask[0, 0, :, :n_k]
    s = _chunk_scores(
        ws,
        query[0].float(),
        key[0].float(),
        mask,
        kwargs.get("scaling") or query.shape[-1] ** -0.5,
        kwargs.get("softcap"),
        n_k - n_q,
        kwargs.get("sliding_window"),
    )
    return s.reshape(query.shape[1], n_q, n_k)


def scores_stats(ws: _Workspace, scores: torch.Tensor, ids: torch.Tensor | None):
    """Softmax and head scores of many layers at once: scores [L, H, q, k] masked logits of
    the last q positions -> (probabilities [L, H, q, k], name -> [L, q, H]). One batch of
    kernels for all layers, instead of a dozen per layer: what a generated token needs."""
    n_layers, n_heads, n_q, n_k = scores.shape
    p = torch.softmax(scores, dim=-1)
    q_pos = torch.arange(n_k - n_q, n_k, device=scores.device)
    flat = _chunk_stats(
        ws, p.view(-1, n_q, n_k), scores.view(-1, n_q, n_k), q_pos, ids
    )  # name -> [q, L * H]
    stats = {n: v.reshape(n_q, n_layers, n_heads).transpose(0, 1) for n, v in flat.items()}
    return p, stats


def _observe(tap: _Tap, query, key, value, attention_mask, kwargs):
    """Scores (and asked rows) of one attention call, chunk by chunk; with `value`, also the
    attention output [1, q, H, D] computed from the same probabilities."""
    n_q, n_k = query.shape[-2], key.shape[-2]
    n_heads, d_v = query.shape[1], (value.shape[-1] if value is not None else 0)
    q_offset = n_k - n_q
    scaling = kwargs.get("scaling") or query.shape[-1] ** -0.5
    softcap = kwargs.get("softcap")
    window = kwargs.get("sliding_window")
    ids = tap.ids()
    if ids is not None:
        ids = ids.to(query.device)[-n_k:] if ids.shape[0] >= n_k else None
    heads_wanted = tap.sink.wants_patterns(tap.layer)
    if can_use_flash(query, key, value, attention_mask, kwargs, bool(heads_wanted)):
        # a sink may take a long prompt's entropy later: the one score that needs a second
        # pass over every key (capture/derive_entropy.py)
        later = n_q > ENTROPY_LATER_TOKENS and getattr(tap.sink, "entropy_later", False)
        out, stats = flash_scores(tap.ws, query, key, value, ids, scaling, not later)
        tap.sink.attention(tap.layer, stats, {})
        return out
    # Query chunks: bounded memory, and causality lets a chunk skip the keys after its last
    # query, so about half of the T x T work of a long prompt is never done.
    chunk = max(1, min(_CHUNK_ELEMENTS // max(1, n_heads * n_k), max(MIN_CHUNK, -(-n_q // 8))))
    qf, kf = query[0].float(), key[0].float()
    vf = value[0].float() if value is not None else None  # [KV, n_k, D]
    out = None
    if value is not None:
        out = torch.empty(1, n_q, n_heads, d_v, dtype=query.dtype, device=query.device)
    parts: dict[str, list[torch.Tensor]] = {}
    # asked rows are written chunk by chunk into one [q, k] tensor per head: the pattern
    # itself is the only T x T the call holds (zeros past each query: causal)
    rows = {h: query.new_zeros(n_q, n_k, dtype=torch.float32) for h in heads_wanted}
    for start in range(0, n_q, chunk):
        stop = min(n_q, start + chunk)
        n_seen = min(n_k, q_offset + stop)  # a causal query never sees later keys
        mask = None if attention_mask is None else attention_mask[0, 0, start:stop, :n_seen]
        scores, s = _chunk_probs(
            tap.ws, qf[:, start:stop], kf[:, :n_seen], mask, scaling, softcap, q_offset + start,
            window,
        )  # fmt: skip
        if out is not None:
            # [KV, group * qc, k] @ [KV, k, D]: grouped heads share V without copying it
            n_kv = vf.shape[0]
            o = torch.bmm(s.reshape(n_kv, -1, n_seen), vf[:, :n_seen])
            out[0, start:stop] = o.reshape(n_heads, stop - start, d_v).transpose(0, 1)
        p = s.view(n_heads, stop - start, n_seen)
        q_pos = torch.arange(start, stop, device=p.device) + q_offset
        logits = scores.view(n_heads, stop - start, n_seen)
        for name, val in _chunk_stats(tap.ws, p, logits, q_pos, ids).items():
            parts.setdefault(name, []).append(val)
        for h in heads_wanted:
            rows[h][start:stop, :n_seen] = p.mean(0) if h < 0 else p[h]
    stats = {name: torch.cat(v) for name, v in parts.items()}
    tap.sink.attention(tap.layer, stats, rows)
    return out


def _chunk_stats(ws: _Workspace, p, scores, q_pos, ids):
    """head_stats() (attention_scores.py) of one chunk, without a temporary the size of p:
    name -> [qc, H].

    Entropy: with log p = s - lse, H = lse - sum(p * s), and lse = s_max - log p_max; the sum
    is one batched dot product per row. dup and induction gather only the few (query, key)
    pairs where a token repeats.
    """
    n_heads, n_q, n_k = p.shape
    dot = torch.linalg.vecdot(p, scores)  # [H, q]
    lse = scores.amax(-1) - torch.log(p.amax(-1))
    out = {"entropy": (lse - dot).clamp_min(0).T, "first": p[..., 0].T.clone()}
    idx = q_pos.clamp(max=n_k - 1).view(1, -1, 1).expand(n_heads, -1, 1)
    out["self"] = p.gather(-1, idx)[..., 0].T
    prev = p.gather(-1, (q_pos - 1).clamp(min=0).view(1, -1, 1).expand(n_heads, -1, 1))[..., 0]
    out["prev"] = torch.where(q_pos.view(1, -1) >= 1, prev, torch.zeros_like(prev)).T
    if ids is not None:
        pairs = _repeat_pairs(ws, ids, q_pos)
        for name, (qi, kj) in zip(("dup", "induction"), pairs, strict=True):
            score = p.new_zeros(n_heads, n_q)
            if qi.numel():
                score.index_add_(1, qi, p[:, qi, kj])
            out[name] = score.T
    return out


def register_tap_functions() -> None:
    """Register the two tap variants (over sdpa, over eager) and their mask builders."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

    AttentionInterface.register(SDPA_KEY, _tap_sdpa)
    AttentionInterface.register(EAGER_KEY, _tap_eager)
    AttentionMaskInterface.register(SDPA_KEY, sdpa_mask)
    AttentionMaskInterface.register(EAGER_KEY, eager_mask)


def set_attention_implementation(model: torch.nn.Module, impl: str) -> None:
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
    # Nested inside another tap (a view's pattern computed between two steps of a run): put
    # the outer taps and key back afterwards, or the run would stop recording head scores.
    outer = [getattr(module, "_neuroscope_tap", None) for module in attention]
    if any(tap is not None for tap in outer):
        restore = key
    else:
        restore = "eager" if key == EAGER_KEY else "sdpa"
    try:
        set_attention_implementation(model, key)
    except (ValueError, KeyError):
        yield False
        return
    try:
        workspace = _Workspace()
        for layer, module in enumerate(attention):
            module._neuroscope_tap = _Tap(layer, sink, ids, workspace)
        yield True
    finally:
        for module, tap in zip(attention, outer, strict=True):
            if tap is not None:
                module._neuroscope_tap = tap
            elif hasattr(module, "_neuroscope_tap"):
                del module._neuroscope_tap
        set_attention_implementation(model, restore)
