"""The convergence rule for integrated gradients on a synthetic integrand with a narrow steep
stretch, and the one reading of stored gaps and score changes that the app, info and export
share (analysis/attribution_trust.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import erf, pi, sqrt
from typing import Any

import numpy as np
import pytest

from neuroscope_tui.analysis import attribution_trust as T

# Three "tokens" along alpha in [0, 1]: a smooth one, and a narrow bump (width 0.01 at 0.37)
# given to one token and taken from another, so the sum of the scores (and hence the
# completeness gap) is right at any step count while the two tokens' scores are not.
HEIGHT, CENTRE, WIDTH = 40.0, 0.37, 0.01
BUMP = HEIGHT * WIDTH * sqrt(pi) / 2 * (erf((1 - CENTRE) / WIDTH) + erf(CENTRE / WIDTH))
EXACT = np.array([1.5, BUMP, 0.5 - BUMP])  # the integrals of 1 + a, bump(a), 0.5 - bump(a)


@dataclass
class FakeIntegration:
    scores: np.ndarray
    steps: int
    score_change: float | None = None
    converged: bool | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def relative_gap(self) -> float:
        return abs(self.scores.sum() - EXACT.sum()) / abs(EXACT.sum())


def integrate(steps: int) -> FakeIntegration:
    """Gauss-Legendre with `steps` nodes on [0, 1], as integrated gradients does."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    a, w = (nodes + 1) / 2, weights / 2
    bump = HEIGHT * np.exp(-(((a - CENTRE) / WIDTH) ** 2))
    return FakeIntegration(np.stack([1 + a, bump, 0.5 - bump]) @ w, steps)


def test_a_small_gap_alone_would_stop_on_unconverged_scores() -> None:
    first = integrate(16)
    assert first.relative_gap < 1e-12  # the old rule (gap under 5%) stopped here...
    assert np.abs(first.scores - EXACT).max() > 0.1 * np.abs(EXACT).sum()  # ...17% off


def test_refining_goes_on_until_the_scores_themselves_settle() -> None:
    got = T.refine_steps(integrate, start=16, max_steps=1024)
    assert got.converged and got.steps > 16
    assert got.score_change <= T.CHANGE_TOLERANCE
    np.testing.assert_allclose(got.scores, EXACT, atol=1e-6)
    # The recorded changes are the definition applied to successive counts.
    for steps, change in got.notes["changes"].items():
        before, after = integrate(int(steps) // 2).scores, integrate(int(steps)).scores
        total = max(np.abs(before).sum(), np.abs(after).sum())
        assert change == pytest.approx(np.abs(after - before).max() / total)
    earlier = [c for s, c in got.notes["changes"].items() if int(s) < got.steps]
    assert all(c > T.CHANGE_TOLERANCE for c in earlier)


def test_a_budget_that_runs_out_says_not_converged() -> None:
    got = T.refine_steps(integrate, start=16, max_steps=64)
    assert got.steps == 64 and got.converged is False
    numbers = {"steps": got.steps, "score_change": got.score_change, "converged": False}
    assert T.convergence_text(numbers).startswith("not converged: scores moved 9.2% from 32")


def test_score_change_is_the_largest_move_as_a_share_of_the_total() -> None:
    assert T.score_change(np.array([1.0, 2.0, -1.0]), np.array([1.0, 3.0, -1.0])) == 0.2
    assert T.score_change(np.zeros(3), np.zeros(3)) == 0.0


def test_only_additive_methods_have_a_gap_even_in_old_snapshots() -> None:
    old = {"relative_gap": 9.91, "sum": 12.4}  # what occlusion stored before (991%)
    assert T.completeness_gap("occlusion", old) is None
    assert T.completeness_gap("integrated_gradients", {"relative_gap": 0.012}) == 0.012
    assert T.completeness_gap("gradient_x_input", {"relative_gap": "x"}) is None
    assert T.convergence({"steps": 64}) == (None, None)  # a fixed step count: nothing checked
    assert T.convergence_text({"steps": 64}) == ""
    text = T.convergence_text({"steps": 64, "score_change": 0.014, "converged": True})
    assert text == "scores moved 1.4% from 32 to 64 steps"
