"""How far to trust an attribution: the rule that decides when integrated gradients has
converged, and one reading of the stored figures for the app, `info` and export, so the three
tell the same story.

`trace.notes["attribution"]["methods"][method]` holds each method's numbers (see
`capture/attribution.py`). Two figures say how far to trust the scores:

- the completeness gap, |sum of scores - (f(x) - f(b))| / |f(x) - f(b)|, only for methods
  whose scores should add up to f(x) - f(b) (integrated gradients, gradient x input).
  Occlusion is not additive (single-token drops need not sum to the all-tokens drop), so it
  has no gap, even where an older snapshot stored one;
- for integrated gradients with doubling step counts, the score change: how far any token's
  score moved when the steps last doubled, as a share of the total |score|. A small gap can
  hide unconverged scores (on SmolLM2, " is" in "The opposite of hot is" -> " cold" scored
  1.83 at 16 steps with a 3% gap, 0.98 converged), so convergence needs both
  (`refine_steps`).

Pure numpy; nothing here imports torch or textual.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np

ADDITIVE_METHODS = ("integrated_gradients", "gradient_x_input")
GAP_TOLERANCE = 0.05  # relative completeness gap accepted as converged
CHANGE_TOLERANCE = 0.02  # score change (share of the total |score|) accepted as converged


def score_change(previous: np.ndarray, current: np.ndarray) -> float:
    """max_t |current_t - previous_t| / sum_t |current_t|: the largest move of any one token's
    score between two step counts, as a share of the total (0 when both are all zero)."""
    previous = np.asarray(previous, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    total = max(float(np.abs(current).sum()), float(np.abs(previous).sum()))
    if total == 0:
        return 0.0
    return float(np.abs(current - previous).max()) / total


class Refinable(Protocol):
    """What `refine_steps` needs of one integration: scores [T], its gap, room for the verdict."""

    scores: np.ndarray
    score_change: float | None
    converged: bool | None
    notes: dict[str, Any]

    @property
    def relative_gap(self) -> float | None: ...


R = TypeVar("R", bound=Refinable)


def refine_steps(
    integrate: Callable[[int], R],
    *,
    start: int = 16,
    max_steps: int = 256,
    gap_tolerance: float = GAP_TOLERANCE,
    change_tolerance: float = CHANGE_TOLERANCE,
) -> R:
    """Integrate with start, 2 start, 4 start... steps until two successive counts agree.

    Converged when the scores moved by at most `change_tolerance` of their total from the
    previous count (`score_change`) and the relative gap is at most `gap_tolerance`; the gap
    alone is not enough (see the module docstring). Returns the last result, with
    `score_change` (None after a single count), `converged` (False when `max_steps` ran out
    first) and in its notes "tried" {steps: relative gap} and "changes" {steps: score change
    from the count before}.
    """
    tried: dict[str, float | None] = {}
    changes: dict[str, float] = {}
    previous: R | None = None
    steps = start
    while True:
        result = integrate(steps)
        tried[str(steps)] = result.relative_gap
        if previous is not None:
            result.score_change = score_change(previous.scores, result.scores)
            changes[str(steps)] = result.score_change
        gap = result.relative_gap
        done = (
            result.score_change is not None
            and result.score_change <= change_tolerance
            and gap is not None
            and gap <= gap_tolerance
        )
        if done or steps * 2 > max_steps:
            result.converged = done
            result.notes.update(tried=tried, changes=changes)
            return result
        previous, steps = result, steps * 2


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def completeness_gap(method: str, numbers: Any) -> float | None:
    """The relative completeness gap stored for `method`, or None: for a method that has no
    completeness property (occlusion), or when the snapshot holds no usable number."""
    if method not in ADDITIVE_METHODS or not isinstance(numbers, dict):
        return None
    return _number(numbers.get("relative_gap"))


def convergence(numbers: Any) -> tuple[float | None, bool | None]:
    """(score change at the last doubling, converged) as stored; (None, None) when the step
    count was fixed (nothing was checked) or the snapshot predates the check."""
    if not isinstance(numbers, dict):
        return None, None
    converged = numbers.get("converged")
    return _number(numbers.get("score_change")), converged if isinstance(converged, bool) else None


def convergence_text(numbers: Any, *, short: bool = False) -> str:
    """A few words on the step count: "scores moved 1.4% from 32 to 64 steps" ("moved 1.4% at
    64 steps" when `short`), led by "not converged" when the step budget ran out first; ""
    when there is nothing to say (a fixed step count, or an older snapshot)."""
    change, converged = convergence(numbers)
    steps = numbers.get("steps") if isinstance(numbers, dict) else None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        steps = None
    if change is None:
        if converged is False:
            return f"not converged by {steps} steps" if steps else "not converged"
        return ""
    if short:
        text = f"moved {change:.1%}" + (f" at {steps} steps" if steps else "")
    elif steps:
        text = f"scores moved {change:.1%} from {steps // 2} to {steps} steps"
    else:
        text = f"scores moved {change:.1%} at the last doubling"
    return f"not converged: {text}" if converged is False else text
