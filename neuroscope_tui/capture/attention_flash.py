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

# Pairs of (query, key) gathered at once for dup and induction: heads x pairs x d_head floats
# (9 x 2048 x 64 floats is 4.5 MiB, reused).
_PAIRS_PER_GATHER = 1 << 11
# Queries whose repeat pairs are found at once (a [queries, keys] bool mask each time).
_QUERIES_PER_PAIR_SEARCH = 1024


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

    def weight(qi: torch.Tensor, kj: torch.Tensor) -> torch.Tensor:
        """p[h, qi, kj] for every head -> [H, pairs]."""
        # into reused buffers: fresh multi-megabyte gathers cost more in page faults than
        # the arithmetic
        shape = (n_heads, qi.numel(), q.shape[-1])
        qs = torch.index_select(q, 1, qi, out=ws.get("flash.q", shape, q.dtype, q.device))
        ks = torch.index_select(k, 1, kj, out=ws.get("flash.k", shape, q.dtype, q.device))
        logit = torch.linalg.vecdot(qs, ks).mul_(scaling)  # [H, pairs]
        return torch.exp(logit.sub_(lse.index_select(1, qi)))

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
        from neuroscope_tui.capture.attention_tap import _repeat_pairs

        dup = q.new_zeros(n_heads, n)
        induction = q.new_zeros(n_heads, n)
        pos = torch.arange(n, device=q.device)
        for start in range(0, n, _QUERIES_PER_PAIR_SEARCH):
            q_pos = pos[start : start + _QUERIES_PER_PAIR_SEARCH]
            for total, (qi, kj) in zip(
                (dup, induction), _repeat_pairs(ws, ids, q_pos), strict=True
            ):
                for at in range(0, qi.numel(), _PAIRS_PER_GATHER):
                    qa = qi[at : at + _PAIRS_PER_GATHER] + start
                    total.index_add_(1, qa, weight(qa, kj[at : at + _PAIRS_PER_GATHER]))
        stats["dup"], stats["induction"] = dup.T, induction.T
    return out.transpose(1, 2).contiguous().to(query.dtype), stats
