"""The app's side of a drift comparison: which model's run the views show, and saving it.

A mixin of `NeuroscopeApp` (like SavingActions). `NeuroscopeApp(drift=result)` holds a
DriftResult (analysis/drift_record.py) in `self.drift` and starts on the drift view (key ~);
its views show one model's trace of the first prompt at a time, the base's first.
`show_drift_model(m)` (Enter / b in the drift view) puts model m's trace on screen and opens
the scan as its difference to the base's (`drift_reference`, which the scan's `d` uses as it
uses an intervened run's clean run); the header names the model shown. `s` saves the whole
comparison, not only the trace on screen. Never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from neuroscope_tui.analysis.drift_record import DriftResult
from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.trace import Trace


class DriftActions:
    """Mixin of NeuroscopeApp, which provides `trace`, `shown`, `figures`, `notify`,
    `query_one`, `call_after_refresh`, `run_action`, `_show_trace`, `_draw_header` and the
    saving helpers (see the module docstring)."""

    drift: DriftResult | None = None
    drift_model = 0  # the model (0: the base) whose trace the views show

    def start_on_drift(self) -> None:
        """On mount with a comparison: say what the header shows and open the drift view."""
        result = self.drift
        if result is None:
            return
        if self.shown is None:  # a comparison saved without traces: the header still names it
            from neuroscope_tui.tui.widgets.status import HeaderFigures

            self.figures = HeaderFigures(result.base.name, state="drift")
        self.figures.source = self.drift_source(0)
        self._draw_header()
        self.call_after_refresh(self.run_action, "show_view('drift')")

    def drift_source(self, m: int) -> str:
        """What the header says of the comparison and the model on screen."""
        result = self.drift
        assert result is not None
        n = result.n_checkpoints
        who = result.models[m].label if m < len(result.models) else f"model {m}"
        return f"drift of {n} checkpoint{'s' * (n != 1)} · showing {who}"

    def drift_index(self, trace: Trace | None) -> int | None:
        """The model (M axis) whose trace `trace` is, or None when it is not one of them."""
        result = self.drift
        if result is None or trace is None:
            return None
        return next((m for m, t in enumerate(result.traces) if t is trace), None)

    def drift_reference(self, trace: Trace | None) -> tuple[Trace, str, str] | None:
        """(the base's trace, the model's label, the base's label) when `trace` is a
        checkpoint's of the comparison, of the base's prompt and layers: what the scan's
        difference subtracts."""
        m = self.drift_index(trace)
        if not m:  # None, or the base itself
            return None
        result = self.drift
        base = result.traces[0]
        # a snapshot input ran its own prompt, maybe on other layers: no cell-by-cell difference
        if base.prompt != trace.prompt or base.layers() != trace.layers():
            return None
        return base, result.models[m].label, result.base.label

    def show_drift_model(self, m: int) -> None:
        """Show model m's trace (0: the base) in the scan: a checkpoint's as its difference
        to the base's."""
        result = self.drift
        if result is None:
            return
        if m >= len(result.traces):
            label = result.models[m].label if m < len(result.models) else f"model {m}"
            self.notify(f"no run of {label} was kept with this comparison", severity="warning")
            return
        trace = result.traces[m]
        self.drift_model = m
        self.trace = self.shown = trace
        self.figures.model = trace.model.name
        self.figures.source = self.drift_source(m)
        from neuroscope_tui.tui.views.scan import ScanView

        difference = self.drift_reference(trace) is not None
        self.query_one("#view-scan", ScanView).difference = difference
        self.call_after_refresh(self.run_action, "show_view('scan')")
        label = result.models[m].label
        if difference:
            self.notify(
                f"{label} minus {result.base.label}; d: its own run, ~: back to drift, "
                "b there: the base",
                title="scan",
            )
        elif m > 0:
            self.notify(
                f"{label}'s own run: it ran another prompt or kept other layers than "
                f"{result.base.label}'s, so there is no difference to show",
                title="scan",
            )
        self._draw_header()

    def action_save_snapshot(self) -> None:
        """Save the trace on screen as a snapshot file (with a drift comparison: all of it)."""
        if self.drift is None:
            super().action_save_snapshot()  # type: ignore[misc]
            return
        try:
            from neuroscope_tui.drift_file import save_drift
        except ImportError:  # an install without drift files: keep the trace on screen
            super().action_save_snapshot()  # type: ignore[misc]
            return
        from neuroscope_tui.tui.saving import default_file_name, free_path

        name = default_file_name(f"{self.drift.base.label}-drift", ".nscope")
        try:
            path: Path = save_drift(self.drift, free_path(self._out_folder(), name))
        except NeuroscopeError as err:
            self.notify(f"not saved: {err}", severity="error", timeout=15)
            return
        self.last_saved = path
        self.notify(f"saved the drift comparison to {path}", title="snapshot", timeout=10)
