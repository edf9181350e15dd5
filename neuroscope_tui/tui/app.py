"""`NeuroscopeApp`: the Textual app, live (a model in a worker thread) or on a snapshot.

Live: `NeuroscopeApp(model_name=..., load_options=..., prompt=...)` opens its layout at once
and loads the model in a worker thread (a line under the prompt box says which step it is on;
a prompt entered meanwhile is queued and runs when the model is ready), then runs each prompt
in the worker (tui/engine.py);
every captured token arrives as a `TraceGrew` message and the view on screen redraws from
the trace up to that token. `NeuroscopeApp(model=LoadedModel)` skips loading.
View: `NeuroscopeApp(snapshot=trace)` shows a saved trace, read-only, without torch;
`NeuroscopeApp(snapshot=..., drift=DriftResult)` a drift comparison (tui/drifting.py).

Views (tui/views/registry.py) are switched with number keys and share one Selection; a view
that needs the model calls `run_model_task`. Never imports torch at module level.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.geometry import Size
from textual.widgets import ContentSwitcher, Footer, Input, Static

from neuroscope_tui import plugins
from neuroscope_tui.tasks import TaskContext
from neuroscope_tui.trace import CaptureSpec, Trace
from neuroscope_tui.tui.commands import ActionCommands
from neuroscope_tui.tui.drifting import DriftActions
from neuroscope_tui.tui.engine import ModelEngine, ModelTask, trace_upto
from neuroscope_tui.tui.help import HelpScreen, key_rows, own_bindings, section_name
from neuroscope_tui.tui.intervening import InterventionActions
from neuroscope_tui.tui.messages import (
    LoadFailed,
    LoadProgress,
    MemoryPlanned,
    ModelReady,
    RunEnded,
    TaskDone,
    TaskProgress,
    TraceGrew,
)
from neuroscope_tui.tui.pacing import RedrawPacer
from neuroscope_tui.tui.plain_text import ControlPictures, PlainNotices
from neuroscope_tui.tui.plugin_views import plugin_views, problems_notice, taken_keys
from neuroscope_tui.tui.recovery import CrashRecovery
from neuroscope_tui.tui.remote_waiting import RemoteWaitActions, task_name
from neuroscope_tui.tui.saving import SavingActions
from neuroscope_tui.tui.screens import LoadFailedPanel, loading_text, too_small, too_small_text
from neuroscope_tui.tui.views.base import Selection, SelectionChanged, TraceView
from neuroscope_tui.tui.views.registry import VIEWS, ViewEntry
from neuroscope_tui.tui.widgets.status import (
    HeaderFigures,
    StatusHeader,
    captured_bytes,
    run_text,
)

SHORT_HEIGHT = 32  # below this many rows the plots shrink to leave the heatmap more layers


class NeuroscopeApp(
    CrashRecovery,
    PlainNotices,
    DriftActions,
    SavingActions,
    InterventionActions,
    RemoteWaitActions,
    App[int],
):
    """The neuroscope terminal app (see the module docstring for its two modes)."""

    CSS_PATH = "app.tcss"
    TITLE = "neuroscope"
    COMMANDS = App.COMMANDS | {ActionCommands}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
        Binding("question_mark", "help", "help"),
        Binding("s", "save_snapshot", "save"),
        Binding("S,ctrl+s", "screenshot", "screenshot (SVG)"),
        Binding("escape", "stop", "stop run"),
        Binding("M", "pick_modules", "modules to watch", show=False),
        Binding("slash", "focus_prompt", "prompt", show=False),
        Binding("left_square_bracket", "step_layer(-1)", "previous layer", show=False),
        Binding("right_square_bracket", "step_layer(1)", "next layer", show=False),
        Binding("left_curly_bracket", "step_head(-1)", "previous head", show=False),
        Binding("right_curly_bracket", "step_head(1)", "next head", show=False),
        *[Binding(v.key, f"show_view('{v.name}')", v.title, show=False) for v in VIEWS],
    ]

    def __init__(
        self,
        *,
        model_name: str | None = None,
        load_options: dict[str, Any] | None = None,
        model: Any = None,
        snapshot: Trace | None = None,
        snapshot_path: str | None = None,
        prompt: str | None = None,
        spec: CaptureSpec | None = None,
        generation: dict[str, Any] | None = None,
        save_dir: str | Path | None = None,
        concepts: list[Any] | None = None,
        concept_sets: list[str] | None = None,
        concept_transfer: list[str] | None = None,
        drift: Any = None,
    ) -> None:
        super().__init__()
        self.drift = drift  # a DriftResult: its views start on the drift view (tui/drifting.py)
        self.concepts = list(concepts or [])  # fitted concepts (concept_file.Concept)
        # the labelled sets the concept view fits first (before the shipped examples)
        self.concept_sets = tuple(concept_sets or ())
        self.concept_transfer = tuple(concept_transfer or ())
        self.engine = ModelEngine(post=self.post_message, model=model)
        self.model_name = model_name or (model.name if model is not None else None)
        self.load_options = load_options or {}
        self.spec = spec
        self.generation = generation or {}
        self.initial_prompt = prompt
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.snapshot_path = snapshot_path
        self.trace: Trace | None = snapshot  # the trace being filled (or the snapshot)
        self.shown: Trace | None = snapshot  # what the views are given (up to the last message)
        self.selection = Selection()
        self.figures = HeaderFigures()
        self.load_error: str | None = None
        self.load_step = ""  # the loader's latest progress string, shown under the prompt
        self.queued_prompt: str | None = None  # entered while loading; runs when it is ready
        self.last_saved: Path | None = None
        self._redraw_due = False
        self.pacer = RedrawPacer()  # how often a growing trace is redrawn
        self.current_view = VIEWS[0].name
        # while True, the selection moves to each new token (the detail panel shows it);
        # moving the selection anywhere else turns it off until the next run
        self.follow = False
        # whether the keyboard belongs to the prompt box: before the first run, or after `/`;
        # otherwise the view on screen holds it (see _keep_focus)
        self.prompt_asked = False
        self._run_interventions: list = []  # what the run in progress applies
        # plugins (neuroscope_tui/plugins.py): metrics join the scan's cycle, views get keys
        plugins.register()
        self.plugin_views = plugin_views(taken_keys(self.BINDINGS))
        self.view_entries: list[ViewEntry] = [*VIEWS, *(p.entry for p in self.plugin_views)]
        for view in self.plugin_views:
            if view.keyed:
                self._bindings.bind(view.entry.key, view.binding().action, view.entry.title, False)

    @property
    def live(self) -> bool:
        """Whether the app runs a model (False: a snapshot, read-only)."""
        return self.snapshot_path is None and self.model_name is not None

    @property
    def live_model(self) -> Any:
        """The LoadedModel, or None in `view` mode and while loading."""
        return self.engine.model

    # ---- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Vertical(id="main"):
            yield Input(
                placeholder="type a prompt and press Enter (Esc stops a run, / comes back here)",
                id="prompt",
                highlighter=ControlPictures(),  # a pasted ESC shows as ␛, not as a command
            )
            yield Static(id="run-line")
            with ContentSwitcher(id="views", initial=f"view-{VIEWS[0].name}"):
                yield self._make_view(VIEWS[0])
        yield Static(id="too-small")
        yield Footer()

    def _make_view(self, entry: ViewEntry) -> TraceView:
        import importlib

        plugin = next((p for p in self.plugin_views if p.entry.name == entry.name), None)
        if plugin is not None:  # loaded and checked already (its target may be any attribute)
            return plugin.cls(id=f"view-{entry.name}")
        module_name, cls_name = entry.target.split(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        return cls(id=f"view-{entry.name}")

    def on_mount(self) -> None:
        self.watch_sigterm()  # SIGTERM saves the run and exits 143 (tui/recovery.py)
        self._tell_plugin_problems()
        self.query_one("#prompt", Input).display = self.live
        self.screen_change_signal.subscribe(self, self._on_screen_change)
        self._check_size()
        if self.shown is not None:
            trace = self.shown
            self.figures = HeaderFigures(
                trace.model.name, trace.model.device, trace.model.dtype,
                state=f"snapshot {Path(self.snapshot_path).name}" if self.snapshot_path else "",
                captured=captured_bytes(trace), chat="chat_template" in trace.notes,
            )  # fmt: skip
            self._show_trace()
            self._focus_view()
            if "patching" in trace.notes and not trace.arrays:  # a sweep file (`patch -o`)
                self.call_after_refresh(self.run_action, "show_view('interventions')")
            sampled = trace.spec.sampling_notes(trace.n_layers, trace.model.d_mlp)
            if sampled:  # say once what a sampled capture lacks; views refuse what needs it
                self.notify("; ".join(sampled), title="sampled capture", timeout=10)
        elif self.live:
            # nothing has run yet: the prompt box is where to start, even while loading
            self.prompt_asked = True
            self.query_one("#prompt", Input).focus()
            if self.initial_prompt:  # --prompt: runs as soon as the model is ready
                self.query_one("#prompt", Input).value = self.initial_prompt
                self.queued_prompt = self.initial_prompt
            if self.engine.model is not None:
                self._model_ready(self.engine.model)
            else:
                self.figures = HeaderFigures(self.model_name, state="loading")
                self._draw_load_line()
                self.engine.spawn("load", self.engine.load, self.model_name, self.load_options)
        self.start_on_drift()
        self._draw_header()

    def on_unmount(self) -> None:
        self.unwatch_sigterm()
        plugins.set_reporter(None)

    def _tell_plugin_problems(self) -> None:
        """Say once which plugins were left out, and have a plugin that fails later (a metric
        that raises) say so the same way."""
        plugins.set_reporter(self._plugin_failed)
        left_out = plugins.new_problems()
        if left_out:
            self.notify(
                problems_notice(left_out), title="plugins left out", severity="warning", timeout=20
            )

    def _plugin_failed(self, problem: plugins.PluginProblem) -> None:
        # a metric may run in a worker thread (a save, an export): notices belong to the UI's
        text = problems_notice([problem])
        notify = partial(self.notify, text, title="plugin failed", severity="warning", timeout=20)
        if threading.get_ident() == self._thread_id:
            notify()
        else:
            self.call_from_thread(notify)

    @property
    def view(self) -> TraceView:
        """The view on screen."""
        return self.query_one(f"#view-{self.current_view}", TraceView)

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size)

    def _check_size(self, size: Size | None = None) -> None:
        width, height = size or self.size
        small = too_small(width, height)
        self.screen.set_class(small, "-too-small")
        self.screen.set_class(height < SHORT_HEIGHT, "-short")  # smaller plots, more layers
        if small:
            self.query_one("#too-small", Static).update(too_small_text(width, height))
        else:  # hiding the layout took the focus away; give it back when it shows again
            self.call_after_refresh(self._keep_focus)

    def _on_screen_change(self, screen: Any) -> None:
        # back from help or the palette: Textual restores the focus it saved, or
        # (none saved) focuses the first focusable widget, the prompt box; keep it on the view
        if screen is self.screen_stack[0]:
            self.call_after_refresh(self._keep_focus)

    # ---- model worker messages -------------------------------------------------------------

    def on_load_progress(self, message: LoadProgress) -> None:
        # the worker sets engine.model before ModelReady arrives: ask the UI's own state
        if self.figures.state == "loading":
            self.load_step = message.text
            self._draw_load_line()

    def _draw_load_line(self) -> None:
        """Under the prompt box while loading: the loader's step and any queued prompt."""
        line = loading_text(self.model_name or "", self.load_step, self.queued_prompt)
        self.query_one("#run-line", Static).update(line, layout=False)

    async def on_load_failed(self, message: LoadFailed) -> None:
        self.load_error = message.text
        self.queued_prompt = None
        self.figures.state = "failed to load"
        self._draw_header()
        self.query_one("#run-line", Static).update("", layout=False)
        # the panel takes the views' place; the prompt box is disabled, so q quits at once
        self.query_one("#views").display = False
        await self.query_one("#main").mount(LoadFailedPanel(self.model_name or "", message.text))
        self.prompt_asked = False
        self.query_one("#prompt", Input).disabled = True
        self.screen.set_focus(None)

    def on_model_ready(self, message: ModelReady) -> None:
        self._model_ready(message.model)

    def _model_ready(self, model: Any) -> None:
        self.figures = HeaderFigures(
            model.name, "NDIF" if self.remote else model.device, model.dtype, state="ready",
            chat=bool(self.generation.get("chat")),
        )  # fmt: skip
        self._draw_header()
        self.query_one("#run-line", Static).update("", layout=False)
        self._check_concepts(model)
        queued, self.queued_prompt = self.queued_prompt, None
        if queued is not None:
            self.start_run(queued)

    def _check_concepts(self, model: Any) -> None:
        """A concept fitted on another model's shape is a notice (its cells stay empty)."""
        from neuroscope_tui.errors import NeuroscopeError

        a = model.anatomy
        for concept in self.concepts:
            try:
                concept.check_model(a.n_layers, a.d_model, model.name)
            except NeuroscopeError as err:
                self.notify(str(err), title="concept", severity="error", timeout=20)

    def model_missing(self) -> str:
        """Why there is no live model now: still loading, failed to load, or `view` mode."""
        if self.live and self.load_error is not None:
            return f"the model could not be loaded: {self.load_error}"
        if self.live:
            return f"the model is still loading; this works once {self.model_name} is ready"
        return "this needs the live model; `view` mode has none"

    def on_trace_grew(self, message: TraceGrew) -> None:
        # The growth is taken when the frame is drawn, not here: until then the worker posts
        # nothing more (one message a frame, not one a token), and the frame shows the
        # newest growth however many tokens came meanwhile.
        if not self._redraw_due:
            self._redraw_due = True
            wait = self.pacer.delay()
            if wait > 0.0:
                self.set_timer(wait, self._paced_growth)
            else:
                self._apply_growth()

    def _paced_growth(self) -> None:
        """The pacer's timer: redraw now, or wait again when the UI thread's budget is not
        yet earned (the timer fired early: the machine is loaded, the model got less CPU)."""
        wait = self.pacer.delay()
        if wait > 0.0 and self.engine.running:
            self.set_timer(wait, self._paced_growth)
            return
        self._apply_growth()

    def _apply_growth(self) -> None:
        self._redraw_due = False
        message = self.engine.take_growth()
        if message is None:
            return
        self.pacer.drawn()
        shown, running = self.shown, self.engine.running
        if (
            shown is not None
            and message.trace is self.trace
            and not running
            and (
                message.n_tokens == shown.n_tokens  # the lens completed after the run
            )
        ):
            # redraw what shows the lens; leave the selection alone. NoMatches: the app is
            # closing and its views are gone (a timer can fire during shutdown)
            with suppress(NoMatches):
                view = self.view
                getattr(view, "lens_ready", partial(view.show_trace, shown))()
            return
        self.trace = message.trace
        self.shown = trace_upto(message.trace, message.n_tokens)
        self.figures.tokens_per_s = message.tokens_per_s
        self.figures.gpu_bytes = message.gpu_bytes
        self.figures.captured = captured_bytes(self.shown)
        # NoMatches: the app is closing (the lens completes after a run): nothing to draw
        with suppress(NoMatches):
            self._show_trace()

    def on_run_ended(self, message: RunEnded) -> None:
        self.remote_run_ended(message)
        self._apply_growth()
        if message.trace is not None:
            self.trace = self.shown = message.trace
            if message.error:
                self.shown = trace_upto(message.trace, message.trace.n_tokens)
            self.figures.captured = captured_bytes(self.shown)
            self._show_trace()
        stop = message.trace.stop_reason if message.trace is not None else ""
        self.figures.state = "failed" if message.error else f"done ({stop or 'stopped'})"
        self._draw_header()
        if message.error:
            self.notify(message.error, title="run failed", severity="error", timeout=30)
        else:  # a run with interventions: compare it with the clean run (view 9)
            self.compare_after_run(message.trace, self._run_interventions)

    def on_memory_planned(self, message: MemoryPlanned) -> None:
        self.figures.estimate = message.total
        self._draw_header()
        title = "capture reduced to fit the memory budget" if message.reduced else "memory"
        self.notify(
            message.text, title=title, severity="warning" if message.reduced else "information"
        )

    def on_task_done(self, message: TaskDone) -> None:
        # NoMatches: the answer came back while the app closes and its views are gone
        with suppress(NoMatches):
            message.callback(message.result)

    def on_task_progress(self, message: TaskProgress) -> None:
        figures = message.task.context.take()  # the newest, however many reports came
        if figures is not None and message.task.on_progress is not None:
            message.task.on_progress(*figures)

    # ---- runs --------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start_run(event.value)

    def start_run(self, prompt: str) -> None:
        """Run `prompt` in the model worker, or say (a notice) why not now."""
        if not prompt.strip():
            self.notify("the prompt is empty; type some text and press Enter", severity="warning")
            return
        if self.engine.model is None:
            if self.live and self.load_error is None:  # still loading: run it when ready
                self.queued_prompt = prompt
                self.notify(f"queued: runs when {self.model_name} is loaded (Esc cancels)")
                self._draw_load_line()
            else:
                self.notify(self.model_missing(), severity="warning")
            return
        if self.engine.running:
            self.notify("a run is in progress; press Esc to stop it first", severity="warning")
            return
        self.engine.prepare_run()
        self.last_prompt, self._run_interventions = prompt, self.run_interventions()
        for view in self.query(TraceView):  # what a view kept of the last run is stale now
            view.reset_run()
        self.follow = True
        self.prompt_asked = False
        self.figures.state = "running"
        self.figures.tokens_per_s = None
        self._draw_header()
        self._focus_view()
        ivs = self._run_interventions
        self.engine.spawn("run", self.engine.generate, prompt, self.spec, self.generation, ivs)

    def action_stop(self) -> None:
        """Stop the run in progress after its current token (or leave the prompt)."""
        if self.engine.running:
            self.engine.stop()
            self.figures.state = "stopping"
            self._draw_header()
        elif self.queued_prompt is not None:  # only while loading: Esc takes it back
            self.queued_prompt = None
            self.notify("the queued prompt is cancelled; the model goes on loading")
            self._draw_load_line()
        elif isinstance(self.focused, Input):
            self.prompt_asked = False
            self._focus_view()
        else:
            self.cancel_tasks()

    def cancel_tasks(self) -> None:
        """Cancel the long task in flight: the view's own work, then labelled model tasks."""
        labels = self.engine.cancel_tasks()
        if self.view.cancel_work() and not labels:
            labels = [f"{self.current_view} view's computation"]
        if labels:
            self.notify(f"cancelled: {', '.join(dict.fromkeys(labels))}")
        else:
            self.notify("nothing to stop: no run or task is in progress")

    def action_focus_prompt(self) -> None:
        """Type a new prompt."""
        if self.live:
            self.prompt_asked = True
            self.query_one("#prompt", Input).focus()

    def run_model_task(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None],
        kind: str | None = None,
        long: bool = False,
        label: str = "",
        on_progress: Callable[[float, str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> TaskContext | None:
        """Run `fn(loaded_model, *args)` in the model worker and call `on_done(result)` on the
        UI thread; an error becomes a notice. Returns the task's TaskContext (cancel() it),
        or None without a model.

        Quick tasks run between generation steps; `long` ones wait for the run's end. A task
        of a `kind` replaces a waiting one of the same kind (its `on_cancelled` is called).
        With `on_progress`, `fn` gets `progress=` (neuroscope_tui/tasks.py) and its reports
        arrive, coalesced, as `on_progress(fraction, text)`; a `label` makes the task one
        that Esc cancels. An error calls `on_error(text)` on the UI thread, or becomes a
        notice.
        """
        if self.engine.model is None:
            self.notify(self.model_missing(), severity="warning")
            return None
        if self.refuse_on_remote(task_name(label, kind), on_error):
            if on_cancelled is not None:  # the view's waiting state ends
                on_cancelled()
            return None
        task = ModelTask(
            fn, args,
            on_done=lambda result: self.post_message(TaskDone(on_done, result)),
            on_error=lambda text: self.post_message(
                TaskDone(on_error, text) if on_error is not None
                else TaskDone(partial(self.notify, severity="error"), f"model task failed: {text}")
            ),
            kind=kind, long=long, label=label, reports=on_progress is not None,
            on_cancelled=None if on_cancelled is None
            else lambda: self.post_message(TaskDone(lambda _: on_cancelled(), None)),
            on_progress=on_progress,
        )  # fmt: skip
        self.engine.submit(task)
        return task.context

    def decode_token(self, token_id: int) -> str | None:
        """A vocabulary id's text with the live tokenizer (None without one)."""
        model = self.engine.model
        return None if model is None else model.tokenizer.decode([int(token_id)])

    # ---- views and selection -----------------------------------------------------------------

    def _show_trace(self) -> None:
        if self.shown is None:
            return
        self.query_one("#run-line", Static).update(run_text(self.shown), layout=False)
        last = self.shown.n_tokens - 1
        if self.follow and last >= 0 and self.selection.token != last:
            self.selection = Selection(**{**self.selection.__dict__, "token": last})
        self.view.selection = self.selection
        self.view.show_trace(self.shown)
        self._draw_header()

    def _draw_header(self) -> None:
        self.query_one(StatusHeader).show(self.figures)

    async def action_show_view(self, name: str) -> None:
        """Show the view called `name` (mounted on first use)."""
        entry = next(v for v in self.view_entries if v.name == name)
        switcher = self.query_one(ContentSwitcher)
        if not switcher.query(f"#view-{name}"):
            # awaited: its widgets must exist before one of them can take the focus
            await switcher.mount(self._make_view(entry))
        self.current_view = name
        switcher.current = f"view-{name}"
        self.call_after_refresh(self._refresh_view)

    async def show_cell(self, name: str, **changes: int) -> None:
        """Move the app-wide selection (layer=, token=, head=) and show the view `name`
        (the diagnostics view sends the cursor to a finding's cell this way)."""
        self.selection = Selection(**{**self.selection.__dict__, **changes})
        if "token" in changes:  # the user chose a token: stop following the newest one
            self.follow = False
        await self.action_show_view(name)

    def _focus_view(self) -> None:
        """Focus the first focusable widget of the view on screen (the scan's heatmap)."""
        for widget in self.view.query("*"):
            if widget.focusable:
                widget.focus()
                return

    def _keep_focus(self) -> None:
        """Put the keyboard where the user expects it: on a visible widget of the view on
        screen, or on the prompt box only when they asked for it (`/`, or before any run)."""
        if self.screen is not self.screen_stack[0] or self.screen.has_class("-too-small"):
            return
        focused = self.focused
        if isinstance(focused, Input):
            if self.prompt_asked:
                return
        elif focused is not None and focused.region.area and self.view in focused.ancestors:
            return
        if self.prompt_asked and self.live:
            self.query_one("#prompt", Input).focus()
        else:
            self._focus_view()

    def _refresh_view(self) -> None:
        view = self.view
        view.selection = self.selection
        if self.shown is not None:
            view.show_trace(self.shown)
        self._focus_view()

    def on_selection_changed(self, message: SelectionChanged) -> None:
        self.selection = message.selection
        if self.shown is not None:
            self.follow = self.follow and message.selection.token == self.shown.n_tokens - 1

    def _move_selection(self, **changes: int) -> None:
        self.selection = Selection(**{**self.selection.__dict__, **changes})
        self.view.show_selection(self.selection)

    def action_step_layer(self, step: int) -> None:
        """Select the previous (-1) or next (+1) layer, in any view."""
        if self.shown is None or not self.shown.layers():
            return
        layers = self.shown.layers()
        at = layers.index(self.selection.layer) if self.selection.layer in layers else 0
        self._move_selection(layer=layers[max(0, min(len(layers) - 1, at + step))])

    def action_step_head(self, step: int) -> None:
        """Select the previous (-1) or next (+1) attention head, in any view."""
        if self.shown is None:
            return
        n_heads = max(1, self.shown.n_heads)
        self._move_selection(head=max(0, min(n_heads - 1, self.selection.head + step)))

    # ---- help and quitting -------------------------------------------------------------------

    def key_sections(self) -> list[tuple[str, Any, list[BindingType]]]:
        """(title, owner, bindings) of every key group: app, the view on screen, the heatmap."""
        sections: list[tuple[str, Any, list[BindingType]]] = [
            ("everywhere", self, list(self.BINDINGS)),
        ]
        if self.plugin_views:  # palette-only ones show with the key "palette"
            sections.append(("plugin views", self, [p.binding() for p in self.plugin_views]))
        sections += [
            ("prompt", self, [Binding("enter", "noop", "run the prompt (in the prompt box)")]),
        ]
        view = self.view
        sections.append((f"{self.current_view} view", view, list(view.BINDINGS)))
        for child in view.query("*"):
            if child.can_focus and own_bindings(child):
                sections.append((section_name(child), child, list(child.BINDINGS)))
        return sections

    def action_help(self) -> None:
        """List every key."""
        sections = [(title, key_rows(bindings)) for title, _, bindings in self.key_sections()]
        self.push_screen(HelpScreen(sections))

    def action_pick_modules(self) -> None:
        """Choose the modules the next run watches, in a tree with check boxes."""
        from neuroscope_tui.tui.module_picker import ModulePicker, matching, next_watch

        if self.generation.get("backend") == "nnsight":  # the trace hooks no other module
            self.notify("watching modules runs on the native backend only", severity="warning")
            return
        names = self.engine.module_names()
        if not names:
            loading = self.model_name is not None and self.load_error is None
            self.notify(
                "the model is still loading; pick modules when it is ready"
                if loading
                else "there is no model here to watch modules of",
                severity="warning",
            )
            return
        watch_full = tuple(self.generation.get("watch_full", ()))
        asked = (*self.generation.get("watch", ()), *watch_full)
        checked = matching(names, asked)

        def apply(result: list[str] | None) -> None:
            if result is None:
                return
            self.generation.update(next_watch(result, names, watch_full))
            n = len(result)
            self.notify(f"the next run watches {n} module{'' if n == 1 else 's'}")

        self.push_screen(ModulePicker(self.model_name or "", names, checked), apply)

    def action_noop(self) -> None:
        """Nothing (the palette's entry for keys that belong to a widget)."""

    def action_quit(self) -> None:
        """Stop any run and leave."""
        self.engine.stop()
        self.exit(0)
