"""Hand-built traces and a small host app for the heads view's tests (no model, no torch).

`make_trace` builds a 3-layer, 4-head run over a repeated token sequence whose heads are,
by construction: L0 previous-token, induction, uniform, sink; L1 duplicate-token, self,
previous-token (again: redundant with L0.H0), uniform; L2 random softmax heads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.app import App, ComposeResult

from neuroscope_tui.analysis.heads import SCORE_NAMES, query_scores_from_pattern
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace
from neuroscope_tui.tui.views.base import SelectionChanged
from neuroscope_tui.tui.views.heads import HeadsView

WORDS = ["The", " cat", " sat", " on", " a", " mat", "."]
IDS = [11, 12, 13, 14, 15, 16, 17]
PERIOD = len(IDS)


def one_key(n: int, key_of: Any) -> np.ndarray:
    p = np.zeros((n, n))
    for t in range(n):
        p[t, min(max(key_of(t), 0), t)] = 1.0
    return p


def uniform(n: int) -> np.ndarray:
    p = np.tril(np.ones((n, n)))
    return p / p.sum(axis=1, keepdims=True)


def random_heads(n: int, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        logits = rng.normal(size=(n, n)) * 2 + np.triu(np.full((n, n), -np.inf), k=1)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        out.append(p / p.sum(axis=1, keepdims=True))
    return out


def all_patterns(n: int) -> list[list[np.ndarray]]:
    """[layer][head] full patterns [T, T] of the fixture's 3 x 4 heads."""
    prev = one_key(n, lambda t: t - 1)
    induction = one_key(n, lambda t: t - PERIOD + 1 if t >= PERIOD else 0)
    dup = one_key(n, lambda t: t - PERIOD if t >= PERIOD else 0)
    return [
        [prev, induction, uniform(n), one_key(n, lambda t: 0)],
        [dup, np.eye(n), prev.copy(), uniform(n)],
        random_heads(n, 4),
    ]


def make_trace(
    *, keep_patterns: tuple[tuple[int, int], ...] = ((0, 0), (1, 2), (0, 1)), finished: bool = True
) -> Trace:
    """The fixture run: the sentence twice (14 tokens), with the patterns in `keep_patterns`."""
    ids, words = IDS * 2, WORDS * 2
    n = len(ids)
    patterns = all_patterns(n)
    per_head = [[query_scores_from_pattern(p, ids) for p in layer] for layer in patterns]
    arrays = {
        f"heads.{name}": np.stack(
            [np.stack([h[name] for h in layer], axis=1) for layer in per_head]
        ).astype(np.float32)  # [L, T, H]
        for name in SCORE_NAMES
    }
    for layer, head in keep_patterns:
        arrays[f"pattern.{layer}.{head}"] = patterns[layer][head].astype(np.float32)
    info = ModelInfo(name="fixture", architecture="hand-built", n_layers=3, n_heads=4)
    spec = CaptureSpec(pattern_heads=keep_patterns)
    trace = Trace(info, spec, list(ids), list(words), n, arrays, prompt="".join(words))
    trace.finished = finished
    return trace


def probe_row(layer: int, head: int) -> dict[str, Any]:
    """A row as the induction probe gives it (`HeadScores.rows()`): one induction head, L2.H1,
    and scores unlike the fixture trace's, so a test can tell which source a colour came from."""
    induction = (layer, head) == (2, 1)
    scores = {
        name: round(0.05 * (4 * layer + head) + 0.01 * i, 6) for i, name in enumerate(SCORE_NAMES)
    }
    scores["induction"] = 0.9 if induction else round(0.02 * (4 * layer + head), 6)
    scores["entropy"] = None if (layer, head) == (0, 3) else scores["entropy"]  # undefined
    types = ["induction"] if induction else []
    return {"layer": layer, "head": head, **scores, "types": types, "redundant_with": []}


class HeadsHost(App):
    """A minimal app around HeadsView: it passes selections back like the real app does.

    With `live=True` it pretends to hold a model: `run_model_task` records each call and
    answers with the fixture's patterns, as `compute_patterns` would.
    """

    def __init__(self, trace: Trace, *, live: bool = False, fail: str = "") -> None:
        super().__init__()
        self.trace = trace
        self.live_model = object() if live else None
        self.fail = fail  # answer every task with this failure phrase instead
        self.tasks: list[list[tuple[int, int]]] = []
        self.probes = 0

    def compose(self) -> ComposeResult:
        yield HeadsView(id="heads")

    def on_mount(self) -> None:
        view = self.query_one(HeadsView)
        view.show_trace(self.trace)
        self.query_one("#head-grid").focus()

    def on_selection_changed(self, event: SelectionChanged) -> None:
        self.query_one(HeadsView).show_selection(event.selection)

    def run_model_task(self, fn: Any, *args: Any, on_done: Any, **options: Any) -> None:
        if fn.__name__ == "probe_or_error":  # the induction probe: one induction head, L2.H1
            self.probes += 1
            rows = [probe_row(layer, h) for layer in range(3) for h in range(4)]
            on_done({"model": self.trace.model.name, "length": 50, "seed": 0, "heads": rows})
            return
        token_ids, heads = args[:2]  # then the trace whose interventions to replay, or None
        self.tasks.append(list(heads))
        if self.fail:
            on_done(self.fail)
            return
        patterns = all_patterns(len(token_ids))
        on_done({(layer, head): patterns[layer][head] for layer, head in heads})
