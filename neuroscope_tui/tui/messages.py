"""The small messages the model worker sends to the UI thread, one dataclass per event.

The worker never touches widgets: it posts one of these (`App.post_message` is thread-safe)
and the app reads them on the UI thread. A flood of `TraceGrew` coalesces in the app: only the
newest one is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from neuroscope_tui.trace import Trace


@dataclass
class LoadProgress(Message):
    """The model loader said how far it got (a short human string)."""

    text: str


@dataclass
class ModelReady(Message):
    """The model finished loading; `model` is a LoadedModel (typed Any: no torch here)."""

    model: Any


@dataclass
class LoadFailed(Message):
    """Loading the model failed; `text` is one sentence saying what to do."""

    text: str


@dataclass
class TraceGrew(Message):
    """The run recorded positions up to `n_tokens` into `trace` (read it only up to there).

    `tokens_per_s` counts generated tokens since the first one; `gpu_bytes` is
    torch.cuda.memory_allocated on CUDA, else None.
    """

    trace: Trace
    n_tokens: int
    tokens_per_s: float | None
    gpu_bytes: int | None


@dataclass
class MemoryPlanned(Message):
    """Before a run: the memory estimate in one line, its total, and whether the capture was
    reduced to fit the budget (the line then says how)."""

    text: str
    total: int
    reduced: bool


@dataclass
class RemoteWaiting(Message):
    """A run sent to NDIF waits: `status` is NDIF's word for it (SENT before it answers,
    then RECEIVED, QUEUED, RUNNING...), `since` the time.monotonic() it was sent."""

    status: str
    since: float


@dataclass
class RunEnded(Message):
    """A run ended: finished, stopped, or failed (`error` is one sentence, else None)."""

    trace: Trace | None
    error: str | None


@dataclass
class TaskDone(Message):
    """A view's model task finished: call `callback(result)` on the UI thread."""

    callback: Any
    result: Any


@dataclass
class TaskProgress(Message):
    """A view's model task got further: read the newest figures with `task.context.take()`.

    Coalesced at the source like TraceGrew: while one is unread the task only updates its
    figures, so a task reporting every few milliseconds costs the UI one message at a time.
    `task` is the engine's ModelTask.
    """

    task: Any
