"""`CompareApp`: two runs of one model side by side, layer by layer (`neuroscope-tui compare`).

Left, the per-layer similarity of the two runs (cosine of mean, depth-centred and last-token
residuals, and token-paired CKA when the runs have the same length; see analysis/compare.py).
Right, the difference heatmap: layers x metrics, each cell the token-mean of the metric in B
relative to A ((B - A) / |A|), on a symmetric scale. The cursor on a cell shows both runs'
values. Never imports torch.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Static

from neuroscope_tui.analysis.compare import Comparison, compare_runs
from neuroscope_tui.text_safety import visible
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.views.grid_view import unit_range
from neuroscope_tui.tui.widgets.colorbar import ColorBar, format_value
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap

FIGURE_COLUMNS = ("cos_mean", "cos_centred", "cos_last", "cka_tokens")


def diff_scale(relative_diff: np.ndarray) -> tuple[np.ndarray, float]:
    """Colours in [0, 1] for relative differences, 0.5 = no change, and the scale's half-width."""
    finite = np.abs(relative_diff[np.isfinite(relative_diff)])
    half = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return unit_range(relative_diff, -half, half), half


def run_label(trace: Trace, width: int = 50) -> str:
    """A run's prompt on one line, control characters as escapes, cut to `width`."""
    text = visible(trace.prompt.replace("\n", "⏎"))
    return text if len(text) <= width else text[: width - 1] + "…"


class CompareApp(App[int]):
    """Per-layer similarity of two runs and their difference heatmap."""

    TITLE = "neuroscope compare"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "quit")]
    CSS = """
    #compare-title { height: auto; padding: 0 1; background: $boost; }
    #compare-body { height: 1fr; }
    #figures { width: 58; }
    #diff-side { height: auto; padding: 0 1; }
    LayerHeatmap { height: 1fr; }
    """

    def __init__(self, a: Trace, b: Trace, skip_first: bool = True) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.comparison: Comparison = compare_runs(a, b, skip_first=skip_first)

    def compose(self) -> ComposeResult:
        yield Static(self.title_text(), id="compare-title")
        with Horizontal(id="compare-body"):
            yield DataTable(id="figures", cursor_type="row", zebra_stripes=True)
            with Vertical():
                yield LayerHeatmap(cell_width=12, follow=False, id="diff")
                yield ColorBar(id="diff-bar")
                yield Static(id="diff-side")
        yield Footer()

    def title_text(self) -> Text:
        c = self.comparison
        text = Text()
        text.append(visible(self.a.model.name), "bold")
        text.append(f"   A: '{run_label(self.a)}' ({self.a.n_tokens} tokens)")
        text.append(f"   B: '{run_label(self.b)}' ({self.b.n_tokens} tokens)\n")
        text.append("CKA of mean states across layers ", "bold")
        text.append(format_value(c.cka_mean_states))
        if c.skip_first:
            text.append("   (first token left out of every figure)", "italic")
        return text

    def on_mount(self) -> None:
        c = self.comparison
        table = self.query_one("#figures", DataTable)
        table.add_columns("layer", *FIGURE_COLUMNS)
        for i, layer in enumerate(c.layers):
            cka = "–" if c.cka_tokens is None else format_value(c.cka_tokens[i])
            table.add_row(
                str(layer),
                format_value(c.cos_mean[i]),
                format_value(c.cos_centred[i]),
                format_value(c.cos_last[i]),
                cka,
            )
        heat = self.query_one("#diff", LayerHeatmap)
        norm, half = diff_scale(c.relative_diff)
        layer_ids = self.a.layers()
        heat.set_data(norm, c.relative_diff, list(c.metrics), len(c.metrics), layer_ids)
        self.query_one(ColorBar).set_scale(
            "token-mean of B relative to A", "(B-A)/|A|", -half, half, "global"
        )
        heat.focus()
        self.describe(0, 0)

    def on_layer_heatmap_cursor_moved(self, event: LayerHeatmap.CursorMoved) -> None:
        self.describe(event.layer, event.token)

    def describe(self, row: int, column: int) -> None:
        """Show both runs' values of the metric under the cursor."""
        c = self.comparison
        side = self.query_one("#diff-side", Static)
        if not c.metrics:
            side.update("the runs share no per-token metric to compare")
            return
        layer = self.a.layers()[row]
        name = c.metrics[column]
        side.update(
            f"layer {layer} · {name} (mean over tokens)\n"
            f"A {format_value(c.mean_a[row, column])}   B {format_value(c.mean_b[row, column])}"
            f"   (B-A)/|A| {format_value(c.relative_diff[row, column])}"
        )
        if layer in c.layers:  # the table has rows only for layers with full vectors
            self.query_one("#figures", DataTable).move_cursor(row=c.layers.index(layer))
