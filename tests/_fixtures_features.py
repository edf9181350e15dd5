"""Hand-built traces and a small host app for the projection and attribution views (no model).

`projection_trace` holds full residual vectors [3 layers, T, 24] of T tokens in three groups
that stay apart at every layer (a token's group is t % 3), so clusters are known.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.app import App, ComposeResult

from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace
from neuroscope_tui.tui.views.base import Selection, SelectionChanged, TraceView

WORDS = ["The", " cat", " sat", " on", " the", " mat", " and", " the", " dog", " ran", " off", "."]


def projection_trace(t: int = 12, d: int = 24, *, neurons: bool = False) -> Trace:
    rng = np.random.default_rng(0)
    groups = np.arange(t) % 3
    layers = []
    for _ in range(3):
        centres = rng.normal(size=(3, d)) * 12
        layers.append(centres[groups] + rng.normal(size=(t, d)))
    arrays = {"resid.full": np.stack(layers).astype(np.float32)}
    if neurons:
        arrays["neurons.full"] = np.abs(arrays["resid.full"]) * 0.5
    words = (WORDS * (t // len(WORDS) + 1))[:t]
    info = ModelInfo(name="fixture", architecture="hand-built", n_layers=3, n_heads=2, d_model=d)
    trace = Trace(info, CaptureSpec(full_layers=None), list(range(10, 10 + t)), words, t - 2)
    trace.arrays = arrays
    trace.prompt = "".join(words[: t - 2])
    trace.finished = True
    return trace


class ViewHost(App):
    """A minimal app around one TraceView: passes selections back like the real app does.

    `model_task` (when given) stands in for the live model: `run_model_task(fn, *args,
    on_done=...)` calls `on_done(model_task(fn, *args))`.
    """

    def __init__(self, view: TraceView, trace: Trace | None, *, model_task: Any = None) -> None:
        super().__init__()
        self.view = view
        self.trace = trace
        self.model_task = model_task
        self.live_model = object() if model_task is not None else None
        self.save_dir = None

    def compose(self) -> ComposeResult:
        yield self.view

    def on_mount(self) -> None:
        self.view.selection = Selection(layer=1, token=4)
        if self.trace is not None:
            self.view.show_trace(self.trace)
        for widget in self.view.query("*"):
            if widget.can_focus:
                widget.focus()
                break

    def on_selection_changed(self, event: SelectionChanged) -> None:
        self.view.show_selection(event.selection)

    def run_model_task(self, fn: Any, *args: Any, on_done: Any, **options: Any) -> None:
        if self.model_task is None:
            self.notify("this needs the live model; `view` mode has none", severity="warning")
            return
        on_done(self.model_task(fn, *args))


def attribution_trace() -> Trace:
    """A finished run with a stored attribution of its last token (hand-made numbers)."""
    words = ["The", " capital", " of", " France", " is", " Paris"]
    info = ModelInfo(name="fixture", architecture="hand-built", n_layers=2, n_heads=2)
    trace = Trace(info, CaptureSpec(), list(range(20, 26)), words, 5)
    trace.finished = True
    trace.extras = {
        "attribution.occlusion": np.array([0.76, 3.31, 2.03, 4.73, 1.57], dtype=np.float32),
        "attribution.integrated_gradients": np.array([0.0, 0.23, -1.04, 1.95, -0.35], "f4"),
    }

    def numbers(total: float, f_input: float, f_baseline: float, steps: int | None) -> dict:
        delta = f_input - f_baseline
        return {
            "f_input": f_input, "f_baseline": f_baseline, "sum": total,
            "gap": total - delta, "relative_gap": abs(total - delta) / abs(delta),
            "steps": steps, "baseline": "mean embedding, first token kept",
        }  # fmt: skip

    trace.notes["attribution"] = {
        "position": 5, "n_inputs": 5, "target_id": 25, "target_text": " Paris",
        "foil_id": 99, "foil_text": " London", "foil_given": " London",
        "methods": {
            "occlusion": numbers(12.4, 5.6, 4.8, None),
            "integrated_gradients": numbers(0.79, 5.6, 4.814, 64),
        },
    }  # fmt: skip
    return trace
