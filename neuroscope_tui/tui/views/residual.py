"""The residual view: how much each block writes into the stream versus what the skip carries.

A layer x token grid of one residual figure (`m` cycles): ||attn_out|| / ||x_in||,
||mlp_out|| / ||x_in||, cos(x_in, x_out), the block's change ||x_out - x_in|| / ||x_in||, or
which path dominates the cell (skip / attention / MLP). The side panel shows the cursor cell's
figures and, for its layer, the mean ratios and the share of tokens each path dominates.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from neuroscope_tui.analysis.residual import (
    ATTN,
    DOMINANT_NAMES,
    MLP,
    SKIP,
    ResidualAnalysis,
    analyse_residual,
)
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.views.grid_view import Grid, GridView, finite_range, unit_range
from neuroscope_tui.tui.widgets.colorbar import format_value
from neuroscope_tui.tui.widgets.heatmap_render import build_palette

# figure name -> (label on the colour bar, unit)
FIGURES: dict[str, tuple[str, str]] = {
    "attn ratio": ("||attn_out|| / ||x_in||", "ratio"),
    "mlp ratio": ("||mlp_out|| / ||x_in||", "ratio"),
    "cos": ("cos(x_in, x_out)", "cosine"),
    "change": ("||x_out - x_in|| / ||x_in||", "ratio"),
    "dominant": ("dominant path: skip (dark) · attn (mid) · mlp (bright)", "path"),
}


def layer_paths_text(r: ResidualAnalysis, cursor_row: int) -> Text:
    """One mark per layer: the path dominating most of its tokens (S skip, A attention,
    M MLP), on the same colours as the `dominant` grid; the cursor's layer underlined."""
    colours = build_palette().colours
    shade = {"skip": colours[0], "attn": colours[len(colours) // 2], "mlp": colours[-1]}
    text = Text("dominant path by layer  ", style="bold")
    for i, row in enumerate(r.layer_summary()):
        name = str(row["dominant"])
        c = shade.get(name, (90, 90, 90))
        fg = "black" if name == "mlp" else "white"
        style = Style(bgcolor=f"rgb{c}", color=fg, underline=i == cursor_row, bold=i == cursor_row)
        text.append(f"{row['layer']}{name[0].upper()}", style)
        text.append(" ")
    return text


class ResidualView(GridView):
    """Block-versus-stream ratios per layer and token, and which path dominates."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "cycle_figure", "figure")]
    DEFAULT_CSS = """
    ResidualView .residual-paths { height: auto; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.figure = "attn ratio"
        self.analysis: ResidualAnalysis | None = None

    def action_cycle_figure(self) -> None:
        """Show the next residual figure."""
        names = list(FIGURES)
        self.figure = names[(names.index(self.figure) + 1) % len(names)]
        self.invalidate()

    def compose_bottom(self) -> ComposeResult:
        yield Static(classes="residual-paths")

    def draw_bottom(self, row: int, column: int) -> None:
        if self.analysis is not None and self.analysis.layers:
            self.query_one(".residual-paths", Static).update(layer_paths_text(self.analysis, row))

    def grid_key(self, trace: Trace) -> tuple:
        return (id(trace), trace.n_tokens, self.figure)

    def title_text(self) -> str:
        return f"residual · {self.figure}   m: next figure"

    def build_grid(self, trace: Trace) -> Grid:
        r = self.analysis = analyse_residual(trace)
        label, unit = FIGURES[self.figure]
        if self.figure == "dominant":
            raw = r.dominant.astype(np.float64)
            raw[r.dominant < 0] = np.nan
            norm, lo, hi = raw / 2.0, 0.0, 2.0  # skip 0, attn 0.5, mlp 1
        else:
            raw = {
                "attn ratio": r.attn_ratio,
                "mlp ratio": r.mlp_ratio,
                "cos": r.cos,
                "change": r.change,
            }[self.figure]
            lo, hi = (-1.0, 1.0) if self.figure == "cos" else finite_range(raw)
            norm = unit_range(raw, lo, hi)
        return Grid(
            norm, raw, list(trace.token_text), trace.n_prompt, r.layers, label, unit, lo, hi
        )

    def describe_cell(self, row: int, column: int) -> Text:
        r, trace = self.analysis, self.trace
        if r is None or trace is None or not r.layers:
            return Text("")
        layer = r.layers[row]
        text = Text()
        text.append(f"layer {layer} · token {column} {trace.token_text[column]!r}\n", "bold")
        rows = [
            ("||x_in||", r.x_in_norm[row, column]),
            ("attn / x_in", r.attn_ratio[row, column]),
            ("mlp / x_in", r.mlp_ratio[row, column]),
            ("cos(x_in, x_out)", r.cos[row, column]),
            ("change", r.change[row, column]),
        ]
        for name, value in rows:
            text.append(f"{name:<17}{format_value(value):>9}\n")
        text.append(f"{'dominant':<17}{DOMINANT_NAMES[int(r.dominant[row, column])]:>9}\n")
        s = r.layer_summary()[row]
        text.append(f"\nlayer {layer}, all tokens\n", "bold")
        text.append(f"{'mean attn / x_in':<17}{format_value(s['attn_ratio']):>9}\n")
        text.append(f"{'mean mlp / x_in':<17}{format_value(s['mlp_ratio']):>9}\n")
        text.append(f"{'mean cos':<17}{format_value(s['cos']):>9}\n")
        for code, key in ((SKIP, "skip_share"), (ATTN, "attn_share"), (MLP, "mlp_share")):
            text.append(f"{DOMINANT_NAMES[code] + ' dominates':<17}{s[key]:>8.0%}\n")
        text.append(f"\nskip = change < {r.skip_change:g} of ||x_in||", "italic")
        return text
