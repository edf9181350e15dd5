"""The torch-free side by side and heatmap difference, on synthetic traces (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.analysis.interventions import (
    metric_difference,
    side_by_side,
    side_by_side_table,
)
from neuroscope_tui.analysis.patching import PatchSweep
from neuroscope_tui.capture.interventions import Ablation, intervention_to_dict
from neuroscope_tui.trace import ModelInfo, Trace

INFO = ModelInfo(name="synthetic", n_layers=3, n_heads=2, d_model=4)


def _trace(ids: list[int], n_prompt: int, norms: np.ndarray, **kw) -> Trace:
    return Trace(
        model=INFO,
        token_ids=ids,
        token_text=[f"t{i}" for i in ids],
        n_prompt=n_prompt,
        arrays={"resid.norm": norms.astype(np.float32), "mlp.norm": norms.astype(np.float32) * 2},
        prompt="p",
        **kw,
    )


def test_side_by_side_finds_where_the_runs_part():
    rng = np.random.default_rng(0)
    clean = _trace([1, 2, 3, 4, 5], 2, rng.random((3, 5)))
    ablated = _trace(
        [1, 2, 3, 9, 9, 9],
        2,
        rng.random((3, 6)),
        interventions=[intervention_to_dict(Ablation("head", 1, 0, mode="mean"))],
    )
    view = side_by_side(clean, ablated, np.array([0.0, -1.0, -2.5, 0.5, 1.0]))
    assert view.first_divergence == 3
    assert view.clean_text == "t3t4t5" and view.intervened_text == "t3t9t9t9"
    assert view.interventions == ["ablate L1.H0 (mean)"]
    np.testing.assert_array_equal(view.logit_diff, [0.0, -1.0, -2.5, 0.5, 1.0])
    table = side_by_side_table(view)
    assert table.rows[3] == [3, "t4", "t9", True, False, 0.5]
    assert len(table.rows) == clean.n_tokens
    same = side_by_side(clean, clean, None)
    assert same.first_divergence is None and np.isnan(same.logit_diff).all()


def test_metric_difference_is_intervened_minus_clean_over_common_positions():
    rng = np.random.default_rng(1)
    a, b = rng.random((3, 5)), rng.random((3, 7))
    clean, other = _trace([1] * 5, 2, a), _trace([1] * 7, 2, b)
    got = metric_difference(clean, other, "resid.norm")
    assert got.shape == (3, 5) and got.dtype == np.float32
    np.testing.assert_allclose(got, b[:, :5] - a, atol=1e-6)
    np.testing.assert_allclose(
        metric_difference(clean, other, "norm", "mlp"), 2 * (b[:, :5] - a), atol=1e-6
    )
    assert np.isnan(metric_difference(clean, other, "attn.norm")).all()
    other.spec.layers = (0, 2)
    with pytest.raises(ValueError, match="different layers"):
        metric_difference(clean, other, "resid.norm")


def test_recovery_is_the_fraction_of_the_gap_restored():
    got = PatchSweep.recovery(
        np.array([[2.0, -1.0, 0.5, np.nan]]), clean_diff=2.0, corrupt_diff=-1.0
    )
    np.testing.assert_allclose(got, [[1.0, 0.0, 0.5, np.nan]])
    sweep = PatchSweep(
        site="heads",
        tokens=["a", "b"],
        rows=["L0.H0", "L0.H1"],
        recovered=np.array([[0.1, np.nan], [1.0, 0.0]], np.float32),
        clean_diff=2.0,
        corrupt_diff=-1.0,
        target=" x",
        foil=" y",
        clean="A B",
        corrupt="C D",
        partial=True,
    )
    assert sweep.done() == 3
    rows = sweep.table().rows
    assert rows[1][:4] == ["L0.H0", 0, 0, 1] and np.isnan(rows[1][5])
    assert rows[2][:3] == ["L0.H1", 0, 1]
    extras, note = sweep.to_arrays()
    back = PatchSweep.from_arrays(extras, note, sweep.tokens)
    assert back.partial and back.rows == sweep.rows
    np.testing.assert_array_equal(back.recovered, sweep.recovered)
