"""Completing a live run before it is saved, so a saved live run holds what `capture` holds.

The live scan records less than `capture` while it runs, to keep up with the model: it leaves
out each layer's head-averaged attention pattern (`pattern.{l}.-1`, layers x tokens^2 floats,
which the flow view and `export flow` need), a long prompt's head entropy
(capture/derive_entropy.py), and it derives the logit lens on demand for what
is on screen (capture/derive.py) rather than at every step. `complete_for_save` computes
whatever is still missing with the live model and returns a trace that has it. It runs in the
model worker (the app's save action submits it as a model task). What a snapshot must hold
beyond what the live view records is decided in this one place.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from neuroscope_tui.trace import Trace


def needs_completion(trace: Trace) -> bool:
    """Whether saving `trace` must first compute something with the model."""
    from neuroscope_tui.capture.derive import missing_positions
    from neuroscope_tui.capture.derive_entropy import missing_entropy

    return bool(missing_for_save(trace) or missing_positions(trace) or missing_entropy(trace))


def missing_for_save(trace: Trace) -> list[tuple[int, int]]:
    """The (layer, -1) head-averaged patterns `capture` would have kept and `trace` lacks."""
    return [
        (layer, -1)
        for layer in trace.layers()
        if not _complete_pattern(trace.arrays.get(f"pattern.{layer}.-1"), trace.n_tokens)
    ]


def _complete_pattern(pattern: Any, n_tokens: int) -> bool:
    # a pattern computed on demand during generation may lag the run by a few query rows
    return pattern is not None and pattern.shape[0] == n_tokens


def complete_for_save(bundle: Any, trace: Trace) -> Trace:
    """`trace` with everything a snapshot should hold that the live run left out.

    The lens cells and head entropy still missing are derived in place (capture/derive.py
    `complete_trace`). Returns `trace` itself when no pattern is missing, else a copy (the
    arrays are shared, not copied) with the missing head-averaged patterns [T, T] added and
    its spec updated to say it holds them; the live trace's patterns are never changed. Needs
    the model (`bundle`, a LoadedModel), so it runs in the model worker; errors propagate.
    """
    if trace.n_tokens == 0:
        return trace
    from neuroscope_tui.capture.derive import complete_trace

    # the lens cells the live view left for later are filled in place: they are the same
    # numbers the views would derive, so the trace on screen may share them
    complete_trace(bundle, trace)
    missing = missing_for_save(trace)
    if not missing:
        return trace
    from neuroscope_tui.capture.patterns import compute_patterns

    patterns = compute_patterns(bundle, list(trace.token_ids), missing)
    arrays = dict(trace.arrays)
    for (layer, head), pattern in patterns.items():
        arrays[f"pattern.{layer}.{head}"] = np.asarray(pattern, dtype=np.float32)
    heads = tuple(dict.fromkeys((*trace.spec.pattern_heads, *missing)))
    return replace(
        trace,
        arrays=arrays,
        spec=replace(trace.spec, pattern_heads=heads),
        extras=dict(trace.extras),
        notes=dict(trace.notes),
    )
