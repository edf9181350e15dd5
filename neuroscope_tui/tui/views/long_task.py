"""One long model task at a time for a view: started, shown with progress, cancelled.

Views that ask the model worker for minutes of work (the diagnostics' full check, a concept
fit, an attribution, a patching sweep) share the same small state machine: `busy` while the
task runs or waits for the model, `progress` (fraction, words) as the worker reports it,
`message` for the last outcome, and a ticket per start, so a late callback of a cancelled or
replaced task changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual.widgets import Static

from neuroscope_tui.text_safety import visible

BAR_WIDTH = 30


class LongTask:
    """Mixin for a TraceView with one long model task (see the module docstring).

    A view sets `STATUS_ID` (the Static that shows its status line), `CANCELLED` (the message
    after Esc), calls `init_long_task()` in `__init__`, and defines `status_text()` and
    `refresh_view()`. `START_PROGRESS` is the progress shown until the worker's first report;
    a view that words the wait itself ("... runs when generation ends") sets it to None.
    """

    STATUS_ID: ClassVar[str]
    CANCELLED: ClassVar[str] = "cancelled"
    START_PROGRESS: ClassVar[tuple[float, str] | None] = (0.0, "waiting for the model")

    def init_long_task(self) -> None:
        self.busy = False  # the task runs (or waits for the model)
        self.progress: tuple[float, str] | None = None
        self.message = ""
        self._task: Any = None
        self._ticket: object | None = None

    def start_long_task(
        self,
        fn: Callable[..., Any],
        *args: Any,
        kind: str,
        label: str,
        on_done: Callable[[Any], None],
        failed: str | None = None,
    ) -> None:
        """Run `fn(ctx, *args)` in the model worker; `on_done(result)` on the UI thread unless
        cancelled or replaced meanwhile. With `failed` ("the full check failed"), an error
        becomes that message and a notice; without it the app's own error notice serves."""
        self.busy, self.message, self.progress = True, "", self.START_PROGRESS
        ticket = self._ticket = object()
        extra: dict[str, Any] = {}
        if failed is not None:
            extra["on_error"] = lambda text: self._long_task_failed(ticket, failed, text)
        task = self.app.run_model_task(  # type: ignore[attr-defined]
            fn, *args,
            on_done=lambda result: self._long_task_done(ticket, on_done, result),
            kind=kind, long=True, label=label,
            on_progress=lambda fraction, text: self._long_task_progress(ticket, fraction, text),
            on_cancelled=lambda: self._long_task_cancelled(ticket),
            **extra,
        )  # fmt: skip
        if self._ticket is ticket:  # not already finished (a test's synchronous worker)
            self._task = task
            if task is None:  # no model: the app said why, and no callback will come
                self._end()
        self.refresh_view()  # type: ignore[attr-defined]

    def cancel_work(self) -> bool:
        if not self.busy:
            return False
        if self._task is not None:
            self._task.cancel()  # the worker stops at its next report
        self._long_task_cancelled(self._ticket)  # the view is free at once
        return True

    def drop_long_task(self) -> None:
        """Stop the task without a word and forget its last message (a new run, say): its
        late callbacks find no ticket and change nothing."""
        if self._task is not None:
            self._task.cancel()
        self._end()
        self.message = ""

    def _end(self) -> None:
        self.busy, self.progress, self._task, self._ticket = False, None, None, None

    def _long_task_progress(self, ticket: object, fraction: float, text: str) -> None:
        if ticket is self._ticket and self.busy:
            self.progress = (fraction, text)
            status = self.query_one(f"#{self.STATUS_ID}", Static)  # type: ignore[attr-defined]
            status.update(self.status_text())  # type: ignore[attr-defined]

    def _long_task_cancelled(self, ticket: object) -> None:
        if ticket is self._ticket:
            self._end()
            self.message = self.CANCELLED
            self.refresh_view()  # type: ignore[attr-defined]

    def _long_task_failed(self, ticket: object, failed: str, text: str) -> None:
        if ticket is self._ticket:
            self._end()
            self.message = f"{failed}: {text}"
            self.notify(self.message, severity="error")  # type: ignore[attr-defined]
            self.refresh_view()  # type: ignore[attr-defined]

    def _long_task_done(self, ticket: object, on_done: Callable[[Any], None], result: Any) -> None:
        if ticket is not self._ticket:
            return
        self._end()
        on_done(result)

    def progress_lines(self, text: Text) -> bool:
        """Append the progress bar or the last message to `text`; False if neither."""
        if self.busy and self.progress is not None:
            fraction, words = self.progress
            filled = round(fraction * BAR_WIDTH)
            text.append(f"\n[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:4.0%} ")
            text.append(visible(words))
        elif self.message:
            text.append("\n" + visible(self.message), style="yellow")
        else:
            return False
        return True
