"""The logit lens read from a Trace: what each layer would predict next, and when it settles.

The capture computes, per layer l and position t, the top-k of softmax(unembed(norm(x_l[t])))
plus KL(final || layer) and the rank and probability of the model's own final top-1 token.
This module turns those arrays into what the lens view and its export show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import Trace

LENS_ARRAYS = ("lens.top_ids", "lens.top_probs", "lens.kl", "lens.pred_rank", "lens.pred_prob")


@dataclass
class LensGrid:
    """Per layer and token [L, T]: top-1 id and probability, KL, rank of the final prediction.

    `actual_next[t]` is the token that follows position t in the run (-1 at the last one);
    `hits[l, t]` is True where layer l's top-1 is that token. `first_pred_top1[t]` is the
    first layer (model layer index) where the model's final prediction is top-1, and
    `first_actual_top1[t]` the first where the actual next token is; -1 for never or unknown.
    """

    layers: list[int]
    top1_ids: np.ndarray
    top1_probs: np.ndarray
    kl: np.ndarray
    pred_rank: np.ndarray
    pred_prob: np.ndarray
    actual_next: np.ndarray
    hits: np.ndarray
    first_pred_top1: np.ndarray
    first_actual_top1: np.ndarray
    final_pred: np.ndarray  # [T] the model's own top-1 at t (the last layer's lens top-1)

    def kl_per_layer(self) -> np.ndarray:
        """Mean KL(final || layer) over the positions the lens covers -> [L]."""
        with np.errstate(invalid="ignore"):
            return np.array([_nanmean(row) for row in self.kl])


def _nanmean(row: np.ndarray) -> float:
    finite = row[np.isfinite(row)]
    return float(finite.mean()) if finite.size else float("nan")


def first_layer(mask: np.ndarray, layers: list[int]) -> np.ndarray:
    """For each token, the first model layer where `mask` [L, T] is True, else -1 -> [T]."""
    any_true = mask.any(axis=0)
    first_row = mask.argmax(axis=0)
    return np.where(any_true, np.asarray(layers, dtype=np.int64)[first_row], -1)


def lens_grid(trace: Trace) -> LensGrid:
    """The lens grid of a trace; SnapshotError when the run was captured without the lens."""
    if not all(trace.has(n) for n in LENS_ARRAYS):
        raise SnapshotError(
            "this run has no logit lens; capture it again without --no-lens to see the lens."
        )
    top_ids = trace.get("lens.top_ids")
    pred_rank = trace.get("lens.pred_rank")
    n_tokens = top_ids.shape[1]
    layers = trace.layers()[: top_ids.shape[0]]
    top1 = top_ids[:, :, 0].astype(np.int64)
    ids = np.asarray(trace.token_ids[:n_tokens], dtype=np.int64)
    actual = np.full(n_tokens, -1, dtype=np.int64)
    actual[:-1] = ids[1:]
    hits = (top1 == actual[None, :]) & (actual[None, :] >= 0)
    covered = top1 >= 0
    return LensGrid(
        layers=layers,
        top1_ids=top1,
        top1_probs=trace.get("lens.top_probs")[:, :, 0].astype(np.float64),
        kl=trace.get("lens.kl").astype(np.float64),
        pred_rank=pred_rank.astype(np.int64),
        pred_prob=trace.get("lens.pred_prob").astype(np.float64),
        actual_next=actual,
        hits=hits,
        first_pred_top1=first_layer((pred_rank == 0) & covered, layers),
        first_actual_top1=first_layer(hits, layers),
        final_pred=top1[-1],
    )


def id_text_map(trace: Trace) -> dict[int, str]:
    """Vocabulary id -> text for every id the run can show: its tokens and its top-k lists."""
    texts = dict(zip(trace.token_ids, trace.token_text, strict=False))
    texts.update({int(k): v for k, v in (trace.notes.get("id_text") or {}).items()})
    return texts


def token_text(trace: Trace, token_id: int, texts: dict[int, str] | None = None) -> str:
    """The text of a vocabulary id: from the run's id_text note, its own tokens, or '#id'.

    Pass `texts` (from `id_text_map`) when looking up many ids.
    """
    if token_id < 0:
        return ""
    texts = id_text_map(trace) if texts is None else texts
    return texts.get(int(token_id), f"#{token_id}")
