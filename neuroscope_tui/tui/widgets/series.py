"""The time-series plots under the heatmap: the selected layer's metric across tokens, and one
MLP neuron's activation across tokens (textual-plotext).

`neuron_series` is pure: the neuron's activation at every position from `neurons.full` when
the run kept full neurons for that layer; otherwise only the positions where the neuron was in
that position's top-k (the rest NaN), and the plot's title says so.
"""

from __future__ import annotations

import math

import numpy as np
from textual_plotext import PlotextPlot

from neuroscope_tui.trace import Trace


def full_neuron_layers(trace: Trace) -> list[int]:
    """The layers whose full MLP neurons the trace holds, in `neurons.full` row order."""
    if not trace.has("neurons.full"):
        return []
    held = trace.layers()
    full = trace.spec.full_layers
    rows = held if full is None else [layer for layer in full if layer in held]
    return rows[: trace.get("neurons.full").shape[0]]


def neuron_series(trace: Trace, row: int, neuron: int) -> tuple[np.ndarray, bool]:
    """Neuron `neuron` of heatmap row `row` at every position -> ([T] values, complete?).

    complete is False when only top-k appearances are known (other positions are NaN).
    """
    layer = trace.layers()[row]
    full = full_neuron_layers(trace)
    subset = trace.spec.neuron_subset
    column = neuron if subset is None else (subset.index(neuron) if neuron in subset else None)
    if layer in full and column is not None:  # a sampled run keeps some neurons' columns only
        values = trace.get("neurons.full")[full.index(layer), : trace.n_tokens, column]
        return np.asarray(values, dtype=np.float64), True
    out = np.full(trace.n_tokens, np.nan)
    if trace.has("neurons.top_idx"):
        idx = trace.get("neurons.top_idx")[row, : trace.n_tokens]  # [T, K]
        val = trace.get("neurons.top_val")[row, : trace.n_tokens]
        hit = idx == neuron
        found = hit.any(axis=1)
        out[found] = val[found, hit[found].argmax(axis=1)]
    return out, False


def draw_series(
    plot: PlotextPlot,
    title: str,
    values: np.ndarray,
    cursor: int,
    ylim: tuple[float, float] | None = None,
) -> None:
    """Plot `values` [T] against token position, with a vertical line at the cursor's token.

    NaN positions are left out (plotext cannot draw them); `ylim` narrows the value axis (the
    heatmap's outlier fences, so one huge first token does not flatten the rest).
    """
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    xs = [i for i, v in enumerate(values) if math.isfinite(v)]
    ys = [float(values[i]) for i in xs]
    if xs:
        n = len(values)
        step = max(1, (n + 5) // 6)
        plt.xticks(list(range(0, n, step)))  # token positions are whole numbers
        plt.plot(xs, ys, marker="braille")
        plt.scatter([xs[-1]], [ys[-1]], marker="dot")
        plt.vline(cursor, "red")
        plt.xlim(0, max(1, len(values) - 1))
        if ylim is not None and all(map(math.isfinite, ylim)) and ylim[1] > ylim[0]:
            plt.ylim(*ylim)
    plot.refresh()
