"""Saving from the app: `s` writes the trace on screen as a snapshot, `S` an SVG screenshot.

Both go to `--save-dir` (default: the working folder) under a name made of the model and the
time; a path that cannot be written is a notice, and nothing on screen is lost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.trace import Trace

NAME_LIMIT = 80  # characters of a model name kept in a file name (file systems allow 255 bytes)


def safe_name(model: str) -> str:
    """The model name as a file-name part: its last path part, letters, digits and `-_.` only
    (no NUL, control characters or slashes), no leading dot, at most NAME_LIMIT characters."""
    last = model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    safe = "".join(ch if (ch.isalnum() and ch.isascii()) or ch in "-_." else "_" for ch in last)
    return safe.lstrip(".")[:NAME_LIMIT] or "model"


def default_file_name(model: str, suffix: str, when: float | None = None) -> str:
    """`<model>-<YYYYmmdd-HHMMSS><suffix>`, the model name made safe for a file name."""
    return f"{safe_name(model)}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}{suffix}"


def free_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name-2...` when that exists (two saves in one second)."""
    path = folder / name
    stem, suffix, n = path.stem, path.suffix, 2
    while path.exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


class SavingActions:
    """The app's save actions (mixed into NeuroscopeApp, which provides `shown`, `save_dir`,
    `model_name`, `live_model`, `run_model_task`, `notify` and `save_screenshot`)."""

    last_saved: Path | None = None
    _completing = False  # a save waits for the model worker to complete the trace

    def _out_folder(self) -> Path:
        return self.save_dir if self.save_dir is not None else Path.cwd()

    def action_save_snapshot(self) -> None:
        """Save the trace on screen as a snapshot file and say where.

        With the live model, what the live scan left out and `capture` keeps (the logit
        lens at every position, the layers' head-averaged patterns) is computed first in
        the model worker (capture/complete.py), so a saved live run holds what `capture`
        holds.
        """
        if self.shown is None or self.shown.n_tokens == 0:
            self.notify("nothing to save yet: run a prompt first", severity="warning")
            return
        trace = self.shown
        if self.live_model is None or self.remote:  # no model here to complete it with
            self._write_snapshot(trace)
            return
        from neuroscope_tui.capture.complete import complete_for_save, needs_completion

        if not needs_completion(trace):
            self._write_snapshot(trace)
            return
        if self._completing:
            self.notify("already preparing a snapshot; it is saved in a moment")
            return
        self._completing = True
        self.notify("computing the lens and attention patterns a snapshot keeps, then saving...")

        def done(result: Any) -> None:
            self._completing = False
            self._write_snapshot(result)

        def failed(text: str) -> None:
            # the run itself must not be lost for want of a derived figure
            self._completing = False
            self.notify(
                f"could not complete the run ({text}); saving what was captured",
                severity="warning",
                timeout=15,
            )
            self._write_snapshot(trace)

        self.run_model_task(complete_for_save, trace, on_done=done, on_error=failed)

    def _write_snapshot(self, trace: Trace) -> None:
        from neuroscope_tui.snapshot import save_snapshot

        name = default_file_name(trace.model.name, ".nscope")
        try:
            path = save_snapshot(trace, free_path(self._out_folder(), name))
        except NeuroscopeError as err:
            self.notify(f"not saved: {err}", severity="error", timeout=15)
            return
        self.last_saved = path
        self.notify(f"saved {path}", title="snapshot", timeout=10)

    def action_screenshot(self) -> None:
        """Save an SVG screenshot of the screen and say where."""
        model = self.shown.model.name if self.shown is not None else (self.model_name or "app")
        path = free_path(self._out_folder(), default_file_name(model, ".svg"))
        try:
            self.save_screenshot(path.name, str(path.parent))
        except OSError as err:
            self.notify(
                f"screenshot not saved: cannot write {path} ({err.strerror or err}); "
                "check the folder or pass --save-dir",
                severity="error",
                timeout=15,
            )
            return
        self.last_saved = path
        self.notify(f"saved {path}", title="screenshot", timeout=10)
