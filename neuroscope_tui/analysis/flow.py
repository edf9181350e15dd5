"""Information flow to an output: attention rollout and attention flow (Abnar & Zuidema, 2020).

Both start from the head-averaged attention of every layer [L, T, T] with the residual
connection folded in, A'_l = rownorm(0.5 A_l + 0.5 I), and read a layer x token grid for one
output position p: row l says how much of p's representation after layer l comes from each
input token.

- rollout: R_l = A'_l A'_{l-1} ... A'_0, row p. Rows sum to 1.
- flow: the maximum flow from input token j to node (l, p) in the layered graph whose edges
  (k, j) -> (k+1, i) have capacity A'_k[i, j]. Flow values are not shares (one token can push
  up to 1 on its own), so `shares` divides each row by its sum for colouring.

Attention flow solves one max-flow problem per (layer, input token) with scipy's Dinic on
integer-scaled capacities (1/2^20 resolution). Row l's graph has (l+1) (p+1)^2 / 2 edges and
needs p+1 problems, so the cost grows about as L^2 p^3: measured at L = 30, p = 127, about
2 s for the last row and 20-30 s for all 30 rows (0.2 s / 3 s at p = 63; bench/connectivity.py).
Positions past FLOW_MAX_TOKENS are refused; rollout has no such limit (L^2 T^2 / 2 flops).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from neuroscope_tui.errors import SnapshotError, UsageError
from neuroscope_tui.trace import Trace

FLOW_MAX_TOKENS = 128
_SCALE = 1 << 20  # capacities are scaled to integers for scipy's max-flow


def with_residual(patterns: np.ndarray) -> np.ndarray:
    """A'_l = 0.5 A_l + 0.5 I with rows renormalised, for patterns [L, T, T] -> [L, T, T]."""
    patterns = np.nan_to_num(np.asarray(patterns, dtype=np.float64))
    n = patterns.shape[-1]
    mixed = 0.5 * patterns + 0.5 * np.eye(n)[None]
    return mixed / mixed.sum(axis=-1, keepdims=True)


def rollout(patterns: np.ndarray, position: int) -> np.ndarray:
    """Attention rollout from output `position` back to the input tokens -> [L, T].

    Row l = (A'_l ... A'_0)[position]: the share of each input token in the position's
    representation after layer l. Every row sums to 1.
    """
    patterns = np.asarray(patterns)
    if np.isnan(patterns).any():
        patterns = np.nan_to_num(patterns)
    n_layers, n = patterns.shape[0], patterns.shape[-1]
    _check_position(position, n)
    # A'_l = (0.5 A_l + 0.5 I) / s_l with row sums s_l = 0.5 sum_j A_l[i, j] + 0.5, so
    # v @ A'_l = 0.5 (v / s_l) @ A_l + 0.5 (v / s_l) without building A'_l.
    scale = 0.5 * patterns.sum(axis=-1, dtype=np.float64) + 0.5  # [L, T]
    grid = np.zeros((n_layers, n))
    # Row `position` of each prefix product, walked down as a row vector: L^2 T^2 / 2 flops,
    # far less than the L T^3 of multiplying the full matrices once T exceeds a few layers.
    for top in range(n_layers):
        row = np.zeros(n)
        row[position] = 1.0
        for layer in range(top, -1, -1):
            v = row / scale[layer]
            row = 0.5 * (v @ patterns[layer]) + 0.5 * v  # [T] @ [T, T]
        grid[top] = row
    return grid


def attention_flow(
    patterns: np.ndarray,
    position: int,
    layers: Sequence[int] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Attention flow from every input token to node (l, position), for each l -> [L, T].

    `layers` limits which rows are computed (others stay NaN); `cancel()` returning True
    stops between max-flow problems (remaining cells stay NaN). Tokens after `position`
    cannot reach it in a causal model and get 0. Raises UsageError past FLOW_MAX_TOKENS.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    mixed = with_residual(patterns)
    n_layers, n_all = mixed.shape[0], mixed.shape[-1]
    _check_position(position, n_all)
    if position >= FLOW_MAX_TOKENS:
        raise UsageError(
            f"attention flow is limited to the first {FLOW_MAX_TOKENS} positions "
            f"(max-flow cost grows as positions cubed); use rollout for position {position}."
        )
    n = position + 1  # later positions never reach `position` through causal attention
    grid = np.full((n_layers, n_all), np.nan)
    grid[:, n:] = 0.0
    wanted = range(n_layers) if layers is None else sorted(set(layers))
    # one graph for the whole depth: node (k, i) is k * n + i, k = 0 the inputs
    rows, cols, caps = [], [], []
    for k in range(n_layers):
        i, j = np.nonzero(np.tril(mixed[k, :n, :n]))
        cap = np.round(mixed[k, i, j] * _SCALE).astype(np.int64)
        keep = cap > 0
        rows.append(k * n + j[keep])
        cols.append((k + 1) * n + i[keep])
        caps.append(cap[keep])
    rows_all, cols_all = np.concatenate(rows), np.concatenate(cols)
    caps_all = np.concatenate(caps).astype(np.int32)
    ends = np.cumsum([len(r) for r in rows])  # edges of layers 0..k end at ends[k]
    for layer in wanted:
        # only layers 0..layer lie between the inputs and the sink: a smaller graph, same flow
        size, stop = (layer + 2) * n, ends[layer]
        graph = csr_matrix(
            (caps_all[:stop], (rows_all[:stop], cols_all[:stop])), shape=(size, size)
        )
        sink = (layer + 1) * n + position
        for j in range(n):
            if cancel is not None and cancel():
                return grid
            grid[layer, j] = maximum_flow(graph, j, sink, method="dinic").flow_value / _SCALE
    return grid


def shares(grid: np.ndarray) -> np.ndarray:
    """Each row of a flow or rollout grid [L, T] divided by its sum (NaN rows stay NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(grid, axis=1, keepdims=True)
        out = grid / total
    out[~np.isfinite(total[:, 0])] = np.nan
    return out


def _check_position(position: int, n: int) -> None:
    if not 0 <= position < n:
        raise UsageError(f"position {position} is outside the run's tokens 0..{n - 1}.")


def head_averaged_patterns(trace: Trace) -> np.ndarray | None:
    """Head-averaged patterns [L, T, T] from the trace, or None when it lacks them.

    Uses `pattern.{l}.-1` where captured, else the mean of `pattern.{l}.{h}` when every head
    of layer l is there. Every layer must be covered.
    """
    out = []
    for layer in range(trace.n_layers):
        name = f"pattern.{layer}.-1"
        if trace.has(name):
            out.append(trace.get(name))
            continue
        heads = [f"pattern.{layer}.{h}" for h in range(trace.n_heads)]
        if trace.n_heads == 0 or not all(trace.has(h) for h in heads):
            return None
        out.append(np.mean([trace.get(h) for h in heads], axis=0))
    if not out:
        return None
    n = trace.n_tokens
    return np.stack([p[:n, :n] for p in out]).astype(np.float64)


def require_patterns(trace: Trace) -> np.ndarray:
    """`head_averaged_patterns`, or SnapshotError saying how to capture them."""
    patterns = head_averaged_patterns(trace)
    kept = trace.layers()
    if patterns is None and len(kept) < trace.n_layers:
        raise SnapshotError(
            f"this capture sampled {len(kept)} of {trace.n_layers} layers (--layers); attention "
            "rollout and flow need every layer's pattern, so capture all layers for them."
        )
    if patterns is None:
        raise SnapshotError(
            "this run kept no head-averaged attention patterns; capture it without "
            "--no-layer-patterns, or open the model live (they are computed on demand)."
        )
    return patterns
