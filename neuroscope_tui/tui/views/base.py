"""What every view of the app shares: the trace it shows and the app-wide selection.

The app (tui/app.py) owns the current Trace and one Selection (layer, token, head). Whenever
the trace grows or the selection moves it calls `show_trace` / `show_selection` on the view
that is on screen (and on a view when it comes on screen). A view that moves the selection
posts `SelectionChanged`; the app then tells every view. Views only draw what they are given:
they never run the model themselves. A view that needs the live model (patterns on demand,
attribution) calls `self.app.run_model_task(fn, *args, on_done=callback)` (see app.py), which
runs `fn(loaded_model, *args)` in the model worker, between generation steps, and calls
`on_done(result)` on the UI thread; `self.app.live_model` is None in `view` mode.

When a new run starts the app calls `reset_run()` on every mounted view: whatever a view
kept of the last run (a chosen position, a foil, computed patterns, projections, a task
still waiting) belongs to that run and is dropped. Esc calls `cancel_work()` on the view on
screen, which stops a long computation the view runs itself (t-SNE, UMAP).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.widget import Widget

from neuroscope_tui.trace import Trace


@dataclass(frozen=True)
class Selection:
    """The cell every view agrees on: a layer, a token position and a head."""

    layer: int = 0
    token: int = 0
    head: int = 0


class SelectionChanged(Message):
    """A view moved the app-wide selection."""

    def __init__(self, selection: Selection) -> None:
        super().__init__()
        self.selection = selection


class TraceView(Widget):
    """Base of the app's views: holds the trace and selection it was last given."""

    trace: Trace | None = None
    selection: Selection = Selection()

    def show_trace(self, trace: Trace) -> None:
        """The trace grew (or a new one arrived): redraw what depends on it."""
        self.trace = trace
        self.refresh_view()

    def show_selection(self, selection: Selection) -> None:
        """The app-wide selection moved: redraw what depends on it."""
        self.selection = selection
        self.refresh_view()

    def refresh_view(self) -> None:
        """Redraw from `self.trace` and `self.selection`; views override this."""
        self.refresh()

    def reset_run(self) -> None:
        """A new run starts: forget per-run state (views that keep any override this)."""

    def cancel_work(self) -> bool:
        """Stop a long computation this view runs itself; whether there was one."""
        return False

    def select(self, **changes: int) -> None:
        """Move the app-wide selection (layer=, token=, head=) and tell the app."""
        sel = Selection(**{**self.selection.__dict__, **changes})
        self.selection = sel
        self.post_message(SelectionChanged(sel))
