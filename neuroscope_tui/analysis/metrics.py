"""The layer x token heatmap's metrics, and how their values are scaled into colours.

Each metric reads one [layer, token] array of a Trace (see trace.py for what each array
means). `normalise` maps values to [0, 1] globally, per layer or per token: raw norms grow
with depth, so a global scale hides everything but the last layers. Pure numpy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.errors import SnapshotError, UsageError
from neuroscope_tui.trace import Trace


@dataclass(frozen=True)
class Metric:
    """One heatmap metric: its short name, the label on screen, its unit and how to compute it.

    `fn(trace)` returns float32 [layer, token] (rows = `trace.layers()`); a metric the trace
    did not record is all NaN, so the heatmap shows empty cells rather than failing.
    """

    name: str
    label: str
    unit: str
    fn: Callable[[Trace], np.ndarray]
    array: str = ""  # the Trace array it reads, for "not recorded" messages


def _reader(array: str) -> Callable[[Trace], np.ndarray]:
    """A metric function that returns the Trace array `array` ([L, T]) as float32."""

    def read(trace: Trace) -> np.ndarray:
        if not trace.has(array):
            return np.full((len(trace.layers()), trace.n_tokens), np.nan, dtype=np.float32)
        return np.asarray(trace.get(array), dtype=np.float32)

    read.__doc__ = f"The trace's {array} array, [layer, token]."
    return read


def _metric(name: str, array: str, label: str, unit: str) -> Metric:
    return Metric(name=name, label=label, unit=unit, fn=_reader(array), array=array)


# Order = the order the metric key cycles through.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _metric("resid.norm", "resid.norm", "residual norm", "||x||"),
        _metric("attn.norm", "attn.norm", "attention-output norm", "||attn||"),
        _metric("mlp.norm", "mlp.norm", "MLP-output norm", "||mlp||"),
        _metric("resid.max_abs", "resid.max_abs", "max |activation|", "max|x|"),
        _metric("neurons.zero_frac", "neurons.zero_frac", "near-zero MLP neurons", "fraction"),
        _metric("resid.delta", "resid.delta", "block change", "||Δx||/||x||"),
    )
}

NORMALISATIONS: tuple[str, ...] = ("global", "per layer", "per token")


def add_metric(metric: Metric) -> None:
    """Add `metric` at the end of the cycle (a loaded concept, say); one of the same name is
    replaced, so loading a concept twice adds it once."""
    METRICS[metric.name] = metric


def metric_values(trace: Trace, name: str) -> np.ndarray:
    """The values of metric `name` for `trace`, float32 [layer, token] (NaN = not recorded).

    Raises UsageError for an unknown metric name.
    """
    try:
        metric = METRICS[name]
    except KeyError:
        known = ", ".join(METRICS)
        raise UsageError(f"Unknown metric {name!r}; choose one of: {known}.") from None
    return metric.fn(trace)


def next_metric(name: str) -> str:
    """The metric after `name` in METRICS (wrapping), for the cycle key."""
    names = list(METRICS)
    return names[(names.index(name) + 1) % len(names)] if name in names else names[0]


def next_normalisation(mode: str) -> str:
    """The normalisation after `mode` in NORMALISATIONS (wrapping), for the cycle key."""
    modes = list(NORMALISATIONS)
    return modes[(modes.index(mode) + 1) % len(modes)] if mode in modes else modes[0]


# viridis at 0.0, 0.1, ..., 1.0 (matplotlib's table); linear in between is visually exact.
_VIRIDIS_STOPS = (
    "#440154",
    "#482475",
    "#414487",
    "#355f8d",
    "#2a788e",
    "#21918c",
    "#22a884",
    "#44bf70",
    "#7ad151",
    "#bddf26",
    "#fde725",
)


def viridis(n: int = 256) -> list[tuple[int, int, int]]:
    """`n` RGB colours running along viridis from dark purple (0) to yellow (1)."""
    stops = np.array(
        [[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in _VIRIDIS_STOPS], dtype=np.float64
    )
    at = np.linspace(0.0, 1.0, n)
    grid = np.linspace(0.0, 1.0, len(stops))
    rgb = np.stack([np.interp(at, grid, stops[:, k]) for k in range(3)], axis=1)
    return [tuple(round(c) for c in row) for row in rgb]


OUTLIER_FENCE = 3.0  # Tukey's "far out" fences: Q1 - 3 IQR and Q3 + 3 IQR


def normalise(values: np.ndarray, mode: str = "global", clip_outliers: bool = False) -> np.ndarray:
    """Scale `values` [layer, token] into [0, 1] by min-max over all cells, rows or columns.

    mode "global" uses one min and max for every cell, "per layer" one per row, "per token"
    one per column. NaN cells stay NaN and are ignored when finding min and max (so is ±inf,
    which is clipped to 0 or 1). A group whose finite values are all equal maps to 0.5: it has
    no contrast to show, and mid-scale says "a value" where 0 would look like "nothing".

    With `clip_outliers`, each group's scale ends at Tukey's far-out fences (Q1 - 3 IQR,
    Q3 + 3 IQR) where those lie inside its min and max, and cells beyond them take the end
    colours: the massive activations most LLMs keep at the first token (an attention sink,
    10x the other norms) otherwise leave every other cell of a layer at the bottom colour.
    A group whose IQR is 0 keeps its min and max. Raises UsageError for an unknown mode.
    """
    if mode not in NORMALISATIONS:
        known = ", ".join(NORMALISATIONS)
        raise UsageError(f"Unknown normalisation {mode!r}; choose one of: {known}.")
    # float64: a float32 span can overflow for huge values; the cost is a few ms at 80 x 4096.
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"normalise expects [layer, token] values, got shape {v.shape}")
    if v.size == 0:
        return np.full(v.shape, np.nan, dtype=np.float32)
    axis = {"global": None, "per layer": 1, "per token": 0}[mode]
    finite = np.isfinite(v)
    if finite.all():  # the usual case: no masking needed
        lo = v.min(axis=axis, keepdims=True)
        hi = v.max(axis=axis, keepdims=True)
    else:
        lo = np.where(finite, v, np.inf).min(axis=axis, keepdims=True)
        hi = np.where(finite, v, -np.inf).max(axis=axis, keepdims=True)
    if clip_outliers:
        lo, hi = _fences(v, axis, lo, hi)
    span = hi - lo
    flat = ~(span > 0)  # constant groups, and groups with no finite value (lo=inf, hi=-inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scaled = (v - lo) / np.where(flat, 1.0, span)
    if flat.any():
        scaled[np.broadcast_to(flat, v.shape) & ~np.isnan(v)] = 0.5
    np.clip(scaled, 0.0, 1.0, out=scaled)  # ±inf -> 0 or 1; NaN stays NaN
    return scaled.astype(np.float32)


def _fences(
    v: np.ndarray, axis: int | None, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tukey's far-out fences of each group of `v`, kept inside [lo, hi] (its min and max)."""
    finite = np.where(np.isfinite(v), v, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN groups: NaN quartiles
        q1, q3 = np.nanpercentile(finite, [25.0, 75.0], axis=axis, keepdims=True)
    iqr = q3 - q1
    usable = iqr > 0  # False for NaN too: such groups keep min and max
    new_lo = np.where(usable, np.maximum(lo, q1 - OUTLIER_FENCE * iqr), lo)
    new_hi = np.where(usable, np.minimum(hi, q3 + OUTLIER_FENCE * iqr), hi)
    return new_lo, new_hi


def scale_bounds(
    values: np.ndarray, mode: str = "global", clip_outliers: bool = False
) -> tuple[float, float]:
    """The raw values at the two ends of the colour scale when `mode` is "global" (the colour
    bar's labels); for the other modes, the min and max over all cells (each group has its
    own ends). NaN when nothing is finite."""
    lo, hi = value_range(values)
    if clip_outliers and mode == "global" and np.isfinite(lo):
        v = np.asarray(values, dtype=np.float64)
        flo, fhi = _fences(v, None, np.array([[lo]]), np.array([[hi]]))
        return float(flo[0, 0]), float(fhi[0, 0])
    return lo, hi


def value_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values of `values`, or (nan, nan) if there are none."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    return (float(finite.min()), float(finite.max()))


def heatmap_table(trace: Trace) -> Table:
    """Every heatmap metric per layer and token, long format (the `heatmap` export).

    Columns: layer (the model's layer number), token_index, token_text, is_generated, then
    one column per metric in METRICS order, then the trace's per-block watched modules
    (analysis/watch_metrics.py); a metric the trace did not record is NaN.
    Raises SnapshotError when the trace recorded none of them.
    """
    from neuroscope_tui.analysis.watch_metrics import watch_metrics

    if not any(trace.has(m.array) for m in METRICS.values()):
        names = ", ".join(m.array for m in METRICS.values())
        raise SnapshotError(
            f"This snapshot holds none of the heatmap's metrics ({names}); "
            "capture with the resid, attn, mlp and neurons sites."
        )
    # the trace's own watched modules, not those a live run registered for another trace
    every = {name: m for name, m in METRICS.items() if not name.startswith("watch:")}
    every.update({m.name: m for m in watch_metrics(trace)})
    values = {name: m.fn(trace) for name, m in every.items()}  # each [layer, token]
    layers = trace.layers()
    rows: list[list[Any]] = []
    for row, layer in enumerate(layers):
        for t in range(trace.n_tokens):
            cells = [float(values[name][row, t]) for name in every]
            rows.append([layer, t, trace.token_text[t], t >= trace.n_prompt, *cells])
    columns = ["layer", "token_index", "token_text", "is_generated", *every]
    return Table(columns=columns, rows=rows)
