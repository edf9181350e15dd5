"""The attribution view: which input tokens drove one output token, and how far to trust it.

The prompt is drawn with every input token coloured by its signed share of the target (red
pushes towards the target, blue away; `m` picks the method that colours it), then a table of
every method's score and share per token, then each method's completeness gap: the sum of its
scores against f(x) - f(baseline) (see capture/attribution.py for the baseline and rule).

What is shown comes from `trace.extras["attribution.*"]` and `trace.notes["attribution"]`, so
a snapshot shows what was computed live or by `capture --attribution`. With a live model, `a`
computes it in the model worker (`app.run_model_task`) for the selected output position
(`,`/`.` move it; by default the last token), and `f` asks for a foil (" London" to ask why
" Paris" rather than " London"; empty: no foil).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from rich.table import Table as RichTable
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from neuroscope_tui.analysis.feature_tables import attribution_table
from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.tasks import TaskCancelled
from neuroscope_tui.text_safety import visible, visible_text
from neuroscope_tui.tui.plain_text import ControlPictures
from neuroscope_tui.tui.views.base import TraceView
from neuroscope_tui.tui.views.long_task import LongTask

METHOD_NAMES = {
    "occlusion": "occlusion",
    "integrated_gradients": "integrated gradients",
    "gradient_x_input": "gradient × input",
}


def share_style(share: float) -> str:
    """A background colour for a signed share: red for positive, blue for negative."""
    level = float(np.clip(abs(share) / 0.5, 0.0, 1.0))  # half the total is full colour
    base = (214, 39, 40) if share > 0 else (31, 119, 180)
    r, g, b = (int(40 + (c - 40) * level) for c in base)
    return f"white on #{r:02x}{g:02x}{b:02x}"


class AttributionView(LongTask, TraceView):
    """The prompt coloured by attribution, a table per token, and the completeness gaps."""

    DEFAULT_CSS = """
    AttributionView { layout: vertical; }
    AttributionView #attr-title { height: 1; background: $boost; }
    AttributionView #attr-foil { display: none; }
    AttributionView.-asking #attr-foil { display: block; }
    AttributionView #attr-body { height: 1fr; }
    AttributionView #attr-status { height: 1; color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "attribute", "attribute"),
        Binding("f", "ask_foil", "foil"),
        Binding("m", "cycle_method", "colour by"),
        Binding("comma", "step_target(-1)", "previous position", show=False),
        Binding("full_stop", "step_target(1)", "next position", show=False),
        Binding("x", "write_csv", "CSV"),
        Binding("c", "cancel", "cancel"),
    ]
    STATUS_ID = "attr-status"
    CANCELLED = "attribution cancelled"
    START_PROGRESS = None  # the status line says it waits for the run's end

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ready = False  # set in on_mount, when the children exist
        self.method = "occlusion"
        self.foil: str | None = None
        self.target: int | None = None  # output position; None: the last one
        self.init_long_task()  # the attribution, in the model worker
        self._found: Any = None  # the last AttributionSet computed for this run

    def compose(self) -> ComposeResult:
        yield Static(id="attr-title")
        # The scroll area comes first so the app focuses it (not the hidden foil box).
        with VerticalScroll(id="attr-body"):
            yield Static(id="attr-prompt")
            yield Static(id="attr-table")
            yield Static(id="attr-gaps")
        yield Input(
            placeholder="foil token, e.g. ' London' (Enter; empty: no foil)",
            id="attr-foil",
            highlighter=ControlPictures(),
        )
        yield Static(id="attr-status")

    def on_mount(self) -> None:
        # The app may hand over the trace before the children exist: draw once they do.
        self._ready = True
        self.refresh_view()

    # ---- what is shown -----------------------------------------------------------------------

    def _note(self) -> dict[str, Any] | None:
        if self.trace is None:
            return None
        note = self.trace.notes.get("attribution")
        if not note or not any(n.startswith("attribution.") for n in self.trace.extras):
            return None
        return note

    def _scores(self) -> dict[str, np.ndarray]:
        assert self.trace is not None
        found = {
            name.split(".", 1)[1]: np.asarray(arr, dtype=np.float64)
            for name, arr in self.trace.extras.items()
            if name.startswith("attribution.")
        }
        order = list(METHOD_NAMES)  # occlusion, IG, gradient x input; others after
        return dict(sorted(found.items(), key=lambda kv: [*order, kv[0]].index(kv[0])))

    def _position(self) -> int:
        """The output position `a` attributes: the chosen one, else the last token."""
        n = self.trace.n_tokens if self.trace is not None else 0
        if self.target is not None:
            return int(np.clip(self.target, 1, max(n, 1)))
        if self.trace is not None and self.trace.n_generated == 0:
            return n  # the model's prediction after the prompt
        return max(n - 1, 1)

    def refresh_view(self) -> None:
        if not self._ready:
            return
        self._keep_found()
        note = self._note()
        self.query_one("#attr-status", Static).update(self.status_text())
        if note is None:
            self.query_one("#attr-title", Static).update("attribution")
            live = getattr(self.app, "live_model", None) is not None
            how = (
                "press a to compute it for the last token (f: set a foil first)"
                if live
                else "this snapshot holds no attribution; capture with --attribution"
            )
            if live and (self.trace is None or self.trace.n_tokens == 0):
                how = "run a prompt first; then a explains its last token"
            self.query_one("#attr-prompt", Static).update(Text(how, style="italic"))
            self.query_one("#attr-table", Static).update("")
            self.query_one("#attr-gaps", Static).update("")
            return
        scores = self._scores()
        if self.method not in scores:
            self.method = next(iter(scores))
        # Text, never markup, with control characters visible: the target, foil, tokens
        # and baseline come from the model or the snapshot file
        self.query_one("#attr-title", Static).update(Text(visible(self._title_text(note))))
        self.query_one("#attr-prompt", Static).update(visible_text(self._prompt_text(note, scores)))
        self.query_one("#attr-table", Static).update(self._table(note, scores))
        self.query_one("#attr-gaps", Static).update(visible_text(self._gap_text(note)))

    def _title_text(self, note: dict[str, Any]) -> str:
        target = repr(note.get("target_text", "?"))
        foil = note.get("foil_text")
        versus = f" rather than {foil!r}" if foil is not None else ""
        where = note.get("position", note.get("n_inputs", "?"))
        return (
            f"attribution · why {target}{versus} at position {where} · "
            f"coloured by {METHOD_NAMES.get(self.method, self.method)}"
        )

    def _texts(self, n: int) -> list[str]:
        assert self.trace is not None
        return [self.trace.token_text[t] if t < self.trace.n_tokens else "?" for t in range(n)]

    def _prompt_text(self, note: dict[str, Any], scores: dict[str, np.ndarray]) -> Text:
        values = scores[self.method]
        total = np.abs(values).sum()
        out = Text()
        for text, score in zip(self._texts(len(values)), values, strict=True):
            share = score / total if total > 0 else 0.0
            out.append(visible(text.replace("\n", "⏎")), style=share_style(share))
        out.append(" → ", style="dim")
        out.append(visible(str(note.get("target_text", "?"))), style="bold reverse")
        out.append("\nred: pushes towards the target · blue: away · deeper: larger share", "dim")
        return out

    def _table(self, note: dict[str, Any], scores: dict[str, np.ndarray]) -> RichTable:
        table = RichTable(box=None, pad_edge=False, header_style="bold")
        table.add_column("pos", justify="right")
        table.add_column("token")
        for method in scores:
            table.add_column(f"{METHOD_NAMES.get(method, method)}", justify="right")
        n = max(len(v) for v in scores.values())
        totals = {m: np.abs(v).sum() for m, v in scores.items()}
        for t, text in enumerate(self._texts(n)):
            cells = []
            for m, v in scores.items():
                share = v[t] / totals[m] if totals[m] > 0 else 0.0
                cells.append(Text(f"{v[t]:+.3f} ({share:+.0%})", style=share_style(share)))
            table.add_row(str(t), Text(repr(text)[1:-1]), *cells)  # a str would be markup
        return table

    def _gap_text(self, note: dict[str, Any]) -> Text:
        from neuroscope_tui.analysis.attribution_trust import (
            ADDITIVE_METHODS,
            completeness_gap,
            convergence_text,
        )

        out = Text("\ncompleteness: sum of scores vs f(x) - f(baseline)\n", style="bold")
        for method, numbers in note.get("methods", {}).items():
            delta = numbers["f_input"] - numbers["f_baseline"]
            gap = completeness_gap(method, numbers)  # None for occlusion, whatever was stored
            steps = numbers.get("steps")
            step_text = f", {steps} steps" if method == "integrated_gradients" and steps else ""
            out.append(f"  {METHOD_NAMES.get(method, method)}{step_text}: ")
            if method not in ADDITIVE_METHODS:
                # Single-token drops need not add up to the all-tokens drop: no gap to judge.
                out.append(f"sum of drops {numbers['sum']:+.3f} vs {delta:+.3f}", "dim")
                out.append("  (not additive: no completeness expected)\n", style="dim")
                continue
            if gap is None:  # f(x) = f(baseline): nothing to compare the sum with
                out.append(f"sum {numbers['sum']:+.3f} vs {delta:+.3f} → no gap\n", "yellow")
                continue
            style = "green" if gap <= 0.05 else ("yellow" if gap <= 0.25 else "red")
            out.append(f"sum {numbers['sum']:+.3f} vs {delta:+.3f} → gap {gap:.1%}", style=style)
            # Beside the gap, whether the scores themselves settled as the steps doubled.
            settled = convergence_text(numbers)
            if settled:
                unsettled = numbers.get("converged") is False
                out.append(f" · {settled}", style="red" if unsettled else "green")
            out.append("\n")
        first = next(iter(note.get("methods", {}).values()), {})
        out.append(f"  baseline: {visible(str(first.get('baseline', '?')))}", "dim")
        return out

    def status_text(self) -> Text:
        # control characters visible: a worker's report or a message may quote a token
        return visible_text(self._status_line())

    def _status_line(self) -> Text:
        if self.busy and self.progress is not None:
            fraction, text = self.progress
            bar = "█" * int(fraction * 20) + "░" * (20 - int(fraction * 20))
            return Text(f"{text}…  {bar} {fraction:.0%}   Esc or c cancels")
        if self.busy:
            return Text("attribution waits for the model (it runs when generation ends)…")
        if self.message:
            return Text(self.message, style="yellow")
        foil = f" · foil {self.foil!r}" if self.foil else ""
        return Text(f"a attribute position {self._position()}{foil} · f foil · m colour · x CSV")

    # ---- actions -----------------------------------------------------------------------------

    def action_cycle_method(self) -> None:
        """Colour the prompt by the next method."""
        names = list(self._scores()) if self._note() is not None else list(METHOD_NAMES)
        if names:
            at = names.index(self.method) if self.method in names else -1
            self.method = names[(at + 1) % len(names)]
        self.refresh_view()

    def action_step_target(self, step: int) -> None:
        """Move the output position that `a` attributes."""
        self.target = self._position() + step  # _position() clips it to the trace
        self.target = self._position()
        self.refresh_view()

    def action_ask_foil(self) -> None:
        """Type a foil token (contrast: why the target rather than the foil)."""
        self.add_class("-asking")
        field = self.query_one("#attr-foil", Input)
        field.value = self.foil or ""
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.foil = event.value if event.value.strip() else None
        self.remove_class("-asking")
        self.query_one("#attr-body").focus()
        self.refresh_view()

    def action_attribute(self) -> None:
        """Compute every attribution for the chosen position in the model worker; during a
        run it waits for the run's end (it would stall generation for minutes)."""
        from neuroscope_tui.capture.attribution_runs import attribute_position

        if getattr(self.app, "live_model", None) is None:
            self.message = "attribution needs the live model; `view` mode shows saved ones only"
            if getattr(self.app, "live", False):  # still loading, failed, or nothing run yet
                missing = self.app.live_model is None
                self.message = self.app.model_missing() if missing else "run a prompt first"
            self.notify(self.message, severity="warning")
            self.refresh_view()
            return
        if self.trace is None or self.trace.n_tokens == 0:
            self.message = "run a prompt first: attribution explains the tokens of a run"
            self.notify(self.message, severity="warning")
            self.refresh_view()
            return
        if self.busy:
            self.notify("attribution is already computing; Esc or c cancels it")
            return
        engine = getattr(self.app, "engine", None)
        if engine is not None and engine.running:
            self.notify("attribution will run when generation ends (Esc stops the run)")
        self.start_long_task(
            _attribute_or_error, attribute_position, list(self.trace.token_ids),
            self._position(), self.foil,
            kind="attribution", label="attribution", on_done=self._attributed,
        )  # fmt: skip

    def _attributed(self, found: Any) -> None:
        """The worker's answer (not called once cancelled or after a new run)."""
        if isinstance(found, str):
            self.message = found
            self.notify(found, severity="warning")
        elif found is not None:
            self._found = found
        self.refresh_view()

    def _keep_found(self) -> None:
        """Put this run's attribution into the trace on screen (a new copy while the run
        grows; the finished trace, which `s` saves, once it ends)."""
        from neuroscope_tui.capture.attribution_runs import store_attributions

        found, trace = self._found, self.trace
        if found is None or trace is None or found.position > trace.n_tokens:
            return
        if trace.notes.get("attribution") != found.notes():
            store_attributions(trace, found)

    def action_cancel(self) -> None:
        """Cancel the attribution in progress (or waiting for the run's end)."""
        if not self.cancel_work():
            self.notify("no attribution is computing")

    def reset_run(self) -> None:
        """A new run: the position, foil and any attribution belong to the last one."""
        self.drop_long_task()
        self.target, self.foil, self._found = None, None, None
        self.remove_class("-asking")
        self.refresh_view()

    def action_write_csv(self) -> None:
        """Write the attribution table as a CSV file."""
        from neuroscope_tui.tables_io import table_csv, write_text
        from neuroscope_tui.tui.views.projection_work import csv_path

        if self.trace is None or self._note() is None:
            self.notify("no attribution to write yet", severity="warning")
            return
        path = csv_path(self.app, self.trace, "attribution")
        try:
            write_text(str(path), table_csv(attribution_table(self.trace)), force=False)
        except NeuroscopeError as err:
            self.notify(str(err), severity="error")
            return
        self.notify(f"saved {path}", title="CSV")


def _attribute_or_error(bundle: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Model worker: run `fn(bundle, *args)`; a failure comes back as a sentence to show."""
    try:
        return fn(bundle, *args, **kwargs)
    except TaskCancelled:
        raise  # the engine tells the view
    except NeuroscopeError as err:
        return str(err)
    except Exception as err:  # out of memory, say: the view must leave its busy state
        return f"attribution failed ({type(err).__name__}: {err})"
