"""The drift view (key ~): how fine-tuning moved the model's insides, checkpoint by checkpoint.

A layer x checkpoint heatmap (rows are layers and follow the app's layer selection; columns are
the checkpoints in order) of one measure against the base or the previous model: 1 - CKA of
the residual stream, the blocks' relative weight change, or the mean shift of the MLP neurons'
mean activations (`m` cycles, `p` switches base / previous, `o` log / linear colours;
drift_cells.py computes them). The side pane details the cell under the cursor: the figures,
and the heads and neurons of that layer that moved most. Enter shows the scan (view 1) of that
checkpoint's trace of the first prompt as its difference to the base's (`d` there switches to
the checkpoint's own run), `b` the base's own scan.

The app holds the comparison (`app.drift`, a DriftResult): `open_drift_app` (what
`neuroscope-tui drift` calls) or `view` on a file whose notes carry "drift" starts on this view.
Without one the view says how to make one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.binding import Binding, BindingType

from neuroscope_tui.analysis.drift_record import DriftResult
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.views.drift_cells import (
    METRICS,
    REF_WORDS,
    REFS,
    available,
    cell_text,
    colour_scale,
    column_label,
    metric_values,
    why_missing,
)
from neuroscope_tui.tui.views.grid_view import Grid, GridView

NO_DRIFT = (
    "no drift comparison here. Make one with `neuroscope-tui drift BASE CKPT...` (BASE and "
    "each CKPT: a model, a folder of checkpoint-* folders or a snapshot), or open a saved one "
    "with `neuroscope-tui view drift.nscope`."
)


class DriftView(GridView):
    """Layer x checkpoint drift heatmap and the cursor cell's detail (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "cycle_metric", "metric"),
        Binding("p", "toggle_ref", "vs base / previous"),
        Binding("o", "toggle_log", "log / linear colours"),
        Binding("enter", "open_checkpoint", "scan of the checkpoint"),
        Binding("b", "open_base", "scan of the base"),
    ]
    DEFAULT_CSS = "DriftView .grid-side { width: 46; }"

    cell_width = 6  # a column holds a trainer step ("1200") or a label's first characters

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.metric = "cka"
        self.ref = "base"
        self.log_colours = True  # drift spans decades: see drift_cells.colour_scale

    @property
    def result(self) -> DriftResult | None:
        return getattr(self.app, "drift", None)

    @property
    def checkpoint(self) -> int:
        """The checkpoint (C axis) under the cursor."""
        return int(self.heatmap.cursor[1])

    # ---- actions -----------------------------------------------------------------------------

    def action_cycle_metric(self) -> None:
        """Show the next measure: 1 - CKA, weight change, neuron shift."""
        names = list(METRICS)
        self.metric = names[(names.index(self.metric) + 1) % len(names)]
        self.invalidate()

    def action_toggle_ref(self) -> None:
        """Compare each checkpoint with the base, or with the checkpoint before it."""
        self.ref = REFS[(REFS.index(self.ref) + 1) % len(REFS)]
        self.invalidate()

    def action_toggle_log(self) -> None:
        """Colour the changes on a log scale (where a change starts shows) or a linear one."""
        self.log_colours = not self.log_colours
        self.invalidate()

    def action_open_checkpoint(self) -> None:
        """Show the scan of the checkpoint under the cursor, as its difference to the base."""
        if self.result is None:
            self.notify(NO_DRIFT, severity="warning")
        elif self.grid is None:  # no cells, so no cursor: another measure has them
            self.notify("no cell to open here; m shows a measure this comparison holds")
        else:
            self.app.show_drift_model(self.checkpoint + 1)

    def action_open_base(self) -> None:
        """Show the scan of the base model's run."""
        if self.result is not None:
            self.app.show_drift_model(0)

    # ---- the grid ----------------------------------------------------------------------------

    def nothing_to_draw(self, trace: Trace | None) -> str | None:
        result = self.result
        if result is None:
            return NO_DRIFT
        if not result.checkpoints or not result.n_layers:
            return "this comparison holds no checkpoint to compare with the base."
        return None

    def grid_key(self, trace: Trace | None) -> tuple:
        return (id(self.result), 0, self.metric, self.ref, self.log_colours)

    def title_text(self) -> str:
        result = self.result
        if result is None:
            return "drift"
        n = result.n_checkpoints
        what = f"{METRICS[self.metric].label} {REF_WORDS[self.ref]}"
        return (
            f"drift · {what} · {n} checkpoint{'s' * (n != 1)} × {result.n_layers} layers"
            "   m: measure  p: base/previous  o: log  Enter: scan"
        )

    def build_grid(self, trace: Trace | None) -> Grid:
        result = self.result
        assert result is not None  # nothing_to_draw said so
        if not available(result, self.metric, self.ref):
            raise SnapshotError(why_missing(result, self.metric, self.ref))
        raw = metric_values(result, self.metric, self.ref).T  # [L, C]
        norm, lo, hi = colour_scale(raw, self.log_colours)
        labels = [column_label(ckpt) for ckpt in result.checkpoints]
        scale = " (log colours)" if self.log_colours else ""
        return Grid(
            norm,
            raw.astype(np.float32),
            labels,
            len(labels),
            list(range(result.n_layers)),
            f"{METRICS[self.metric].label} {REF_WORDS[self.ref]}{scale}",
            METRICS[self.metric].unit,
            lo,
            hi,
            columns_are_tokens=False,
        )

    def describe_cell(self, row: int, column: int) -> Text | str:
        result = self.result
        if result is None or self.grid is None or not result.checkpoints:
            return ""
        c = min(column, result.n_checkpoints - 1)
        return cell_text(result, self.metric, self.ref, c, row)


def drift_app(result: DriftResult, path: str | Path | None = None, **options: Any) -> Any:
    """The app in view mode on `result` (the base's trace of the first prompt as its trace),
    starting on the drift view; `path` is the file it came from, if any."""
    from neuroscope_tui.tui.app import NeuroscopeApp

    first = result.traces[0] if result.traces else None
    source = str(path) if path is not None else None
    return NeuroscopeApp(snapshot=first, snapshot_path=source, drift=result, **options)


def open_drift_app(result: DriftResult, path: str | Path | None = None) -> int:
    """Run the app on the drift view (what `neuroscope-tui drift` without -o / --json does)
    and return its exit status."""
    from neuroscope_tui.tui.recovery import report_exit

    app = drift_app(result, path)
    app.run()
    return report_exit(app) or 0
