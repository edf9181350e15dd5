"""View 9, interventions: what was changed in the model, what it changed, and where it matters.

Top left, the interventions panel (widgets/intervention_panel.py: toggle, remove, mode, alpha,
re-run). Top right, the side by side: the clean run's and the intervened run's generated text
and, per position, the logit difference the interventions made (kept on the intervened trace by
the app, tui/intervening.py). Bottom, the activation-patching sweep: `w` asks for a corrupted
prompt (the clean one is the run's prompt) and optional target and foil tokens, then
`patch_sweep` runs in the model worker with a progress line (Esc or `c` cancels), and the
layer x position grid of the recovered logit difference is drawn; `e` picks the site swept
(resid, heads, mlp). `x` writes the sweep and the side by side as CSV files. A sweep is kept on
the trace on screen, so `s` saves it and `view` shows it again.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Static

from neuroscope_tui.analysis.intervention_store import (
    store_sweep,
    stored_side_by_side,
    stored_sweep,
    sweep_fits,
)
from neuroscope_tui.analysis.interventions import side_by_side_table
from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.tasks import TaskCancelled
from neuroscope_tui.text_safety import visible
from neuroscope_tui.tui.plain_text import ControlPictures
from neuroscope_tui.tui.views.base import TraceView
from neuroscope_tui.tui.views.long_task import LongTask
from neuroscope_tui.tui.widgets.colorbar import ColorBar
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap
from neuroscope_tui.tui.widgets.intervention_figures import (
    side_by_side_text,
    sweep_cell_text,
    sweep_grid,
    sweep_title,
)
from neuroscope_tui.tui.widgets.intervention_panel import InterventionPanel

SITES = ("resid", "heads", "mlp")
NO_SIDE = (
    "No run with interventions yet. Press a in the heads view (2) on a head, or in the scan (1) "
    "on a neuron (b: the block), and the prompt runs again with it switched off; both runs "
    "then show here side by side."
)
NO_SIDE_SAVED = "This run was saved without a side-by-side comparison (no interventions)."


class InterventionsView(LongTask, TraceView):
    """The interventions panel, the side by side and the patching sweep grid."""

    DEFAULT_CSS = """
    InterventionsView { layout: vertical; }
    InterventionsView #iv-top { height: 2fr; }
    InterventionsView #iv-panel { width: 44; height: 1fr; }
    InterventionsView #iv-side { width: 1fr; padding: 0 1; }
    InterventionsView #iv-sweep-title { height: 1; background: $boost; padding: 0 1; }
    InterventionsView #iv-sweep { height: 3fr; }
    InterventionsView #iv-sweep-left { width: 1fr; }
    InterventionsView #iv-grid { height: 1fr; }
    InterventionsView #iv-cell { width: 36; padding: 0 1; border-left: vkey $foreground 20%; }
    InterventionsView #iv-form { height: auto; display: none; }
    InterventionsView.-asking #iv-form { display: block; }
    InterventionsView #iv-form Input { width: 1fr; }
    InterventionsView #iv-status { height: 1; color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "ask_sweep", "patching sweep"),
        Binding("e", "cycle_site", "sweep site"),
        Binding("c", "cancel", "cancel sweep"),
        Binding("x", "write_csv", "CSV"),
    ]
    STATUS_ID = "iv-status"
    CANCELLED = "sweep cancelled"
    START_PROGRESS = None  # the status line says it waits for the run's end

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ready = False
        self.site = "resid"
        self.sweep: Any = None  # the last sweep computed live (kept across runs)
        self.init_long_task()  # the sweep, in the model worker
        self._drawn: object | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="iv-top"):
            yield InterventionPanel(id="iv-panel")
            with VerticalScroll(id="iv-side"):
                yield Static(id="iv-side-text")
        yield Static(id="iv-sweep-title")
        with Horizontal(id="iv-sweep"):
            with Vertical(id="iv-sweep-left"):
                yield LayerHeatmap(id="iv-grid", cell_width=5, follow=False)
                yield ColorBar(id="iv-bar")
            yield Static(id="iv-cell")
        with Horizontal(id="iv-form"):
            yield Input(placeholder="corrupted prompt (same token count)", id="iv-corrupt",
                        highlighter=ControlPictures())  # fmt: skip
            yield Input(placeholder="target, e.g. ' Berlin' (optional)", id="iv-target",
                        highlighter=ControlPictures())  # fmt: skip
            yield Input(placeholder="foil, e.g. ' Paris' (optional)", id="iv-foil",
                        highlighter=ControlPictures())  # fmt: skip
        yield Static(id="iv-status")

    def on_mount(self) -> None:
        self._ready = True
        self.refresh_view()

    # ---- drawing -----------------------------------------------------------------------------

    def refresh_view(self) -> None:
        if not self._ready:
            return
        if self.sweep is not None and self.trace is not None and sweep_fits(self.trace, self.sweep):
            store_sweep(self.trace, self.sweep)  # so `s` saves it with the run on screen
        self._draw_panel()
        self._draw_side()
        self._draw_sweep()
        self._draw_status()

    def _draw_panel(self) -> None:
        live = getattr(self.app, "live", False) and hasattr(self.app, "interventions")
        saved = list(getattr(self.trace, "interventions", None) or []) if self.trace else []
        items = list(self.app.interventions.items) if live else None
        self.query_one(InterventionPanel).show_items(items, saved)

    def _draw_side(self) -> None:
        out = self.query_one("#iv-side-text", Static)
        try:
            side = stored_side_by_side(self.trace)
        except NeuroscopeError as err:
            out.update(Text(visible(str(err)), "italic"))
            return
        if side is None:
            live = getattr(self.app, "live", False)
            out.update(Text(NO_SIDE if live else NO_SIDE_SAVED, "italic"))
            return
        out.update(side_by_side_text(side))

    def _current_sweep(self) -> Any:
        """The sweep computed in this session, else the one kept on the trace (a snapshot)."""
        if self.sweep is not None:
            return self.sweep
        try:
            return stored_sweep(self.trace)
        except NeuroscopeError as err:
            self.message = str(err)
            return None

    def _draw_sweep(self) -> None:
        sweep = self._current_sweep()
        title = self.query_one("#iv-sweep-title", Static)
        grid = self.query_one(LayerHeatmap)
        if sweep is None:
            title.update(Text(f"patching sweep ({self.site}): w starts one, e changes the site"))
            grid.set_data(*_empty())
            self.query_one("#iv-cell", Static).update("")
            self._drawn = None
            return
        title.update(Text(sweep_title(sweep)))
        # rebuilt only when the sweep changed (not for each new copy of a growing trace)
        key = (sweep.note(), sweep.recovered.shape, float(np.nansum(sweep.recovered)))
        if self._drawn != key:
            g = sweep_grid(sweep)
            grid.set_data(g.values_norm, g.raw, g.labels, len(g.labels), g.layer_ids,
                          value_name="recovered")  # fmt: skip
            self.query_one(ColorBar).set_scale("recovered", "", g.lo, g.hi, "global")
            self._drawn = key
        self._draw_cell(sweep)

    def _draw_cell(self, sweep: Any) -> None:
        row, column = self.query_one(LayerHeatmap).cursor
        self.query_one("#iv-cell", Static).update(sweep_cell_text(sweep, row, column))

    def on_layer_heatmap_cursor_moved(self, event: LayerHeatmap.CursorMoved) -> None:
        event.stop()
        sweep = self._current_sweep()
        if sweep is not None:
            self._draw_cell(sweep)

    def on_intervention_panel_edited(self, event: InterventionPanel.Edited) -> None:
        event.stop()
        self._draw_panel()

    def _draw_status(self) -> None:
        self.query_one("#iv-status", Static).update(self.status_text())

    def status_text(self) -> Text:
        if self.busy and self.progress is not None:
            fraction, text = self.progress
            bar = "█" * int(fraction * 20) + "░" * (20 - int(fraction * 20))
            return Text(f"{visible(text)}…  {bar} {fraction:.0%}   Esc or c cancels")
        if self.busy:
            return Text("the sweep waits for the model (it runs when generation ends)…")
        if self.message:
            return Text(visible(self.message), style="yellow")
        return Text(f"w sweep ({self.site}) · e site · x CSV · panel: space on/off, m mode, r run")

    # ---- the sweep ---------------------------------------------------------------------------

    def action_cycle_site(self) -> None:
        """Sweep the next site: the residual stream, every head's output, every MLP output."""
        self.site = SITES[(SITES.index(self.site) + 1) % len(SITES)]
        self.refresh_view()

    def action_ask_sweep(self) -> None:
        """Patch every (layer, position) from the run's prompt into a corrupted one."""
        if getattr(self.app, "live_model", None) is None:
            live = getattr(self.app, "live", False)
            self.message = self.app.model_missing() if live else "a sweep needs the live model"
            self.notify(self.message, severity="warning")
            self._draw_status()
            return
        if self.trace is None:
            self.notify("run a prompt first: it is the sweep's clean prompt", severity="warning")
            return
        self.add_class("-asking")
        self.query_one("#iv-corrupt", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        corrupt = self.query_one("#iv-corrupt", Input).value
        if not corrupt.strip():
            self.notify("type the corrupted prompt first", severity="warning")
            self.query_one("#iv-corrupt", Input).focus()
            return
        target = self.query_one("#iv-target", Input).value or None
        foil = self.query_one("#iv-foil", Input).value or None
        self.remove_class("-asking")
        self.query_one(InterventionPanel).focus()
        self.start_sweep(corrupt, target, foil)

    def start_sweep(self, corrupt: str, target: str | None, foil: str | None) -> None:
        """Run `patch_sweep` in the model worker (it waits for a run's end)."""
        if self.busy:
            self.notify("a sweep is already running; Esc or c cancels it")
            return
        clean = getattr(self.app, "last_prompt", None) or self.trace.prompt
        self.start_long_task(
            sweep_or_error, clean, corrupt, self.site, target, foil,
            kind="sweep", label="patching sweep", on_done=self._swept,
        )  # fmt: skip

    def _swept(self, found: Any) -> None:
        """The worker's answer (not called once cancelled or replaced)."""
        if isinstance(found, str):  # a user error (different token counts) or a failure
            self.message = found
            self.notify(found, title="sweep refused", severity="error")
        else:
            self.sweep = found
            self.message = "partial sweep (cancelled)" if getattr(found, "partial", False) else ""
        self.refresh_view()

    def action_cancel(self) -> None:
        """Cancel the sweep in progress (or waiting for the run's end)."""
        if not self.cancel_work():
            self.notify("no sweep is running")

    def reset_run(self) -> None:
        """A new run: the form closes; a finished sweep is kept (it belongs to its prompts)."""
        self.remove_class("-asking")

    # ---- export ------------------------------------------------------------------------------

    def action_write_csv(self) -> None:
        """Write the sweep grid and the side by side (what exists) as CSV files."""
        from neuroscope_tui.tables_io import table_csv, write_text
        from neuroscope_tui.tui.views.projection_work import csv_path

        if self.trace is None:
            self.notify("nothing to write yet", severity="warning")
            return
        tables = []
        sweep = self._current_sweep()
        if sweep is not None:
            tables.append(("sweep", sweep.table()))
        try:
            side = stored_side_by_side(self.trace)
        except NeuroscopeError:
            side = None  # said in the panel already
        if side is not None:
            tables.append(("side-by-side", side_by_side_table(side)))
        written = []
        for what, table in tables:
            try:
                written.append(write_text(str(csv_path(self.app, self.trace, what)),
                                          table_csv(table), force=False))  # fmt: skip
            except NeuroscopeError as err:
                self.notify(str(err), severity="error")
                return
        if not written:
            self.notify("no sweep or side by side to write yet", severity="warning")
            return
        self.notify("saved " + ", ".join(str(p) for p in written), title="CSV")


def _empty() -> tuple:
    return np.zeros((0, 0)), np.zeros((0, 0)), [], 0, []


def sweep_or_error(bundle: Any, clean: str, corrupt: str, site: str, target: Any, foil: Any,
                   progress: Any = None) -> Any:  # fmt: skip
    """Model worker: `patch_sweep`; a user error or a failure comes back as a sentence.

    `progress` is the task's `TaskContext.progress`; the sweep gets the context itself
    (`task=`), whose reports raise TaskCancelled once the user cancelled."""
    from neuroscope_tui.capture.interventions import SameAnswerError
    from neuroscope_tui.capture.patching import patch_sweep

    task = getattr(progress, "__self__", None)
    try:
        return patch_sweep(bundle, clean, corrupt, site=site, target=target, foil=foil, task=task)
    except TaskCancelled:
        raise  # the engine tells the view
    except SameAnswerError:  # its message names the CLI's options; say the form's fields
        return (
            "the target and the foil are the same token, so there is no difference to "
            "recover; press w and type different words in the target and foil fields"
        )
    except NeuroscopeError as err:
        return str(err)
    except Exception as err:  # out of memory, say: the view must leave its busy state
        return f"the sweep failed ({type(err).__name__}: {str(err).strip()[:120]})"
