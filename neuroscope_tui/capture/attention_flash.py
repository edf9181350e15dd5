"""Head scores of a long prompt from the fused attention kernel's log-sum-exp.

PyTorch's CPU flash-attention kernel returns, beside the attention output, the log-sum-exp
(lse) of every query's scaled logits. With it, each weight is one dot product away:
p_ij = exp(scale * q_i·k_j - lse_i). So first, prev and self cost one key each, dup and
induction only the few (query, key) pairs where a token repeats, and no T x T tensor is
ever built. Entropy is the one score that needs every key:

    H_i = lse_i - sum_j p_ij * s_ij = lse_i - scale * q_i · (sum_j p_ij k_j)

and sum_j p_ij k_j is the same kernel's output with the keys in the place of the values:
a second fused call, exact, with no pattern in memory (a chunked product of our own over
every key cost 1.6x that call on one CPU core, bench/attention_kernels.py). At 2048 tokens
that call alone is about 19% of SmolLM2's forward pass on CPU (attention is near the core's
peak arithmetic, and entropy needs at least the q·k half of it), so no exact inline route
fits a 10% budget: a sink with `entropy_later` leaves a long prompt's entropy NaN, and
capture/derive_entropy.py fills it in after the run (always before a snapshot is saved).

`flash_scores` answers only what it reproduces exactly: the prompt's own pass (queries =
keys, causal, no padding mask, no soft-capping, no sliding window shorter than the prompt),
on CPU, with no full pattern rows asked. Everything else goes the tap's chunked route.
"""

from __future__ import annotations

import torch

# Prompts longer than this may leave their entropy for later (a sink's `entropy_later`):
# at 2048 tokens its second kernel call costs as much as the model's own attention.
ENTROPY_LATER_TOKENS = 512


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


def flash_scores(ws, query, key, value, ids, scaling: float, entropy: bool = True):
    """Attention output [1, T, H, D] (query's dtype) and head scores name -> [T, H].

    query [1, H, T, D], key and value [1, KV, T, D] (grouped heads share keys); ids [T] the
    token ids (None: no dup and induction). Causal, no mask: check can_use_flash first.
    With entropy=False the entropy is left "not computed" (NaN): it is the one score that
    costs a second pass over every key (see the module doc and capture/derive_entropy.py).
    """
    kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    n_heads, n_kv = query.shape[1], key.shape[1]
    group = n_heads // n_kv
    q, kv_keys = query.float(), key.float()
    if _kernel_shares_keys():
        k, v = kv_keys, value.float()
    else:  # [1, H, T, D]: head h reads KV h // group
        k = kv_keys.repeat_interleave(group, dim=1)
        v = value.float().repeat_interleave(group, dim=1)
    out, lse = kernel(q, k, v, 0.0, True, attn_mask=None, scale=scaling)  # [1,H,T,D], [1,H,T]
    # contiguous [H, T, D]: the model hands a transposed view, on which gathers run slowly
    q, lse = q[0].contiguous(), lse[0]  # [H, T, D], [H, T]
    kv_keys = kv_keys[0].contiguous()  # [KV, T, D]
    n = q.shape[1]
    q4 = q.view(n_kv, group, n, -1)  # (KV head, head in group): heads sharing one key
    if entropy:
        mean_key, _ = kernel(query.float(), k, k, 0.0, True, attn_mask=None, scale=scaling)
        mean_logit = (q * mean_key[0]).sum(-1).mul_(scaling)  # sum_j p_ij s_ij
        stats = {"entropy": (lse - mean_logit).clamp_min_(0).T}
    else:
        stats = {"entropy": q.new_full((n, n_heads), float("nan"))}

    def diagonal(offset: int) -> torch.Tensor:
        """p[h, t, t - offset] for every query t >= offset -> [H, T - offset]."""
        keys = kv_keys[:, None, : n - offset]
        logit = (q4[:, :, offset:] * keys).sum(-1).view(n_heads, -1).mul_(scaling)
        return torch.exp(logit.sub_(lse[:, offset:]))

    first = torch.matmul(q4, kv_keys[:, None, :1].transpose(-1, -2)).view(n_heads, n)
    stats["first"] = torch.exp(first.mul_(scaling).sub_(lse)).T
    stats["self"] = diagonal(0).T
    prev = q.new_zeros(n_heads, n)  # the first token has no previous one
    prev[:, 1:] = diagonal(1)
    stats["prev"] = prev.T
    if ids is not None:
        dup, induction = _repeat_weights(ws, q, kv_keys, lse, ids, scaling)
        stats["dup"], stats["induction"] = dup.T, induction.T
    return out.transpose(1, 2).contiguous().to(query.dtype), stats


_SHARES_KEYS: list[bool] = []


def _kernel_shares_keys() -> bool:
    """Whether this torch's flash kernel serves grouped query heads from the KV heads
    themselves (recent versions); checked once against repeated keys, else they are
    repeated (a 5 MB copy per layer at 2048 tokens)."""
    if not _SHARES_KEYS:
        kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        gen = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, h, 5, 4, generator=gen) for h in (4, 2, 2))
        try:
            got = kernel(q, k, v, 0.0, True, attn_mask=None, scale=0.5)
            want = kernel(q, *(t.repeat_interleave(2, 1) for t in (k, v)), 0.0, True,
                          attn_mask=None, scale=0.5)  # fmt: skip
            ok = all(torch.allclose(a, b) for a, b in zip(got[:2], want[:2], strict=True))
        except RuntimeError:
            ok = False
        _SHARES_KEYS.append(ok)
    return _SHARES_KEYS[0]


# Largest dense product per repeated token: a token seen more often (a prompt of one repeated
# word) is scored in blocks of this many queries, so memory stays bounded.
_BLOCK = 256
# Padded group sizes: groups of similar size share one batched product.
_SIZES = (2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def _repeat_groups(ws, ids: torch.Tensor, n_heads: int, n_kv: int) -> list[tuple]:
    """The dense products that dup and induction need, for these token ids: a list of
    (query rows [KV * S * group * Pq], key rows [KV * S * 2 Pk], keep-mask [S, Pq, 2 Pk] as
    0/1 floats), rows of q [H * T, D] and k [KV * T, D] laid out as the products read them.

    Each group is one token's occurrences (only tokens seen at least twice can score): its
    queries against its own earlier occurrences (dup) and against the positions right after
    them (induction), in one product. Groups are padded to a few sizes and batched; one
    gather of whole rows builds each batch (gathers along an inner axis and the copies to
    reorder them cost more than the products). Cached on the workspace: every layer of a
    pass sees the same ids.
    """
    cache = ws.repeats
    shape = (ids.shape[0], n_heads, n_kv)
    if cache is not None and cache[0] == shape and torch.equal(cache[1], ids):
        return cache[2]
    n = ids.shape[0]
    group = n_heads // n_kv
    order = torch.argsort(ids, stable=True)  # positions grouped by token, ascending inside
    _, counts = torch.unique_consecutive(ids[order], return_counts=True)
    pos = order.tolist()
    items: dict[tuple[int, int], list[tuple[list[int], list[int]]]] = {}
    start = 0
    for c in counts.tolist():
        occurrences = pos[start : start + c]
        start += c
        if c < 2:
            continue  # a token seen once has no earlier copy: dup and induction are 0
        for a in range(0, c, _BLOCK):  # query blocks; keys: the occurrences up to the last
            queries, keys = occurrences[a : a + _BLOCK], occurrences[: min(c, a + _BLOCK)]
            items.setdefault((_padded(len(queries)), _padded(len(keys))), []).append(
                (queries, keys)
            )
    groups = []
    heads = torch.arange(n_heads).view(n_kv, 1, group, 1) * n  # row offset of each head
    kv_heads = torch.arange(n_kv).view(n_kv, 1, 1) * n
    for (pq, pk), members in items.items():
        # padding: query -1 and key n hide every pair (k < q and k + 1 < q both fail)
        qp = torch.tensor([m[0] + [-1] * (pq - len(m[0])) for m in members])  # [S, Pq]
        kp = torch.tensor([m[1] + [n] * (pk - len(m[1])) for m in members])  # [S, Pk]
        keep_dup = kp[:, None, :] < qp[:, :, None]  # an earlier copy of the query's token
        keep_ind = (kp + 1)[:, None, :] < qp[:, :, None]  # the token after an earlier copy
        keys = torch.cat([kp, kp + 1], dim=1).clamp_(0, n - 1)  # dup keys, then induction's
        q_rows = (heads + qp.clamp(min=0)[None, :, None, :]).reshape(-1)  # [KV, S, group, Pq]
        k_rows = (kv_heads + keys[None]).reshape(-1)  # [KV, S, 2 Pk]
        groups.append((q_rows, k_rows, torch.cat([keep_dup, keep_ind], dim=2).float()))
    ws.repeats = (shape, ids.clone(), groups)
    return groups


def _padded(size: int) -> int:
    for s in _SIZES:
        if size <= s:
            return s
    return -(-size // _BLOCK) * _BLOCK


def _repeat_weights(ws, q, k, lse, ids, scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(dup, induction) [H, T]: the weight each query puts on earlier copies of its token, and
    on the tokens right after them, from dense products over each repeated token's occurrences.

    q [H, T, D] and k [KV, T, D] contiguous (each KV head serves H // KV query heads, in one
    product), lse [H, T]. Pairs of different tokens are never multiplied (tiles of tokens
    sorted by id did, at 2x the cost), and gathering the pairs one by one reads a query and a
    key row per pair (64 times the data of a probability) and cost 3x a forward.
    """
    n_heads, n, d = q.shape
    n_kv = k.shape[0]
    group = n_heads // n_kv
    q_flat, k_flat, lse_flat = q.reshape(-1, d), k.reshape(-1, d), lse.reshape(-1)
    dup, ind = q.new_zeros(n_heads * n), q.new_zeros(n_heads * n)
    for q_rows, k_rows, keep in _repeat_groups(ws, ids, n_heads, n_kv):
        n_groups, pq, two_pk = keep.shape
        batch = n_kv * n_groups  # (KV head, group); rows: (head in group, query)
        qs = q_flat.index_select(0, q_rows).view(batch, group * pq, d)
        ks = k_flat.index_select(0, k_rows).view(batch, two_pk, d)
        minus_lse = lse_flat.index_select(0, q_rows).neg_().view(batch, group * pq, 1)
        logit = torch.baddbmm(minus_lse, qs, ks.transpose(1, 2), alpha=scaling)
        # clamped: exp of a hidden later key may overflow (zeroed next), and exp below -87
        # makes float32 denormals, 20x slower on CPU; e^-80 is below float32's resolution of 1
        weights = logit.view(n_kv, n_groups, group, pq, two_pk).clamp_(-80.0, 80.0).exp_()
        weights.mul_(keep.view(1, n_groups, 1, pq, two_pk))
        both = weights.view(n_kv, n_groups, group, pq, 2, two_pk // 2).sum(-1)
        dup.index_add_(0, q_rows, both[..., 0].reshape(-1))
        ind.index_add_(0, q_rows, both[..., 1].reshape(-1))
    return dup.view(n_heads, n), ind.view(n_heads, n)
