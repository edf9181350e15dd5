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


def _readout(anatomy: Anatomy, x: torch.Tensor, softcap: float | None) -> torch.Tensor:
    """log-probabilities [n, vocab] of residual vectors x [n, d_model]."""
    h = anatomy.final_norm(x) if anatomy.final_norm is not None else x
    h = h.to(anatomy.unembed.weight.device)
    logits = anatomy.unembed(h).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.log_softmax(logits, dim=-1)


# Rows (layer, position) read out per matrix product: one product per chunk reads the
# unembedding once for all of them. Layer by layer, a generated token re-read the whole
# [vocab, d_model] matrix 30 times (a matrix-vector product each) and the lens cost five
# times the forward pass; stacked, it costs about one more read of that matrix.
_ROWS_PER_PRODUCT = 256


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
    final_logp = torch.log_softmax(final_logits.float(), dim=-1)  # [n, V]
    pred = final_logp.argmax(-1)  # [n]
    device = final_logp.device
    # position-major rows: [n, L, d] -> chunks of whole positions share their final row
    stream = torch.stack([x.to(resid[0].device) for x in resid], dim=1)
    per_chunk = max(1, _ROWS_PER_PRODUCT // n_layers)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("ids", "probs", "kl", "rank", "pp")}
    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        c = stop - start
        logp = _readout(anatomy, stream[start:stop].reshape(c * n_layers, -1), softcap)
        logp = logp.to(device).view(c, n_layers, -1)  # [c, L, V]
        final = final_logp[start:stop].unsqueeze(1)  # [c, 1, V]
        top = logp.topk(top_k, dim=-1)
        parts["ids"].append(top.indices.to(torch.int32))
        parts["probs"].append(top.values.exp())
        # KL(final || layer) = sum p_final (log p_final - log p_layer)
        parts["kl"].append((final.exp() * (final - logp)).sum(-1))
        own = logp.gather(-1, pred[start:stop].view(c, 1, 1).expand(c, n_layers, 1))
        parts["rank"].append((logp > own).sum(-1).to(torch.int32))
        parts["pp"].append(own[..., 0].exp())

    def layer_major(name: str) -> np.ndarray:
        return torch.cat(parts[name]).transpose(0, 1).contiguous().cpu().numpy()

    return {
        "lens.top_ids": layer_major("ids"),
        "lens.top_probs": layer_major("probs"),
        "lens.kl": layer_major("kl"),
        "lens.pred_rank": layer_major("rank"),
        "lens.pred_prob": layer_major("pp"),
    }
