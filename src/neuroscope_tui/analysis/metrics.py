"""The layer x token heatmap's metrics, and how their values are scaled into colours.

Each metric reads one [layer, token] array of a Trace (see trace.py for what each array
means). `normalise` maps values to [0, 1] globally, per layer or per token: raw norms grow
with depth, so a global scale hides everything but the last layers. Pure numpy.
"""

from __future__ import annotations

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


def normalise(values: np.ndarray, mode: str = "global") -> np.ndarray:
    """Scale `values` [layer, token] into [0, 1] by min-max over all cells, rows or columns.

    mode "global" uses one min and max for every cell, "per layer" one per row, "per token"
    one per column. NaN cells stay NaN and are ignored when finding min and max (so is ±inf,
    which is clipped to 0 or 1). A group whose finite values are all equal maps to 0.5: it has
    no contrast to show, and mid-scale says "a value" where 0 would look like "nothing".
    Raises UsageError for an unknown mode.
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
    span = hi - lo
    flat = ~(span > 0)  # constant groups, and groups with no finite value (lo=inf, hi=-inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scaled = (v - lo) / np.where(flat, 1.0, span)
    if flat.any():
        scaled[np.broadcast_to(flat, v.shape) & ~np.isnan(v)] = 0.5
    np.clip(scaled, 0.0, 1.0, out=scaled)  # ±inf -> 0 or 1; NaN stays NaN
    return scaled.astype(np.float32)


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
    one column per metric in METRICS order; a metric the trace did not record is NaN.
    Raises SnapshotError when the trace recorded none of them.
    """
    if not any(trace.has(m.array) for m in METRICS.values()):
        names = ", ".join(m.array for m in METRICS.values())
        raise SnapshotError(
            f"This snapshot holds none of the heatmap's metrics ({names}); "
            "capture with the resid, attn, mlp and neurons sites."
        )
    values = {name: metric_values(trace, name) for name in METRICS}  # each [layer, token]
    layers = trace.layers()
    rows: list[list[Any]] = []
    for row, layer in enumerate(layers):
        for t in range(trace.n_tokens):
            cells = [float(values[name][row, t]) for name in METRICS]
            rows.append([layer, t, trace.token_text[t], t >= trace.n_prompt, *cells])
    columns = ["layer", "token_index", "token_text", "is_generated", *METRICS]
    return Table(columns=columns, rows=rows)
