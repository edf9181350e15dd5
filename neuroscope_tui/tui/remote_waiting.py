"""The app's side of a run on NDIF (`--remote`): the waiting state, and what cannot run here.

A mixin of NeuroscopeApp (like DriftActions). A remote run arrives whole when NDIF has
finished it (tui/remote_runs.py), so while it waits the header's state says so, with NDIF's
status word and the seconds since it was sent, ticking once a second; the line under the
prompt says that the whole run comes at once and that Esc stops waiting. When it arrives, a
notice says how long it took. The model here is its structure on the meta device: anything
that would run it (a pattern on demand, attribution, interventions, watching modules,
completing a snapshot) is refused with one sentence. Never imports torch.
"""

from __future__ import annotations

import time
from typing import Any

from textual.widgets import Static

from neuroscope_tui.tui.messages import RemoteWaiting, RunEnded

WAITING_LINE = "sent to NDIF: the whole run comes back when it is finished (Esc stops waiting)"


def waiting_state(status: str, seconds: float) -> str:
    """The header's state while NDIF has the run: 'NDIF: queued, 12 s'."""
    word = status.strip().lower() or "waiting"
    return f"NDIF: {word}, {seconds:.0f} s"


def not_here(what: str) -> str:
    """Why `what` cannot run on a remote model, as one sentence."""
    return (
        f"{what} needs the model on this machine, and this one runs on NDIF (its weights stay "
        "there); run it locally, or with --backend nnsight, for that"
    )


# what a view's model task is, by its kind's first word, when it has no label
_TASKS = {
    "patterns": "an attention pattern on demand",
    "side_by_side": "the comparison with the clean run",
}


def task_name(label: str, kind: str | None) -> str:
    """A model task's name for a notice: its label, or what its kind is."""
    if label:
        return label
    first = (kind or "").split(" ")[0]
    return _TASKS.get(first, "this computation")


class RemoteWaitActions:
    """Mixin of NeuroscopeApp, which provides `engine`, `figures`, `notify`, `query_one`,
    `set_interval` and `_draw_header` (see the module docstring)."""

    _remote_status = ""
    _remote_since: float | None = None
    _remote_ticker: Any = None
    _remote_refused: frozenset[str] = frozenset()  # what was refused already (said once each)

    @property
    def remote(self) -> bool:
        """Whether the model runs on NDIF (--remote)."""
        return self.engine.remote is not None

    def on_remote_waiting(self, message: RemoteWaiting) -> None:
        if not self.engine.running:  # the answer came first (messages can cross)
            return
        first = self._remote_since is None
        self._remote_status, self._remote_since = message.status, message.since
        self._show_waiting()
        if first:
            self.query_one("#run-line", Static).update(WAITING_LINE, layout=False)
            self._remote_ticker = self.set_interval(1.0, self._show_waiting)

    def _show_waiting(self) -> None:
        if self._remote_since is None or self.figures.state == "stopping":
            return
        self.figures.state = waiting_state(
            self._remote_status, time.monotonic() - self._remote_since
        )
        self._draw_header()

    def remote_run_ended(self, message: RunEnded) -> None:
        """Leave the waiting state; say how long NDIF took for a run that came back."""
        since, self._remote_since = self._remote_since, None
        if self._remote_ticker is not None:
            self._remote_ticker.stop()
            self._remote_ticker = None
        if since is None:
            return
        self.query_one("#run-line", Static).update("", layout=False)
        trace = message.trace
        if trace is not None and not message.error:
            self.notify(
                f"NDIF sent the run back whole after {time.monotonic() - since:.0f} s: "
                f"{trace.n_prompt} prompt and {trace.n_generated} generated tokens",
                title="remote run",
                timeout=10,
            )

    def refuse_on_remote(self, what: str, on_error: Any = None) -> bool:
        """True (and one notice, or `on_error(text)`) when `what` would run a remote model."""
        if not self.remote:
            return False
        text = not_here(what)
        if on_error is not None:
            on_error(text)
            return True
        if what not in self._remote_refused:  # a view asking on every key press: said once
            self._remote_refused |= {what}
            self.notify(text, severity="warning", timeout=10)
        return True
