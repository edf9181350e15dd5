"""Functional connectivity: which layers act together over the tokens of a run.

Three layer x layer measures, each a symmetric [L, L] matrix:

- `correlation_matrix`: Pearson correlation of two layers' per-token time courses of one
  [L, T] metric (resid.norm, attn.norm, mlp.norm ...): do they light up on the same tokens?
- `cka_matrix`: linear CKA (Kornblith et al. 2019) of the residual streams [L, T, D], tokens
  as paired samples: do the layers hold the same geometry of token representations?
- `cosine_matrix`: the mean over tokens of cos(x_l[t], x_m[t]): do they point the same way?

Pure numpy. Undefined entries (a constant time course, a zero representation) are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import Trace

# CKA works on token x token Gram matrices: memory and time grow as T^2, so longer runs use
# an evenly spaced subset of tokens (always including the newest one).
CKA_MAX_TOKENS = 1024


@dataclass(frozen=True)
class Measure:
    """One switchable connectivity measure: what it is called and what it needs."""

    name: str
    label: str
    source: str  # the trace array it reads


MEASURES: dict[str, Measure] = {
    "corr resid.norm": Measure("corr resid.norm", "correlation of residual norms", "resid.norm"),
    "corr attn.norm": Measure("corr attn.norm", "correlation of attention norms", "attn.norm"),
    "corr mlp.norm": Measure("corr mlp.norm", "correlation of MLP-output norms", "mlp.norm"),
    "cka": Measure("cka", "linear CKA of residual streams", "resid.full"),
    "cosine": Measure("cosine", "mean cosine of residual streams", "resid.full"),
}


def correlation_matrix(values: np.ndarray) -> np.ndarray:
    """Pearson correlation between rows of `values` [L, T] over the tokens -> [L, L].

    Tokens where any layer is NaN are left out. A layer whose time course is constant has
    no correlation with anything: its row and column are NaN (its diagonal too).
    """
    values = np.asarray(values, dtype=np.float64)
    keep = np.all(np.isfinite(values), axis=0)
    x = values[:, keep]
    n_layers = values.shape[0]
    if x.shape[1] < 2:
        return np.full((n_layers, n_layers), np.nan)
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1)
    # a time course flat to rounding error is constant: its correlation is undefined
    scale = np.abs(values[:, keep]).max(axis=1) * np.sqrt(x.shape[1])
    flat = norms <= 1e-12 * np.maximum(scale, 1e-300)
    safe = np.where(flat, 1.0, norms)
    z = x / safe[:, None]
    corr = np.clip(z @ z.T, -1.0, 1.0)
    corr[flat, :] = np.nan
    corr[:, flat] = np.nan
    return corr


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same samples: x [n, d1], y [n, d2].

    CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with columns centred. 1 for
    representations equal up to an orthogonal transform and isotropic scaling; NaN when
    either is constant over the samples.
    """
    xc = np.asarray(x, dtype=np.float64)
    yc = np.asarray(y, dtype=np.float64)
    xc = xc - xc.mean(axis=0)
    yc = yc - yc.mean(axis=0)
    cross = np.linalg.norm(yc.T @ xc) ** 2
    denom = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    return float(cross / denom) if denom > 0 else float("nan")


def token_subset(n_tokens: int, max_tokens: int = CKA_MAX_TOKENS) -> np.ndarray:
    """Indices of at most `max_tokens` evenly spaced tokens, the newest always included."""
    if n_tokens <= max_tokens:
        return np.arange(n_tokens)
    return np.unique(np.linspace(0, n_tokens - 1, max_tokens).round().astype(int))


def cka_matrix(resid: np.ndarray, max_tokens: int = CKA_MAX_TOKENS) -> np.ndarray:
    """Linear CKA between every pair of layers of `resid` [L, T, D] -> [L, L].

    Computed from centred token x token Gram matrices K_l = Xc_l Xc_l^T: CKA(l, m) =
    <K_l, K_m>_F / (||K_l||_F ||K_m||_F), which equals `linear_cka` and costs one Gram per
    layer plus an [L, T^2] x [T^2, L] product instead of one D x D product per pair.
    """
    resid = np.asarray(resid)
    n_layers = resid.shape[0]
    idx = token_subset(resid.shape[1], max_tokens)
    if len(idx) < 2:
        return np.full((n_layers, n_layers), np.nan)
    grams = np.empty((n_layers, len(idx) * len(idx)), dtype=np.float64)
    for layer in range(n_layers):
        x = resid[layer, idx].astype(np.float64)  # [T', D]
        x -= x.mean(axis=0)  # centring in float64: residual streams have large common means
        x32 = x.astype(np.float32)
        # the Gram product is the cost (T'^2 D per layer): float32 halves it
        grams[layer] = (x32 @ x32.T).ravel()  # centred Gram [T', T'] flattened
    dots = grams @ grams.T  # [L, L] Frobenius inner products, accumulated in float64
    norms = np.sqrt(np.maximum(np.diag(dots), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cka = dots / np.outer(norms, norms)
    cka[norms == 0, :] = np.nan
    cka[:, norms == 0] = np.nan
    return np.clip(cka, 0.0, 1.0)


def cosine_matrix(resid: np.ndarray) -> np.ndarray:
    """Mean over tokens of cos(x_l[t], x_m[t]) for every pair of layers of [L, T, D] -> [L, L].

    Zero vectors are left out of the mean; a pair with no usable token is NaN.
    """
    resid = np.asarray(resid, dtype=np.float64)
    norms = np.linalg.norm(resid, axis=2)  # [L, T]
    ok = norms > 0
    unit = resid / np.where(ok, norms, 1.0)[:, :, None]
    # [L, T, D] x [M, T, D] -> per-token cosines summed over tokens, [L, M]
    sums = np.einsum("ltd,mtd->lm", unit, unit)
    counts = ok.astype(np.float64) @ ok.T.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / counts
    out[counts == 0] = np.nan
    return np.clip(out, -1.0, 1.0)


def full_layers(trace: Trace) -> list[int]:
    """The model layers that rows of `resid.full` belong to, in order."""
    if trace.spec.full_layers is None:
        return trace.layers()
    return list(trace.spec.full_layers)


def connectivity(trace: Trace, measure: str) -> tuple[np.ndarray, list[int]]:
    """The [L, L] matrix of `measure` (a key of MEASURES) and the model layers of its rows.

    Raises SnapshotError when the trace lacks the array the measure reads.
    """
    if measure not in MEASURES:
        known = ", ".join(MEASURES)
        raise SnapshotError(f"unknown connectivity measure {measure!r}; choose one of {known}.")
    source = MEASURES[measure].source
    if not trace.has(source) or trace.get(source).size == 0:
        if source == "resid.full":
            raise SnapshotError(
                "this run kept no full residual vectors; capture with --full-layers all "
                "to see CKA and cosine connectivity."
            )
        raise SnapshotError(f"this run has no {source} array, so {measure!r} cannot be shown.")
    values = trace.get(source)
    if measure == "cka":
        return cka_matrix(values), full_layers(trace)
    if measure == "cosine":
        return cosine_matrix(values), full_layers(trace)
    return correlation_matrix(values), trace.layers()


def available_measures(trace: Trace) -> list[str]:
    """The measures this trace holds the arrays for, in MEASURES order."""
    return [
        name for name, m in MEASURES.items() if trace.has(m.source) and trace.get(m.source).size > 0
    ]
