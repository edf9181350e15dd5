"""The logit lens view: what each layer would predict next, and when the prediction settles.

A layer x token grid whose cells hold each layer's top-1 next token (final norm + unembedding
of that layer's residual stream), coloured by one figure (`m` cycles): the top-1 probability,
the probability or rank of the model's own final prediction, or KL(final || layer). A cell
whose top-1 is the run's actual next token starts with '✓'; the first layer where it does with
'★'. The side panel lists the cursor cell's top-k and where the prediction becomes top-1;
below, the cursor token's rank of the final prediction and KL, layer by layer.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.strip import Strip
from textual_plotext import PlotextPlot

from neuroscope_tui.analysis.lens import LensGrid, id_text_map, lens_grid
from neuroscope_tui.capture.derive import missing_lens
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.lens_requests import LensRequests, missing_near
from neuroscope_tui.tui.views.grid_view import Grid, GridView, finite_range, unit_range
from neuroscope_tui.tui.widgets.colorbar import format_value
from neuroscope_tui.tui.widgets.heatmap import AXIS_ROWS, LayerHeatmap
from neuroscope_tui.tui.widgets.heatmap_render import EMPTY, _contrast, build_palette, token_label

FIGURES: dict[str, tuple[str, str]] = {
    "top-1 prob": ("probability of each layer's top-1", "p"),
    "pred prob": ("probability of the final prediction", "p"),
    "pred rank": ("rank of the final prediction (bright = top)", "log10 rank"),
    "kl": ("KL(final || layer)", "nats"),
}
HIT, FIRST_HIT = "✓", "★"


@lru_cache(maxsize=1)
def text_styles() -> tuple[tuple[Style, ...], tuple[Style, ...]]:
    """Per colour bucket: cell text on the bucket's colour, and the same under the cursor."""
    colours = build_palette().colours
    plain = tuple(Style(bgcolor=f"rgb{c}", color=_contrast(c)) for c in colours)
    cursor = tuple(s + Style(reverse=True, bold=True) for s in plain)
    return plain, cursor


class LensHeatmap(LayerHeatmap):
    """A LayerHeatmap whose cells also show text (each layer's top-1 token and a mark)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cell_text: list[list[str]] = []

    def _render_row(self, y: int, sx: int, sy: int, width: int) -> Strip:
        layer = y - AXIS_ROWS + sy
        if y < AXIS_ROWS or not 0 <= layer < self.n_layers or not self.cell_text:
            return super()._render_row(y, sx, sy, width)
        styles = self._axis_styles()
        gutter = self.gutter_width
        data_width = max(0, width - gutter)
        cw = self.cell_width
        layer_cur, token_cur = self.cursor
        on_cursor = layer == layer_cur
        plain, cursor = text_styles()
        palette = build_palette()
        c0 = sx // cw
        c1 = min(self.n_tokens, -(-(sx + data_width) // cw))
        segments = []
        for c in range(c0, c1):
            bucket = int(self._buckets[layer, c])
            under = on_cursor and c == token_cur
            if bucket == EMPTY:
                style = palette.empty_cursor if under else palette.empty
            else:
                style = cursor[bucket] if under else plain[bucket]
            segments.append(Segment(self.cell_text[layer][c], style))
        body = Strip(segments).crop(sx - c0 * cw, sx - c0 * cw + data_width)
        body = body.extend_cell_length(data_width, styles.base)
        lead = Segment(f"{self._layer_ids[layer]:>{gutter - 1}} ", styles.gutter)
        if on_cursor:
            lead = Segment(lead.text, styles.gutter_cursor)
        return Strip([lead, *body], gutter + data_width).adjust_cell_length(width)


def kl_shown(kl: np.ndarray) -> np.ndarray:
    """KL values as shown: a KL divergence is never negative, so the float32 rounding below
    zero (-1e-9 where two distributions agree) is shown as 0, not "-0.00"; NaN stays NaN."""
    return np.maximum(np.asarray(kl, dtype=np.float64), 0.0)


class LensView(GridView):
    """Each layer's top-1 next token per position, coloured by a lens figure."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "cycle_figure", "figure")]
    DEFAULT_CSS = """
    LensView .grid-bottom { height: 10; }
    LensView PlotextPlot { width: 1fr; }
    """
    cell_width = 7
    heatmap_class = LensHeatmap

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.figure = "top-1 prob"
        self.lens: LensGrid | None = None
        self.texts: dict[int, str] = {}
        self._lens = LensRequests()  # cells on screen without the lens, derived on demand

    def compose_bottom(self) -> ComposeResult:
        yield PlotextPlot(classes="lens-rank")
        yield PlotextPlot(classes="lens-kl")

    def action_cycle_figure(self) -> None:
        """Colour the cells by the next lens figure."""
        names = list(FIGURES)
        self.figure = names[(names.index(self.figure) + 1) % len(names)]
        self.invalidate()

    def grid_key(self, trace: Trace) -> tuple:
        # cells derived on demand change the grid as much as a new token does
        return (id(trace), (trace.n_tokens, int(missing_lens(trace).sum())), self.figure)

    def refresh_view(self) -> None:
        super().refresh_view()
        trace = self.trace
        if trace is not None and self.grid is not None:
            self._lens.ask(self, trace, missing_near(trace, self.selection.token), None)

    def title_text(self) -> str:
        return f"logit lens · {self.figure}   m: next figure   ✓ actual next token  ★ first layer"

    def text_of(self, token_id: int) -> str:
        """A vocabulary id's text: from the run, else the live tokenizer, else '#id'."""
        if token_id < 0:
            return ""
        text = self.texts.get(token_id)
        if text is None:
            decode = getattr(self.app, "decode_token", None)
            text = decode(token_id) if decode is not None else None
            text = f"#{token_id}" if text is None else text
            self.texts[token_id] = text
        return text

    def build_grid(self, trace: Trace) -> Grid:
        g = self.lens = lens_grid(trace)
        self.texts = id_text_map(trace)
        label, unit = FIGURES[self.figure]
        covered = g.top1_ids >= 0
        if self.figure == "top-1 prob":
            raw, lo, hi = g.top1_probs, 0.0, 1.0
        elif self.figure == "pred prob":
            raw, lo, hi = g.pred_prob, 0.0, 1.0
        elif self.figure == "pred rank":
            raw = np.where(covered, np.log10(g.pred_rank + 1.0), np.nan)
            lo, hi = 0.0, max(1.0, finite_range(raw)[1])
        else:
            raw = g.kl
            lo, hi = 0.0, max(1e-9, finite_range(raw)[1])
        norm = unit_range(raw, lo, hi)
        if self.figure == "pred rank":
            norm = 1.0 - norm  # rank 0 (the top) is the bright end
        norm = np.where(covered, norm, np.nan)
        self._set_cell_text(g)
        return Grid(
            norm, raw, list(trace.token_text), trace.n_prompt, g.layers, label, unit, lo, hi
        )

    def _set_cell_text(self, g: LensGrid) -> None:
        cw = self.cell_width
        first = g.first_actual_top1
        rows = []
        for i, layer in enumerate(g.layers):
            row = []
            for t, tid in enumerate(g.top1_ids[i].tolist()):
                if tid < 0:
                    row.append(" " * cw)
                    continue
                mark = " "
                if g.hits[i, t]:
                    mark = FIRST_HIT if first[t] == layer else HIT
                row.append(mark + token_label(self.text_of(tid), cw - 1))
            rows.append(row)
        heatmap = self.heatmap
        if isinstance(heatmap, LensHeatmap):
            heatmap.cell_text = rows

    def describe_cell(self, row: int, column: int) -> Text:
        g, trace = self.lens, self.trace
        if g is None or trace is None or not g.layers:
            return Text("")
        layer = g.layers[row]
        text = Text()
        text.append(f"layer {layer} · token {column} {trace.token_text[column]!r}\n", "bold")
        if g.top1_ids[row, column] < 0:
            text.append("the lens was not computed at this position", "italic")
            return text
        ids = trace.get("lens.top_ids")[row, column]
        probs = trace.get("lens.top_probs")[row, column]
        actual = int(g.actual_next[column])
        for tid, p in zip(ids.tolist(), probs.tolist(), strict=True):
            mark = "✓" if tid == actual else " "
            text.append(f"{mark} {self.text_of(tid)!r:<20.20}{p:>8.1%}\n")
        pred = int(g.final_pred[column])
        text.append("\nactual next ", "bold")
        text.append(repr(self.text_of(actual)) if actual >= 0 else "(end of run)")
        text.append("\nfinal prediction ", "bold")
        text.append(repr(self.text_of(pred)))
        rank = int(g.pred_rank[row, column])
        text.append(f"\n  rank here {rank}, p {format_value(g.pred_prob[row, column])}")
        first = int(g.first_pred_top1[column])
        text.append(f"\n  top-1 from layer {first if first >= 0 else '–'}")
        first_actual = int(g.first_actual_top1[column])
        if actual >= 0:
            text.append(
                f"\nactual next top-1 from layer {first_actual if first_actual >= 0 else '–'}"
            )
        kl = float(kl_shown(g.kl[row : row + 1, column])[0])
        text.append(f"\nKL(final || layer) {format_value(kl)} nats")
        return text

    def draw_bottom(self, row: int, column: int) -> None:
        g = self.lens
        if g is None or not g.layers:
            return
        layers = g.layers
        pred = self.text_of(int(g.final_pred[column]))
        rank = g.pred_rank[:, column].astype(float)
        self._plot(
            ".lens-rank",
            f"rank of {pred!r} by layer (log10(rank+1))",
            layers,
            [math.log10(r + 1) if r >= 0 else math.nan for r in rank],
            layers[row],
        )
        kl = kl_shown(g.kl[:, column])
        title = f"KL(final || layer) at token {column}"
        self._plot(".lens-kl", title, layers, kl, layers[row], floor=0.0)

    def _plot(
        self, selector: str, title: str, xs: list[int], ys, cursor: int, floor: float | None = None
    ) -> None:
        plot = self.query_one(selector, PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        points = [(x, float(y)) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        if points:
            plt.plot([p[0] for p in points], [p[1] for p in points], marker="braille")
            plt.vline(cursor, "red")
            plt.xlabel("layer")
            if floor is not None:  # the axis starts at the floor, not at a tick below it
                plt.ylim(floor, max(floor + 1e-3, max(p[1] for p in points)))
        plot.refresh()
