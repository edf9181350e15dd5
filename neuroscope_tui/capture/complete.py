"""Completing a live run before it is saved, so a saved live run holds what `capture` holds.

The live scan records less than `capture` while it runs, to keep up with the model: it leaves
out each layer's head-averaged attention pattern (`pattern.{l}.-1`, layers x tokens^2 floats,
which the flow view and `export flow` need). `complete_for_save` computes whatever is still
missing with the live model, by forward passes over the run's tokens, and returns a trace that
has it. It runs in the model worker (the app calls it through `ModelEngine.complete`). Derived
figures computed on demand in the live view belong here too: what a snapshot must hold is
decided in this one place.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from neuroscope_tui.trace import Trace


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

    Returns `trace` itself when nothing is missing, else a copy (the arrays are shared, not
    copied) with the missing head-averaged patterns [T, T] added and its spec updated to say
    it holds them; the live trace is never changed, so the views keep what they show. Needs
    the model (`bundle`, a LoadedModel), so it runs in the model worker; errors propagate.
    """
    missing = missing_for_save(trace)
    if not missing or trace.n_tokens == 0:
        return trace
    from neuroscope_tui.capture.run import compute_patterns

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
