"""How often a live run is redrawn: so drawing never takes the model's CPU.

The model worker and the UI thread share the GIL (and, on a laptop, the cores): while the UI
thread draws (pure Python: Textual's compositor, plotext, Rich), the worker waits for the GIL
after every torch operation, so every millisecond the UI thread spends is nearly a
millisecond the model loses. The app redraws a growing trace only when the UI thread's CPU
time since the last redraw is at most UI_SHARE of the CPU time the whole process spent in the
meantime (a frame that cost 10 ms waits until the process spent 0.5 s), at most every
MIN_INTERVAL and at least every MAX_INTERVAL. CPU time, not wall time: on a loaded machine
the wall clock runs on while the model waits for a core, and a budget in wall time would
let drawing take a larger share of what the model gets. A run's end and every key press
still redraw at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

UI_SHARE = 0.02  # of the process's CPU time, what drawing a live run may take on the UI thread
MIN_INTERVAL = 0.1  # at most 10 frames a second
MAX_INTERVAL = 2.0  # at least one frame every 2 s, however slow a frame is
DUE = 0.005  # a delay shorter than this is "now"


class RedrawPacer:
    """The delay before the next redraw of a growing trace (call on the UI thread).

    The clocks are parameters so tests can drive them: `thread_cpu` is the UI thread's CPU
    time, `process_cpu` the whole process's, `wall` a monotonic clock (all in seconds).
    """

    def __init__(
        self,
        share: float = UI_SHARE,
        *,
        thread_cpu: Callable[[], float] = time.thread_time,
        process_cpu: Callable[[], float] = time.process_time,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self.share = share
        self._clocks = (thread_cpu, process_cpu, wall)
        self._last: tuple[float, float, float] | None = None  # the clocks at the last redraw

    def delay(self) -> float:
        """Seconds to wait before redrawing (0.0: now), from the UI thread's CPU time since
        the last redraw against the process's."""
        if self._last is None:  # nothing drawn yet: the first frame costs nothing to wait for
            return 0.0
        thread_cpu, process_cpu, wall = (clock() for clock in self._clocks)
        ui0, proc0, wall0 = self._last
        waited = wall - wall0
        # the process CPU still to pass; at about one core's worth per second of wall time
        # (a single-threaded model), that is also the wait: a timer that fires early (a
        # loaded machine) just asks again
        owed = (thread_cpu - ui0) / self.share - (process_cpu - proc0)
        wait = min(MAX_INTERVAL - waited, max(MIN_INTERVAL - waited, owed))
        return wait if wait >= DUE else 0.0

    def drawn(self) -> None:
        """A redraw starts now."""
        self._last = tuple(clock() for clock in self._clocks)  # type: ignore[assignment]
