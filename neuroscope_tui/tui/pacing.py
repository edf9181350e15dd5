"""How often a live run is redrawn: so drawing never takes the model's CPU.

The model worker and the UI thread share the GIL: while the UI thread draws (pure Python:
Textual's compositor, plotext, Rich), the worker waits for the GIL after every torch
operation, and on CPU a frame a token cost the live scan more than half its token rate. So
the app redraws a growing trace at most every MIN_INTERVAL, and otherwise only when the
UI thread's own CPU time since the last redraw is at most UI_SHARE of the time passed: a
frame that cost 40 ms waits 0.8 s. A run's end and every key press still redraw at once.
"""

from __future__ import annotations

import time

UI_SHARE = 0.05  # of the wall time, what drawing a live run may take on the UI thread
MIN_INTERVAL = 0.1  # at most 10 frames a second
MAX_INTERVAL = 2.0  # at least one frame every 2 s, however slow a frame is


class RedrawPacer:
    """The delay before the next redraw of a growing trace (call on the UI thread)."""

    def __init__(self, share: float = UI_SHARE) -> None:
        self.share = share
        self._cpu: float | None = None  # UI thread CPU time at the last redraw

    def delay(self) -> float:
        """Seconds to wait before redrawing, from the UI's CPU time since the last redraw."""
        if self._cpu is None:
            return MIN_INTERVAL
        spent = time.thread_time() - self._cpu
        return min(MAX_INTERVAL, max(MIN_INTERVAL, spent / self.share))

    def drawn(self) -> None:
        """A redraw starts now."""
        self._cpu = time.thread_time()

    def reset(self) -> None:
        """A new run: its first frame comes after MIN_INTERVAL."""
        self._cpu = None
