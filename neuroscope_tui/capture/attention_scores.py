"""The attention scores written as plain formulas over full probabilities.

The reference the tap is tested against, the scorer of the eager `output_attentions`
fallback, and what the benchmarks cross-check. The tap itself computes the same numbers in
chunks, without a temporary the size of the pattern (attention_tap.py).
"""

from __future__ import annotations

import torch


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
