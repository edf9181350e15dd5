"""The diagnostics view (key !): what is wrong or unusual inside the model, as a list.

When a trace is shown, the detectors that need only a trace (analysis/diagnostics/) run on
the run on screen, in a thread (they are numpy only, but a long run's residual rows take a
while); the findings appear most severe first, each with its severity's colour. The detail
pane shows the selected finding's figures and what it usually means, and its per-layer
series as a plot. `r` runs the full check in the model worker: the default prompt set, MLP
neuron health and gradients, with a progress line (Esc cancels); `view` mode has no model,
so it says so and keeps the trace-only findings. `t` switches between this run's check and
the full check. Enter on a finding moves the app-wide cursor to its first cell and shows its
view (the scan at a massive activation's layer and token, the heads view at a sink head).
Titles quote token texts from the model: they are shown as plain text, escaped.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from neuroscope_tui.analysis.diagnostics.findings import Finding
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.views.base import TraceView
from neuroscope_tui.tui.views.diagnostics_work import (
    Checked,
    counts_text,
    destination,
    detail_text,
    full_check,
    list_item,
    plot_points,
    quick_check,
    short,
    skipped_text,
)
from neuroscope_tui.tui.views.long_task import LongTask


class QuickChecked(Message):
    """The quick check's answer (a Checked, or the sentence of what went wrong)."""

    def __init__(self, ticket: object, result: Checked | str) -> None:
        super().__init__()
        self.ticket = ticket
        self.result = result


class FindingList(OptionList):
    """The findings, most severe first; Enter shows the selected one's cell in its view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "go to the finding's cell"),
    ]


class DiagnosticsView(LongTask, TraceView):
    """Findings of the detectors on this run (or the full check), a detail pane and a plot."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "full_check", "full check (prompt set)"),
        Binding("t", "switch_check", "this run / full check"),
    ]
    STATUS_ID = "diag-status"
    CANCELLED = "full check cancelled"
    DEFAULT_CSS = """
    DiagnosticsView { layout: vertical; }
    DiagnosticsView #diag-status { height: auto; padding: 0 1; }
    DiagnosticsView #diag-body { height: 1fr; }
    DiagnosticsView #diag-list { width: 1fr; height: 1fr; }
    DiagnosticsView #diag-side { width: 1fr; }
    DiagnosticsView #diag-detail-box { height: 1fr; }
    DiagnosticsView #diag-detail { padding: 0 1; }
    DiagnosticsView #diag-plot { height: 12; }
    DiagnosticsView #diag-skipped { height: auto; max-height: 6; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.quick: Checked | None = None  # this run's check
        self.full: Checked | None = None  # the full check over the prompt set
        self.showing_full = False
        self.init_long_task()  # the full check, in the model worker
        self._quick_for: tuple[Trace, int] | None = None  # the trace state checked (or asked)
        self._quick_ticket: object | None = None
        self._listed: Checked | None = None  # what the list holds now

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="diag-status")
            with Horizontal(id="diag-body"):
                yield FindingList(id="diag-list")
                with Vertical(id="diag-side"):
                    with VerticalScroll(id="diag-detail-box"):
                        yield Static(id="diag-detail")
                    yield PlotextPlot(id="diag-plot")
            yield Static(id="diag-skipped")

    def on_mount(self) -> None:
        # the full check needs no run: draw the keys at once
        self.call_after_refresh(self.refresh_view)

    @property
    def checked(self) -> Checked | None:
        """What the list shows: the full check when chosen (and done), else this run's."""
        if self.showing_full and self.full is not None:
            return self.full
        return self.quick

    # ---- the quick check on the run on screen -----------------------------------------------

    def show_trace(self, trace: Trace) -> None:
        self.trace = trace
        self._check_run(trace)
        self.refresh_view()

    def _run_in_progress(self) -> bool:
        engine = getattr(self.app, "engine", None)
        return bool(engine is not None and engine.running)

    def _check_run(self, trace: Trace) -> None:
        """Start the quick check when the trace on screen changed and no run is growing it."""
        key = (trace, trace.n_tokens)
        if self._run_in_progress() or trace.n_tokens == 0:
            return
        done = self._quick_for
        if done is not None and done[0] is trace and done[1] == trace.n_tokens:
            return
        self._quick_for = key
        ticket = self._quick_ticket = object()
        live = bool(getattr(self.app, "live", False))

        def work() -> None:
            try:
                result: Checked | str = quick_check(trace, live=live)
            except Exception as err:  # a notice, never a traceback
                result = f"the check could not run: {type(err).__name__}: {err}"
            self.post_message(QuickChecked(ticket, result))

        threading.Thread(target=work, name="neuroscope-diagnostics", daemon=True).start()

    def on_quick_checked(self, message: QuickChecked) -> None:
        message.stop()
        if message.ticket is not self._quick_ticket:
            return  # a newer trace replaced this one
        self._quick_ticket = None
        if isinstance(message.result, str):
            self.message = message.result
        else:
            self.quick = message.result
        self.refresh_view()

    @property
    def quick_pending(self) -> bool:
        return self._quick_ticket is not None

    def reset_run(self) -> None:
        # this run's findings belong to the last run; the full check is about the model
        self.quick, self._quick_for, self._quick_ticket = None, None, None
        self.showing_full = self.full is not None and self.showing_full

    # ---- the full check in the model worker --------------------------------------------------

    def action_full_check(self) -> None:
        """Run every detector over the default prompt set (needs the model; Esc cancels)."""
        if getattr(self.app, "live_model", None) is None:
            if getattr(self.app, "live", False):
                self.message = self.app.model_missing()
            else:
                self.message = (
                    "the full check needs the live model (`view` mode has none); "
                    "the list shows this snapshot's trace-only findings"
                )
            self.notify(self.message, severity="warning")
            self.refresh_view()
            return
        if self.busy:
            self.notify("the full check is already running; Esc cancels it")
            return
        self.start_long_task(
            full_check, kind="diagnostics", label="full check",
            on_done=self.show_checked, failed="the full check failed",
        )  # fmt: skip

    def show_checked(self, checked: Checked) -> None:
        """Show a full check's findings (from the worker, or a test)."""
        self.full, self.showing_full, self.message = checked, True, ""
        self.refresh_view()

    def action_switch_check(self) -> None:
        """Show this run's findings or the full check's."""
        if self.full is None:
            self.notify("no full check yet: press r to run it", severity="warning")
            return
        self.showing_full = not self.showing_full
        self.refresh_view()

    # ---- going to a finding's cell -------------------------------------------------------------

    def selected_finding(self) -> Finding | None:
        checked, index = self.checked, self.query_one(FindingList).highlighted
        if checked is None or index is None or index >= len(checked.report.findings):
            return None
        return checked.report.findings[index]

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        await self.go_to(event.option_index)

    async def go_to(self, index: int) -> None:
        """Move the app-wide cursor to finding `index`'s first cell and show its view."""
        from neuroscope_tui.tui.views.registry import VIEWS

        checked = self.checked
        if checked is None or not 0 <= index < len(checked.report.findings):
            return
        finding = checked.report.findings[index]
        where = destination(finding, checked, self.trace)
        if where is None or where.view not in {v.name for v in VIEWS}:
            self.notify("this finding names no cell another view shows", severity="warning")
            return
        if where.notice:
            self.notify(where.notice, title="diagnostics", timeout=8)
        await self.app.show_cell(where.view, **where.changes)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self._draw_finding()

    # ---- drawing -------------------------------------------------------------------------------

    def status_text(self) -> Text:
        checked = self.checked
        text = Text()
        if checked is None:
            text.append("diagnostics", style="bold")
        elif checked.full:
            n = checked.report.n_prompts
            text.append(f"full check over {n} prompt{'s' if n != 1 else ''}", style="bold")
            if checked.seconds:
                text.append(f" ({checked.seconds:.0f} s)", style="dim")
            text.append("  ")
        else:
            text.append("this run: trace-only detectors  ", style="bold")
        if checked is not None:
            text.append_text(counts_text(checked.report))
        text.append(
            "\nEnter go to the cell · r full check (model) · t this run / full check · Esc cancel",
            style="dim",
        )
        if self.progress_lines(text) or checked is not None:
            pass
        elif self._run_in_progress():
            text.append("\nthe run is in progress: its check runs when it ends", style="italic")
        elif self.quick_pending:
            text.append("\nchecking the run on screen…", style="italic")
        else:
            text.append("\nno run to check yet: run a prompt, or press r", style="italic")
        return text

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#diag-status", Static).update(self.status_text())
        checked = self.checked
        listing = self.query_one(FindingList)
        if checked is not self._listed:
            self._listed = checked
            listing.clear_options()
            if checked is not None:
                listing.add_options(
                    Option(list_item(f), id=f"finding-{i}")
                    for i, f in enumerate(checked.report.findings)
                )
                if checked.report.findings:
                    listing.highlighted = 0
        skipped = checked.report if checked is not None else None
        self.query_one("#diag-skipped", Static).update(
            skipped_text(skipped) if skipped is not None else ""
        )
        self._draw_finding()

    def _draw_finding(self) -> None:
        checked, finding = self.checked, self.selected_finding()
        detail = self.query_one("#diag-detail", Static)
        if checked is None:
            detail.update("")
        elif finding is None:
            ran = ", ".join(checked.report.ran) or "none"
            detail.update(
                Text(f"No findings: every detector that ran ({ran}) found nothing unusual.")
            )
        else:
            detail.update(detail_text(finding, checked))
        self._draw_series(finding)

    def _draw_series(self, finding: Finding | None) -> None:
        plot = self.query_one("#diag-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        if finding is not None and finding.series:
            curves = [(name, *plot_points(v)) for name, v in list(finding.series.items())[:4]]
            curves = [c for c in curves if c[1]]
            one = len(curves) == 1  # one curve: its name is the title (a legend hides data)
            for name, xs, ys in curves:
                plt.plot(xs, ys, label=None if one else short(name, 24), marker="braille")
            ys_all = [y for _, _, ys in curves for y in ys]
            if ys_all and min(ys_all) > 0 and max(ys_all) / min(ys_all) > 100:
                plt.yscale("log")  # massive activations span orders of magnitude
            xs_all = sorted({x for _, xs, _ in curves for x in xs})
            if xs_all:  # whole layer numbers on the axis, at most about 8 of them
                step = max(1, (xs_all[-1] - xs_all[0]) // 7 + 1)
                plt.xticks(list(range(xs_all[0], xs_all[-1] + 1, step)))
            plt.title(short(curves[0][0], 40) + " per layer" if one else "per layer")
            plt.xlabel("layer")
        plot.refresh()
