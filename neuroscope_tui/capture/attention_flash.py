"""Head scores of a long prompt from the fused attention kernel's log-sum-exp.

PyTorch's CPU flash-attention kernel returns, beside the attention output, the log-sum-exp
(lse) of every query's scaled logits. With it, each weight is one dot product away:
p_ij = exp(scale * q_i·k_j - lse_i). So first, prev and self cost one key each, dup and
induction only the few (query, key) pairs where a token repeats, and no T x T tensor is
ever built. Entropy is the one score that needs every key:

    H_i = lse_i - sum_j p_ij * s_ij = lse_i - scale * q_i · (sum_j p_ij k_j)

and sum_j p_ij k_j is the same kernel's output with the keys in the place of the values:
a second fused call, exact, with no pattern in memory (a chunked product of our own over
every key cost 1.6x that call on one CPU core, bench/attention_kernels.py).

`flash_scores` answers only what it reproduces exactly: the prompt's own pass (queries =
keys, causal, no padding mask, no soft-capping, no sliding window shorter than the prompt),
on CPU, with no full pattern rows asked. Everything else goes the tap's chunked route.
"""

from __future__ import annotations

import torch

# Queries (and keys) per dense product when scoring dup and induction (_same_token_weights).
_TILE = 128


def can_use_flash(query, key, value, attention_mask, kwargs, patterns_wanted: bool) -> bool:
    """Whether flash_scores reproduces this attention call exactly (see the module doc)."""
    n_q, n_k = query.shape[-2], key.shape[-2]
    window = kwargs.get("sliding_window")
    return (
        value is not None
        and not patterns_wanted
        and query.device.type == "cpu"
        and query.shape[0] == 1
        and n_q == n_k
        and n_q > 1
        and attention_mask is None
        and not kwargs.get("softcap")
        and not (window and window < n_k)
        and query.shape[-1] == value.shape[-1]
        and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")
    )


def flash_scores(ws, query, key, value, ids, scaling: float):
    """Attention output [1, T, H, D] (query's dtype) and head scores name -> [T, H].

    query [1, H, T, D], key and value [1, KV, T, D] (grouped heads share keys); ids [T] the
    token ids (None: no dup and induction). Causal, no mask: check can_use_flash first.
    """
    kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    n_heads, n_kv = query.shape[1], key.shape[1]
    group = n_heads // n_kv
    q = query.float()
    k = key.float().repeat_interleave(group, dim=1)  # [1, H, T, D]: head h reads KV h // group
    v = value.float().repeat_interleave(group, dim=1)
    out, lse = kernel(q, k, v, 0.0, True, attn_mask=None, scale=scaling)  # [1,H,T,D], [1,H,T]
    mean_key, _ = kernel(q, k, k, 0.0, True, attn_mask=None, scale=scaling)  # sum_j p_ij k_j
    # contiguous [H, T, D]: the model hands a transposed view, on which gathers run slowly
    q, k, lse = q[0].contiguous(), k[0].contiguous(), lse[0]  # [H, T, D], [H, T, D], [H, T]
    n = q.shape[1]
    mean_logit = (q * mean_key[0]).sum(-1).mul_(scaling)  # sum_j p_ij s_ij
    stats = {"entropy": (lse - mean_logit).clamp_min_(0).T}

    def diagonal(offset: int) -> torch.Tensor:
        """p[h, t, t - offset] for every query t >= offset -> [H, T - offset]."""
        logit = (q[:, offset:] * k[:, : n - offset]).sum(-1).mul_(scaling)
        return torch.exp(logit.sub_(lse[:, offset:]))

    first = torch.bmm(q, k[:, :1].transpose(-1, -2))[..., 0].mul_(scaling)  # [H, T]
    stats["first"] = torch.exp(first.sub_(lse)).T
    stats["self"] = diagonal(0).T
    prev = q.new_zeros(n_heads, n)  # the first token has no previous one
    prev[:, 1:] = diagonal(1)
    stats["prev"] = prev.T
    if ids is not None:
        prev_ids = torch.cat([ids.new_full((1,), -1), ids[:-1]])  # the id before each key
        stats["dup"] = _same_token_weights(q, k, lse, ids, ids, scaling).T
        stats["induction"] = _same_token_weights(q, k, lse, ids, prev_ids, scaling).T
    return out.transpose(1, 2).contiguous().to(query.dtype), stats


def _same_token_weights(q, k, lse, query_ids, key_ids, scaling: float) -> torch.Tensor:
    """sum of p[h, i, j] over earlier keys j < i with key_ids[j] == query_ids[i] -> [H, T].

    Queries and keys are sorted by their id, so the matching pairs fall into a band of tiles
    near the diagonal: each query tile meets only the key tiles whose ids overlap its own,
    and each meeting is one dense product. Gathering the pairs one by one instead reads a
    query and a key row per pair (64 times the data of a probability) and cost 3x a forward.
    """
    n_heads, n, _ = q.shape
    q_order = torch.argsort(query_ids, stable=True)
    k_order = torch.argsort(key_ids, stable=True)
    q_sorted_ids, k_sorted_ids = query_ids[q_order], key_ids[k_order]
    qs, ks = q.index_select(1, q_order), k.index_select(1, k_order)  # [H, T, D], sorted
    lse_sorted = lse.index_select(1, q_order)
    total = q.new_zeros(n_heads, n)
    for a in range(0, n, _TILE):
        a_end = min(n, a + _TILE)
        lo, hi = q_sorted_ids[a], q_sorted_ids[a_end - 1]
        b_start = int(torch.searchsorted(k_sorted_ids, lo, right=False))
        b_stop = int(torch.searchsorted(k_sorted_ids, hi, right=True))
        for b in range(b_start, b_stop, _TILE):
            b_end = min(b_stop, b + _TILE)
            same = q_sorted_ids[a:a_end, None] == k_sorted_ids[None, b:b_end]
            earlier = k_order[None, b:b_end] < q_order[a:a_end, None]
            keep = same & earlier  # [qa, kb]
            if not bool(keep.any()):
                continue
            logit = torch.baddbmm(
                lse_sorted[:, a:a_end, None].neg(), qs[:, a:a_end], ks[:, b:b_end].transpose(1, 2),
                alpha=scaling,
            )  # fmt: skip
            # masked before exp: a later key's logit may exceed the query's lse (overflow)
            weights = logit.masked_fill_(~keep, float("-inf")).exp_()  # [H, qa, kb]
            total[:, a:a_end] += weights.sum(-1)
    out = torch.empty_like(total)
    out[:, q_order] = total  # back to the queries' own order
    return out
