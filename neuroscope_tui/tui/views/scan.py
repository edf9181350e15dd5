"""The main view: the layer x token heatmap, the detail panel and the time-series plots.

Top: `LayerHeatmap` (one row per layer, one column per token) over its `ColorBar`, with the
`DetailPanel` for the cell under the cursor at its right. Below: the selected layer's metric
across tokens, and one MLP neuron's activation across tokens (the cursor cell's strongest
neuron, or the one picked with `u`). `m` cycles the metric, `n` the normalisation, `o` turns
outlier clipping of the colour scale off and on.

Interventions (tui/intervening.py): `a` ablates the neuron the lower plot shows (the one the
detail panel names first, or the one picked with `u`) and `b` the block under the cursor (the
attention block when the metric is the attention output, else the MLP), and the prompt runs
again; `d` shows the heatmap as the difference, intervened minus clean, on a scale centred on 0.
A drift checkpoint's run (tui/drifting.py) is shown the same way, minus the base's run, the
colour bar naming both.

While a run adds tokens and the cursor follows the newest one, the plots (plotext: the
costliest part of a frame, several times the heatmap) are redrawn at most every
PLOT_INTERVAL, and the detail panel asks for its lens cell at most every FOLLOW_LENS_INTERVAL
(the cell moves on with the next token anyway); a cursor the user put somewhere, and the
run's end, redraw everything at once.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual_plotext import PlotextPlot

from neuroscope_tui.analysis.interventions import metric_difference
from neuroscope_tui.analysis.metrics import (
    METRICS,
    NORMALISATIONS,
    metric_values,
    next_metric,
    next_normalisation,
    normalise,
    scale_bounds,
)
from neuroscope_tui.analysis.watch_metrics import register_watch_metrics
from neuroscope_tui.capture.interventions import Ablation
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.lens_requests import LensRequests, cell_missing
from neuroscope_tui.tui.views.base import Selection, TraceView
from neuroscope_tui.tui.widgets.colorbar import ColorBar
from neuroscope_tui.tui.widgets.detail import DetailPanel
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap
from neuroscope_tui.tui.widgets.intervention_figures import symmetric_scale
from neuroscope_tui.tui.widgets.series import draw_series, neuron_series

PLOT_INTERVAL = 2.0  # seconds between two redraws of the plots while they follow a run
FOLLOW_LENS_INTERVAL = 4.0  # seconds between two lens requests while the cursor follows a run


class ScanView(TraceView):
    """Heatmap + detail + time series of the current trace."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "cycle_metric", "metric"),
        Binding("n", "cycle_normalisation", "normalise"),
        Binding("o", "toggle_clip", "clip outliers"),
        Binding("u", "pick_neuron", "neuron"),
        Binding("a", "ablate_neuron", "ablate"),
        Binding("b", "ablate_block", "ablate block"),
        Binding("d", "toggle_difference", "vs clean"),  # a drift checkpoint: vs base
    ]

    DEFAULT_CSS = """
    ScanView { layout: vertical; }
    ScanView #scan-top { height: 1fr; }
    ScanView #scan-left { width: 1fr; }
    ScanView #heatmap { height: 1fr; }
    ScanView #scan-plots { height: 9; }
    ScanView #scan-plots PlotextPlot { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.metric = next(iter(METRICS))
        self.normalisation = NORMALISATIONS[0]
        # on by default: a first-token outlier (36-163x the median norm on SmolLM2) would
        # otherwise leave every other cell at the bottom colour
        self.clip = True
        self.neuron: tuple[int, int] | None = None  # (layer row, neuron) picked with `u`
        self._neuron_rank = -1
        self._drawn: tuple | None = None  # what the heatmap data was built from
        self._lens = LensRequests()  # the detail panel's lens cell, derived on demand
        self.difference = False  # the heatmap shows intervened minus clean (`d`)
        # what the detail panel and plots were last drawn for: the trace (held, so its id
        # cannot be reused) and (tokens, row, token, metric, clip, neuron)
        self._cell_drawn: tuple[object, tuple] | None = None
        self._plots_at = 0.0  # when the plots were last drawn (time.monotonic)
        self._plots_for: tuple | None = None  # and for what (row, metric, clip, neuron)

    def compose(self) -> ComposeResult:
        with Horizontal(id="scan-top"):
            with Vertical(id="scan-left"):
                yield LayerHeatmap(id="heatmap")
                yield ColorBar(id="colorbar")
            yield DetailPanel(id="detail")
        with Horizontal(id="scan-plots"):
            yield PlotextPlot(id="metric-plot")
            yield PlotextPlot(id="neuron-plot")

    @property
    def heatmap(self) -> LayerHeatmap:
        return self.query_one("#heatmap", LayerHeatmap)

    # ---- actions -----------------------------------------------------------------------------

    def action_cycle_metric(self) -> None:
        """Show the next heatmap metric."""
        self.metric = next_metric(self.metric)
        self.refresh_view()

    def action_cycle_normalisation(self) -> None:
        """Scale colours globally, per layer or per token (the next of these)."""
        self.normalisation = next_normalisation(self.normalisation)
        self.refresh_view()

    def action_toggle_clip(self) -> None:
        """End the colour scale at the outlier fences, or at the min and max."""
        self.clip = not self.clip
        self.refresh_view()

    def action_pick_neuron(self) -> None:
        """Plot the cursor cell's next-strongest MLP neuron (1st, 2nd, ... 10th, 1st...)."""
        trace = self.trace
        if trace is None or not trace.has("neurons.top_idx"):
            self.notify("this trace has no MLP neurons to pick from", severity="warning")
            return
        row, token = self.heatmap.cursor
        top = trace.get("neurons.top_idx")[row, token]
        self._neuron_rank = (self._neuron_rank + 1) % len(top)
        self.neuron = (row, int(top[self._neuron_rank]))
        self._draw_cell()

    def _neuron_shown(self) -> tuple[int, int] | None:
        """(layer, neuron) of the lower plot: the picked neuron, else the cell's strongest."""
        trace = self.trace
        if trace is None or trace.n_tokens == 0:
            return None
        row, token = self.heatmap.cursor
        if self.neuron is not None and self.neuron[0] == row:
            return trace.layers()[row], self.neuron[1]
        if trace.has("neurons.top_idx"):
            return trace.layers()[row], int(trace.get("neurons.top_idx")[row, token, 0])
        return None

    def action_ablate_neuron(self) -> None:
        """Switch off the MLP neuron the plot shows, and run the prompt again."""
        shown = self._neuron_shown()
        if shown is None:
            self.notify("this trace has no MLP neurons to ablate", severity="warning")
            return
        self.app.intervene(Ablation("neuron", shown[0], shown[1]))

    def action_ablate_block(self) -> None:
        """Switch off the block under the cursor (attention or MLP, by the metric shown)."""
        if self.trace is None or self.trace.n_tokens == 0:
            self.notify("run a prompt first: interventions change a run", severity="warning")
            return
        site = "attn" if self.metric.startswith("attn") else "mlp"
        self.app.intervene(Ablation(site, self.trace.layers()[self.heatmap.cursor[0]]))

    def _drift_base(self) -> tuple[Trace, str, str] | None:
        """(the base's run, this model's label, the base's label) when the trace on screen is
        a drift checkpoint's (tui/drifting.py): the difference is then checkpoint - base."""
        reference = getattr(self.app, "drift_reference", None)
        return reference(self.trace) if reference is not None else None

    def _clean_run(self) -> Trace | None:
        """The run this one is compared with: an intervened run's clean run (live only), or
        a drift checkpoint's base."""
        drift = self._drift_base()
        if drift is not None:
            return drift[0]
        state, trace = getattr(self.app, "interventions", None), self.trace
        clean = state.clean if state is not None else None
        if clean is None or trace is None or clean is trace or clean.prompt != trace.prompt:
            return None
        if clean.layers() != trace.layers():  # sampled alike or not at all
            return None
        return clean if getattr(trace, "interventions", None) else None

    def action_toggle_difference(self) -> None:
        """Show the heatmap as intervened minus clean (a drift checkpoint: minus the base),
        or the run itself."""
        if not self.difference and self._clean_run() is None:
            self.notify("no clean run to compare with: this run has no interventions, "
                        "or its clean run is not in this session", severity="warning")  # fmt: skip
            return
        self.difference = not self.difference
        self.refresh_view()

    # ---- drawing -----------------------------------------------------------------------------

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        trace = self.trace
        if trace is None:
            self.query_one(DetailPanel).show(None, 0, 0, None)
            return
        # watched modules one per block join the metric cycle (live run or loaded snapshot)
        register_watch_metrics(trace)
        clean = self._clean_run() if self.difference else None
        key = (id(trace), trace.n_tokens, self.metric, self.normalisation, self.clip, id(clean))
        if key != self._drawn and clean is not None:
            self._drawn = key
            self._draw_difference(trace, clean)
        elif key != self._drawn:
            self._drawn = key
            raw = metric_values(trace, self.metric)
            metric = METRICS[self.metric]
            self.heatmap.set_data(
                normalise(raw, self.normalisation, clip_outliers=self.clip),
                raw,
                list(trace.token_text),
                trace.n_prompt,
                trace.layers(),
            )
            lo, hi = scale_bounds(raw, self.normalisation, self.clip)
            bar = self.query_one(ColorBar)
            bar.set_scale(metric.label, metric.unit, lo, hi, self.normalisation, self.clip)
        self._follow_selection()
        self._draw_cell()

    def _draw_difference(self, trace: Trace, clean: Trace) -> None:
        raw = metric_difference(clean, trace, self.metric)
        norm, half = symmetric_scale(raw)
        labels = list(trace.token_text[: raw.shape[1]])
        self.heatmap.set_data(norm, raw, labels, min(trace.n_prompt, raw.shape[1]), trace.layers())
        metric = METRICS[self.metric]
        drift = self._drift_base()
        minus = f"{drift[1]} - {drift[2]}" if drift is not None else "intervened - clean"
        label = f"{metric.label}: {minus}"
        self.query_one(ColorBar).set_scale(label, metric.unit, -half, half, "global")

    def show_selection(self, selection: Selection) -> None:
        self.selection = selection
        if self.is_mounted and self.trace is not None:
            self._follow_selection()
            self._draw_cell()

    def _follow_selection(self) -> None:
        """Put the heatmap cursor on the app-wide selection (its layer number -> row)."""
        layers = self.trace.layers()
        if self.selection.layer in layers:
            cell = (layers.index(self.selection.layer), self.selection.token)
            self.heatmap.cursor = cell

    def on_layer_heatmap_cursor_moved(self, event: LayerHeatmap.CursorMoved) -> None:
        event.stop()
        if (event.layer, event.token) != tuple(event.heatmap.cursor):
            # old news: the cursor moved on before this message arrived (a live frame moves
            # it to each new token); acting on it would pull the selection back
            return
        if self.trace is None:
            return
        layers = self.trace.layers()
        if not layers or self.trace.n_tokens == 0:
            return
        layer = layers[event.layer]
        if (layer, event.token) != (self.selection.layer, self.selection.token):
            if layer != self.selection.layer:
                self._neuron_rank = -1
            self.select(layer=layer, token=event.token)
        self._draw_cell()

    def _following_run(self, trace: Trace, token: int) -> bool:
        """Whether a run adds tokens and the cursor is on the newest one: what the plots and
        the lens may then leave for later (the next token moves the cell on anyway)."""
        engine = getattr(self.app, "engine", None)
        return bool(engine is not None and engine.running and token == trace.n_tokens - 1)

    def _draw_cell(self) -> None:
        """Redraw what depends on the cursor cell: the detail panel and both plots.

        Once per cell: a frame moves the cursor to the new token and draws, and the heatmap's
        CursorMoved for that move comes back here with nothing new to draw."""
        trace = self.trace
        if trace is None or trace.n_tokens == 0:
            return
        row, token = self.heatmap.cursor
        key = (trace.n_tokens, row, token, self.metric, self.clip, self.neuron)
        drawn = self._cell_drawn
        if drawn is not None and drawn[0] is trace and drawn[1] == key:
            return
        self._cell_drawn = (trace, key)
        decode = getattr(self.app, "decode_token", None)
        self.query_one(DetailPanel).show(trace, row, token, decode)
        following = self._following_run(trace, token)
        if cell_missing(trace, row, token):
            interval = FOLLOW_LENS_INTERVAL if following else None
            self._lens.ask(self, trace, [token], [row], interval=interval)
        now, plots = time.monotonic(), key[1:2] + key[3:]
        if following and plots == self._plots_for and now - self._plots_at < PLOT_INTERVAL:
            return  # only the newest token moved on: a frame after PLOT_INTERVAL draws them
        self._plots_at, self._plots_for = now, plots
        layer = trace.layers()[row]
        metric = METRICS[self.metric]
        raw = metric_values(trace, self.metric)[row]
        title, ylim = f"layer {layer} {metric.label}", None
        if self.clip:
            ylim = scale_bounds(raw[None, :], "global", clip_outliers=True)
            if ylim != scale_bounds(raw[None, :], "global"):
                title += " (outliers clipped)"
        draw_series(self.query_one("#metric-plot", PlotextPlot), title, raw, token, ylim)
        self._draw_neuron(row, token)

    def lens_ready(self) -> None:
        """The detail panel's lens cell was derived: redraw the panel (only)."""
        trace = self.trace
        if trace is not None and trace.n_tokens:
            row, token = self.heatmap.cursor
            decode = getattr(self.app, "decode_token", None)
            self.query_one(DetailPanel).show(trace, row, token, decode)

    def _draw_neuron(self, row: int, token: int) -> None:
        trace = self.trace
        plot = self.query_one("#neuron-plot", PlotextPlot)
        layer = trace.layers()[row]
        if self.neuron is not None and self.neuron[0] == row:
            neuron = self.neuron[1]
        elif trace.has("neurons.top_idx"):
            neuron = int(trace.get("neurons.top_idx")[row, token, 0])
        else:
            draw_series(plot, "no MLP neurons recorded", np.array([]), token)
            return
        values, complete = neuron_series(trace, row, neuron)
        title = f"layer {layer} neuron {neuron}" + ("" if complete else " (top-k only)")
        draw_series(plot, title, values, token)
