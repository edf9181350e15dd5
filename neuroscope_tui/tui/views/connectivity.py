"""The connectivity view: which layers act together over the tokens of the run.

A layer x layer matrix (rows and columns are layers) of one measure (`c` cycles the ones the
run holds): correlation of the layers' per-token time courses of a metric, linear CKA of their
residual streams, or the mean cosine of their residual vectors. It is recomputed as tokens
arrive. The cursor cell's two layers' time courses are plotted side by side below.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual_plotext import PlotextPlot

from neuroscope_tui.analysis.connectivity import (
    MEASURES,
    available_measures,
    connectivity,
)
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.views.grid_view import Grid, GridView, unit_range
from neuroscope_tui.tui.widgets.colorbar import format_value

EXPLAIN = {
    "cka": "linear CKA: same geometry of token representations (1 = equal up to rotation "
    "and scale)",
    "cosine": "mean over tokens of cos(x_a[t], x_b[t])",
}


def time_course_source(measure: str) -> str:
    """The [L, T] metric plotted for a measure (the residual norm for CKA and cosine)."""
    source = MEASURES[measure].source
    return "resid.norm" if source == "resid.full" else source


class ConnectivityView(GridView):
    """Layer x layer connectivity, and the two layers' time courses under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("c", "cycle_measure", "measure")]
    DEFAULT_CSS = """
    ConnectivityView .grid-bottom { height: 10; }
    ConnectivityView PlotextPlot { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.measure = "cka"
        self.matrix_layers: list[int] = []
        self.course_titles: list[str] = []  # the two plots' titles, as drawn

    def compose_bottom(self) -> ComposeResult:
        yield PlotextPlot(classes="course-a")
        yield PlotextPlot(classes="course-b")

    def _measures(self) -> list[str]:
        held = available_measures(self.trace) if self.trace is not None else []
        return held or list(MEASURES)

    def action_cycle_measure(self) -> None:
        """Show the next connectivity measure the run holds."""
        names = self._measures()
        at = names.index(self.measure) if self.measure in names else -1
        self.measure = names[(at + 1) % len(names)]
        self.invalidate()

    def grid_key(self, trace: Trace) -> tuple:
        return (id(trace), trace.n_tokens, self.measure)

    def title_text(self) -> str:
        return f"connectivity · {MEASURES[self.measure].label}   c: next measure"

    def build_grid(self, trace: Trace) -> Grid:
        if self.measure not in available_measures(trace) and available_measures(trace):
            self.measure = available_measures(trace)[0]  # e.g. no full vectors: no CKA
        matrix, layers = connectivity(trace, self.measure)
        if trace.n_tokens < 2:
            raise SnapshotError("connectivity needs at least two tokens.")
        self.matrix_layers = layers
        lo, hi = (0.0, 1.0) if self.measure == "cka" else (-1.0, 1.0)
        labels = [str(layer) for layer in layers]
        return Grid(
            unit_range(matrix, lo, hi),
            matrix,
            labels,
            len(labels),
            layers,
            MEASURES[self.measure].label,
            self.measure.split()[0],
            lo,
            hi,
            columns_are_tokens=False,
        )

    def describe_cell(self, row: int, column: int) -> Text:
        g = self.grid
        if g is None or not self.matrix_layers:
            return Text("")
        a, b = self.matrix_layers[row], self.matrix_layers[min(column, len(self.matrix_layers) - 1)]
        text = Text()
        text.append(f"layer {a} × layer {b}\n", "bold")
        text.append(f"{MEASURES[self.measure].label}\n")
        text.append(f"{format_value(g.raw[row, column])}\n\n", "bold")
        source = MEASURES[self.measure].source
        if self.measure.startswith("corr"):
            text.append(f"Pearson correlation of {source} over {self.trace.n_tokens} tokens")
        else:
            text.append(EXPLAIN[self.measure])
        text.append("\n\nrow mean ", "bold")
        text.append(format_value(float(np.nanmean(g.raw[row]))))
        return text

    def draw_bottom(self, row: int, column: int) -> None:
        trace, g = self.trace, self.grid
        if trace is None or g is None or not self.matrix_layers:
            return
        source = time_course_source(self.measure)
        if not trace.has(source):
            return
        values = trace.get(source)
        rows_of = {layer: i for i, layer in enumerate(trace.layers())}
        self.course_titles = []
        for selector, layer in (
            (".course-a", self.matrix_layers[row]),
            (".course-b", self.matrix_layers[min(column, len(self.matrix_layers) - 1)]),
        ):
            plot = self.query_one(selector, PlotextPlot)
            plt = plot.plt
            plt.clear_data()
            plt.clear_figure()
            title = f"layer {layer} · {source} by token"
            self.course_titles.append(title)
            plt.title(title)
            series = values[rows_of[layer]] if layer in rows_of else np.array([])
            xs = [t for t, v in enumerate(series) if math.isfinite(v)]
            if xs:
                plt.plot(xs, [float(series[t]) for t in xs], marker="braille")
                plt.vline(self.selection.token, "red")
                plt.xlim(0, max(1, len(series) - 1))
            plot.refresh()
