"""Long work that says how far it got and can be stopped: the contract between a model task
(attribution, patterns) and whoever waits for it (the app's progress line and Esc).

A task function that can take a while accepts `progress(fraction, text)` and calls it between
chunks of its work (integrated gradients' steps, occlusion's positions). `TaskContext.progress`
is such a callable: it raises `TaskCancelled` once the user cancelled, so the task stops at
its next chunk without any cancel logic of its own, and it keeps only the newest figures, so
a task that reports a thousand times a second costs the UI one message at a time.

No torch and no textual here: capture/ and tui/ both use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

ProgressFn = Callable[[float, str], None]


class TaskCancelled(Exception):
    """The user cancelled the task; raised at its next progress report."""


@dataclass
class TaskContext:
    """One task's cancel flag and newest progress (fraction 0..1, a short text).

    `notify` is called (in the task's thread) when new progress is waiting and no earlier
    notice is still unread; the reader calls `take()` (which re-arms it) to get the newest.
    """

    notify: Callable[[], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    latest: tuple[float, str] | None = None
    _unread: threading.Event = field(default_factory=threading.Event)

    def progress(self, fraction: float, text: str) -> None:
        """Report how far the task got; raise TaskCancelled if it was cancelled."""
        self.check()
        self.latest = (min(max(float(fraction), 0.0), 1.0), text)
        if self.notify is not None and not self._unread.is_set():
            self._unread.set()  # one notice in flight; later reports only update `latest`
            self.notify()

    def check(self) -> None:
        """Raise TaskCancelled if the task was cancelled."""
        if self.cancelled.is_set():
            raise TaskCancelled("cancelled")

    def cancel(self) -> None:
        """Ask the task to stop at its next report (or not to start at all)."""
        self.cancelled.set()

    def take(self) -> tuple[float, str] | None:
        """The newest progress (reader's side); the next report notifies again."""
        self._unread.clear()
        return self.latest
