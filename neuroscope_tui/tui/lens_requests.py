"""Asking the model worker for logit-lens cells that are on screen but not computed yet.

A live run leaves the lens for later (capture/derive.py): a view that shows a cell without
it asks for that cell (the detail panel) or for the columns around the cursor (the lens view)
as a model task, which the worker runs between two generation steps. One request is in flight
at a time and, during a run, at most one starts per LIVE_INTERVAL, so following the newest
token costs the model a few percent of its time, not the lens of every token.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from neuroscope_tui.capture.derive import lens_asked
from neuroscope_tui.trace import Trace

LIVE_INTERVAL = 1.0  # seconds between two lens requests while the model generates
MAX_POSITIONS = 64  # positions per request from the lens view (a screenful of columns)


def cell_missing(trace: Trace, row: int, token: int) -> bool:
    """Whether the lens at heatmap `row` and `token` is asked for and not computed yet."""
    if not trace.has("lens.top_ids") or not 0 <= token < trace.n_tokens:
        return False
    return bool(trace.get("lens.top_ids")[row, token, 0] < 0 and lens_asked(trace)[token])


def missing_near(trace: Trace, token: int, limit: int = MAX_POSITIONS) -> list[int]:
    """Up to `limit` positions missing some layer's lens, nearest to `token` first."""
    if not trace.has("lens.top_ids"):
        return []
    ids = trace.get("lens.top_ids")[:, : trace.n_tokens, 0]
    todo = np.flatnonzero((ids < 0).any(axis=0) & lens_asked(trace))
    order = np.argsort(np.abs(todo - token), kind="stable")
    return sorted(int(t) for t in todo[order[:limit]])


def _derive(bundle: Any, trace: Trace, positions: list[int], rows: list[int] | None) -> str:
    """The model task: fill the cells in place; '' or one sentence saying why not."""
    from neuroscope_tui.capture.derive import derive_lens

    try:
        derive_lens(bundle, trace, positions, rows)
    except Exception as err:
        return f"the logit lens could not be computed here ({type(err).__name__}: {err})"
    return ""


class LensRequests:
    """One view's lens requests: at most one in flight, spaced out during a run."""

    def __init__(self) -> None:
        self.pending = False
        self.last = 0.0

    def ask(
        self,
        view: Any,
        trace: Trace,
        positions: Sequence[int],
        rows: Sequence[int] | None,
        interval: float | None = None,
    ) -> bool:
        """Ask the worker for the lens at `positions` (all rows, or `rows`), then redraw
        `view`; False when there is no live model or a request is in flight or, during a
        run, less than `interval` seconds (default LIVE_INTERVAL) after the last one."""
        app = view.app
        engine = getattr(app, "engine", None)
        if engine is None or engine.model is None or self.pending or not positions:
            return False
        now = time.monotonic()
        if engine.running and now - self.last < (interval or LIVE_INTERVAL):
            return False
        # write into the run's own trace: `trace` may be a view of it cut at the last redraw
        run = getattr(app, "trace", None)
        target = run if run is not None and run.n_tokens >= trace.n_tokens else trace
        self.pending, self.last = True, now

        def done(problem: str) -> None:
            self.pending = False
            if problem:
                app.notify(problem, severity="warning")
            elif view.is_mounted:  # only what shows the lens, where the view says what that is
                getattr(view, "lens_ready", view.refresh_view)()

        app.run_model_task(_derive, target, list(positions), rows, on_done=done)
        return True
