"""Residual-connection analysis: how much each block writes versus what the skip path carries.

For layer l and token t, with x_in the stream entering block l (the embeddings for l = 0, the
stream after block l-1 otherwise) and x_out the stream after block l:

    attn ratio  ||attn_out|| / ||x_in||
    mlp ratio   ||mlp_out||  / ||x_in||
    cos         cos(x_in, x_out)
    change      ||x_out - x_in|| / ||x_in||, from the norms and the cosine (law of cosines)

A cell is "skip" when the block changed the stream by less than `skip_change` of its norm
(the skip connection carries it nearly unchanged); otherwise the block with the larger ratio
dominates it. Pure numpy, all from the per-token summaries, no full vectors needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import Trace

SKIP_CHANGE = 0.1  # default: a block that moves the stream by < 10% of its norm is skipped

# codes of `ResidualAnalysis.dominant`
UNKNOWN, SKIP, ATTN, MLP = -1, 0, 1, 2
DOMINANT_NAMES = {UNKNOWN: "?", SKIP: "skip", ATTN: "attn", MLP: "mlp"}


@dataclass
class ResidualAnalysis:
    """Per layer and token [L, T]: the ratios, cosine, change and which path dominates."""

    layers: list[int]
    x_in_norm: np.ndarray
    attn_ratio: np.ndarray
    mlp_ratio: np.ndarray
    cos: np.ndarray
    change: np.ndarray
    dominant: np.ndarray  # int8 codes: SKIP, ATTN, MLP, UNKNOWN (NaN inputs)
    skip_change: float

    def layer_summary(self) -> list[dict[str, float | int | str]]:
        """One row per layer: mean ratios, mean cosine, and the share of each dominant kind."""
        rows: list[dict[str, float | int | str]] = []
        for i, layer in enumerate(self.layers):
            dom = self.dominant[i]
            known = max(int(np.sum(dom != UNKNOWN)), 1)
            shares = {k: float(np.sum(dom == k)) / known for k in (SKIP, ATTN, MLP)}
            top = max(shares, key=lambda k: shares[k])
            rows.append(
                {
                    "layer": layer,
                    "attn_ratio": _nanmean(self.attn_ratio[i]),
                    "mlp_ratio": _nanmean(self.mlp_ratio[i]),
                    "cos": _nanmean(self.cos[i]),
                    "change": _nanmean(self.change[i]),
                    "skip_share": shares[SKIP],
                    "attn_share": shares[ATTN],
                    "mlp_share": shares[MLP],
                    "dominant": DOMINANT_NAMES[top],
                }
            )
        return rows


def _nanmean(row: np.ndarray) -> float:
    finite = row[np.isfinite(row)]
    return float(finite.mean()) if finite.size else float("nan")


def input_norms(trace: Trace) -> np.ndarray:
    """||x_in|| per layer and token [L, T]: embed.norm for layer 0, resid.norm of l-1 after.

    A layer whose previous layer was not captured gets NaN.
    """
    layers = trace.layers()
    resid = trace.get("resid.norm")
    out = np.full(resid.shape, np.nan, dtype=np.float64)
    row_of = {layer: i for i, layer in enumerate(layers)}
    for i, layer in enumerate(layers):
        if layer == 0:
            if trace.has("embed.norm"):
                out[i] = trace.get("embed.norm")
        elif layer - 1 in row_of:
            out[i] = resid[row_of[layer - 1]]
    return out


def analyse_residual(trace: Trace, skip_change: float = SKIP_CHANGE) -> ResidualAnalysis:
    """The residual-connection analysis of a trace (needs resid.norm, resid.cos, attn.norm,
    mlp.norm and embed.norm); raises SnapshotError naming what is missing."""
    needed = ("resid.norm", "resid.cos", "attn.norm", "mlp.norm")
    missing = [n for n in needed if not trace.has(n)]
    if missing:
        raise SnapshotError(
            f"this run has no {', '.join(missing)}, so the residual analysis cannot be shown; "
            "capture with the resid, attn and mlp sites."
        )
    x_in = input_norms(trace)
    x_out = trace.get("resid.norm").astype(np.float64)
    cos = trace.get("resid.cos").astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        attn_ratio = trace.get("attn.norm") / x_in
        mlp_ratio = trace.get("mlp.norm") / x_in
        # ||x_out - x_in||^2 = ||x_out||^2 + ||x_in||^2 - 2 ||x_out|| ||x_in|| cos
        sq = x_out**2 + x_in**2 - 2 * x_out * x_in * cos
        change = np.sqrt(np.maximum(sq, 0.0)) / x_in
    dominant = np.where(mlp_ratio > attn_ratio, MLP, ATTN).astype(np.int8)
    dominant[change < skip_change] = SKIP
    unknown = ~(np.isfinite(attn_ratio) & np.isfinite(mlp_ratio) & np.isfinite(change))
    dominant[unknown] = UNKNOWN
    return ResidualAnalysis(
        layers=trace.layers(),
        x_in_norm=x_in,
        attn_ratio=attn_ratio,
        mlp_ratio=mlp_ratio,
        cos=cos,
        change=change,
        dominant=dominant,
        skip_change=skip_change,
    )
