"""The logit lens: each layer's residual stream read out through the final norm and unembedding.

Runs on the model's device with the model's own final-norm and unembedding modules, so the
last layer's lens is exactly the model's prediction. Only the top-k, the KL divergence to the
final distribution and the rank/probability of the model's own top-1 token come back to the
host: never [layers, tokens, vocab].
"""

from __future__ import annotations

import numpy as np
import torch

from neuroscope_tui.capture.anatomy import Anatomy
from neuroscope_tui.capture.memory import LENS_ROWS


def _logits(anatomy: Anatomy, x: torch.Tensor, softcap: float | None) -> torch.Tensor:
    """float32 logits [n, vocab] of residual vectors x [n, d_model]."""
    h = anatomy.final_norm(x) if anatomy.final_norm is not None else x
    h = h.to(anatomy.unembed.weight.device)
    logits = anatomy.unembed(h).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def readout(anatomy: Anatomy, x: torch.Tensor, softcap: float | None) -> torch.Tensor:
    """log-probabilities [n, vocab] of residual vectors x [n, d_model]."""
    return torch.log_softmax(_logits(anatomy, x, softcap), dim=-1)


# Rows (layer, position) read out per matrix product: one product per chunk reads the
# unembedding once for all of them. On one CPU core SmolLM2's [49k, 576] matrix costs 7 ms
# for one row and 26-30 ms for 30 (one token's layers) but 58 ms for 120: up to about a
# hundred rows, more rows come almost free. Past that the [rows, vocab] logits (24 MB at 120
# rows) fall out of the cache, and every pass over them below becomes a trip to memory.
ROWS_PER_PRODUCT = LENS_ROWS


@torch.no_grad()
def logit_lens(
    anatomy: Anatomy,
    resid: list[torch.Tensor],
    final_logits: torch.Tensor,
    top_k: int,
    softcap: float | None = None,
) -> dict[str, np.ndarray]:
    """Lens arrays for some positions.

    resid: per layer, the stream after that block at the positions asked, [n, d_model] each.
    final_logits: the model's logits at the same positions, [n, vocab].
    Returns lens.top_ids / lens.top_probs [L, n, k], lens.kl / lens.pred_rank / lens.pred_prob
    [L, n] as numpy.
    """
    n_layers, n = len(resid), final_logits.shape[0]
    device = final_logits.device
    # position-major rows: [n, L, d] -> chunks of whole positions share their final row
    stream = torch.stack([x.to(resid[0].device) for x in resid], dim=1)
    per_chunk = max(1, ROWS_PER_PRODUCT // n_layers)
    # Results go into arrays made before the loop, not into lists of per-chunk tensors: small
    # tensors that outlive a chunk sit above its freed [rows, vocab] logits in the C heap, so
    # the next chunk's logits no longer fit there and the heap grows by one chunk per chunk
    # (3.3 GB for a 512-token SmolLM2 prompt, against 0.2 GB this way).
    ids = torch.empty(n, n_layers, top_k, dtype=torch.int32, device=device)
    probs = torch.empty(n, n_layers, top_k, device=device)
    kl = torch.empty(n, n_layers, device=device)
    rank = torch.empty(n, n_layers, dtype=torch.int32, device=device)
    pred_prob = torch.empty(n, n_layers, device=device)
    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        c = stop - start
        z = _logits(anatomy, stream[start:stop].reshape(c * n_layers, -1), softcap)
        z = z.to(device).view(c, n_layers, -1)  # [c, L, V]
        # Work on the logits shifted to a maximum of 0 rather than on a log-softmax: that
        # would be one more [c, L, V] array written and read. log p = z - lse, with lse the
        # shifted logits' log-sum-exp (between 0 and log V, so nothing below cancels much).
        z -= z.amax(-1, keepdim=True)
        top = z.topk(top_k, dim=-1)
        # KL(final || layer) = sum p_f (log p_f - z + lse) = sum p_f log p_f - p_f . z + lse
        # (p_f sums to one): one matrix-vector product instead of two [c, L, V] temporaries.
        # The final distribution is taken chunk by chunk: for a long prompt all of it at once
        # is gigabytes (1.6 GB of float32 for 8,192 SmolLM2 positions).
        final = torch.log_softmax(final_logits[start:stop].float(), dim=-1)  # [c, V]
        pred = final.argmax(-1)  # [c]: the model's own top-1 token
        p_final = final.exp()
        neg_entropy = (p_final * final).sum(-1, keepdim=True)  # [c, 1]: sum p_f log p_f
        cross = torch.bmm(z, p_final.unsqueeze(-1))[..., 0]  # [c, L]
        own = z.gather(-1, pred.view(c, 1, 1).expand(c, n_layers, 1))
        # summed as int32: a sum of booleans in the default int64 costs four times as much
        rank[start:stop] = (z > own).sum(-1, dtype=torch.int32)
        lse = z.exp_().sum(-1).log()  # last: exp in place, z is not needed after this
        ids[start:stop] = top.indices
        probs[start:stop] = (top.values - lse.unsqueeze(-1)).exp()
        # a KL is never negative, whatever float32 rounding leaves of one near 0
        kl[start:stop] = (neg_entropy - cross + lse).clamp_min(0.0)
        pred_prob[start:stop] = (own[..., 0] - lse).exp()
        # freed before the next chunk's logits are made, so those can take their place
        del z, top, final, pred, p_final, neg_entropy, cross, own, lse

    def layer_major(values: torch.Tensor) -> np.ndarray:
        return values.transpose(0, 1).contiguous().cpu().numpy()

    return {
        "lens.top_ids": layer_major(ids),
        "lens.top_probs": layer_major(probs),
        "lens.kl": layer_major(kl),
        "lens.pred_rank": layer_major(rank),
        "lens.pred_prob": layer_major(pred_prob),
    }
