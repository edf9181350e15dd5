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
    final_logp = torch.log_softmax(final_logits.float(), dim=-1)
    pred = final_logp.argmax(-1)  # [n]
    ids, probs, kl, rank, pprob = [], [], [], [], []
    for x in resid:
        logp = _readout(anatomy, x, softcap).to(final_logp.device)
        top = logp.topk(top_k, dim=-1)
        ids.append(top.indices.to(torch.int32))
        probs.append(top.values.exp())
        # KL(final || layer) = sum p_final (log p_final - log p_layer)
        kl.append((final_logp.exp() * (final_logp - logp)).sum(-1))
        own = logp.gather(-1, pred.view(-1, 1))  # [n, 1]
        rank.append((logp > own).sum(-1).to(torch.int32))
        pprob.append(own[:, 0].exp())
    return {
        "lens.top_ids": torch.stack(ids).cpu().numpy(),
        "lens.top_probs": torch.stack(probs).cpu().numpy(),
        "lens.kl": torch.stack(kl).cpu().numpy(),
        "lens.pred_rank": torch.stack(rank).cpu().numpy(),
        "lens.pred_prob": torch.stack(pprob).cpu().numpy(),
    }
