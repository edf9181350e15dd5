"""No crash loses a run: an unexpected error or SIGTERM saves what was captured first.

`CrashRecovery` is mixed into NeuroscopeApp in front of textual's App. Textual routes every
unhandled exception (a view's method, a message handler, a timer, a callback from the model
worker) to `App._handle_exception`, which queues the traceback for printing after the screen
is restored and closes the app. We override that one hook: before handing over to textual we
write the run (the newest rows the worker announced, not only what is on screen) to
`<model>-<time>.recovered.nscope` in the save folder (or the temp folder when that cannot be
written), with the ordinary atomic snapshot writer. SIGTERM does the same through an asyncio
signal handler and then exits normally, so the terminal is restored. The command line reads
`exit_report()` after `App.run()` returns: one sentence and a non-zero status.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.engine import describe, trace_upto
from neuroscope_tui.tui.saving import default_file_name, free_path

CRASH_STATUS = 3  # an unexpected error in the app (a bug): the run is saved, the traceback shown
TERMINATED_STATUS = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM
RECOVERY_SUFFIX = ".recovered.nscope"


@dataclass
class Recovery:
    """What happened to the run when the app stopped abnormally."""

    path: Path | None = None  # where the run was saved
    n_tokens: int = 0
    failure: str | None = None  # why it could not be saved

    def sentence(self) -> str:
        if self.path is not None:
            return f"the run so far ({self.n_tokens} tokens) is saved in {self.path}"
        if self.failure is not None:
            return f"the run could not be saved ({self.failure})"
        return "there was no run to save"


class CrashRecovery:
    """Saves the run before the app stops on an unexpected error or SIGTERM (mixed into
    NeuroscopeApp, which provides `engine`, `trace`, `shown`, `live`, `snapshot_path` and
    `_out_folder`)."""

    stop_reason: str | None = None  # why the app stopped abnormally (None: a normal quit)
    recovery: Recovery | None = None
    # provided by NeuroscopeApp
    engine: Any
    trace: Trace | None
    shown: Trace | None
    snapshot_path: str | None
    live: bool

    # ---- the two ways in -------------------------------------------------------------------

    def _handle_exception(self, error: Exception) -> None:
        # textual calls this for every unhandled exception; save first, then let it print the
        # traceback (for a bug report) and close the app with return code 1
        if self.stop_reason is None:
            self.stop_reason = f"the app stopped on an unexpected error ({describe(error)})"
            self._recover()
        super()._handle_exception(error)

    def watch_sigterm(self) -> None:
        """Handle SIGTERM in the event loop (main thread only; elsewhere it stays default)."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._terminated)

    def unwatch_sigterm(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)

    def _terminated(self) -> None:
        if self.stop_reason is None:
            self.stop_reason = "terminated (SIGTERM)"
            self._recover()
        self.exit(TERMINATED_STATUS)

    # ---- saving ----------------------------------------------------------------------------

    def _recover(self) -> None:
        """Save the run to a recovery snapshot; never raises (we may be inside a crash)."""
        self.recovery = Recovery()
        try:
            self.engine.stop()
            trace = self.run_to_recover()
            if trace is None or trace.n_tokens == 0:
                return
            self.recovery.n_tokens = trace.n_tokens
            self.recovery.path = self._write_recovery(trace)
        except Exception as err:  # a crash while saving: say why, never a second traceback
            self.recovery.failure = str(err) if _is_user_error(err) else describe(err)

    def run_to_recover(self) -> Trace | None:
        """The live run as far as the worker has announced it (None in `view` mode, whose
        file is already on disk, and before any run)."""
        if not self.live:
            return None
        growth = self.engine.latest
        trace: Trace | None = self.trace
        if growth is not None and (growth.trace is not trace or self.engine.running):
            # the worker is ahead of the screen: take every row it has announced
            return trace_upto(growth.trace, growth.n_tokens)
        return self.shown

    def _write_recovery(self, trace: Trace) -> Path:
        from neuroscope_tui.snapshot import save_snapshot

        name = default_file_name(trace.model.name, RECOVERY_SUFFIX)
        try:
            return save_snapshot(trace, free_path(self._out_folder(), name))
        except Exception as first:
            # the save folder may be the reason (full, gone, read-only): try the temp folder
            try:
                return save_snapshot(trace, free_path(Path(tempfile.gettempdir()), name))
            except Exception:
                raise first from None

    # ---- what the command line says --------------------------------------------------------

    def exit_report(self) -> tuple[int, str] | None:
        """(exit status, one sentence) after an abnormal stop, or None after a normal quit."""
        if self.stop_reason is None:
            return None
        status = TERMINATED_STATUS if self.stop_reason.startswith("terminated") else CRASH_STATUS
        if not self.live and self.snapshot_path:
            return status, f"{self.stop_reason}; the snapshot {self.snapshot_path} is unchanged"
        return status, f"{self.stop_reason}; {(self.recovery or Recovery()).sentence()}"


def _is_user_error(err: BaseException) -> bool:
    from neuroscope_tui.errors import NeuroscopeError

    return isinstance(err, NeuroscopeError)


def report_exit(app: Any) -> int | None:
    """Print the app's exit report on stderr (one sentence) and return its status, or None
    after a normal quit."""
    import sys

    report = app.exit_report()
    if report is None:
        return None
    status, text = report
    print(f"neuroscope-tui: {text}.", file=sys.stderr)
    return status
