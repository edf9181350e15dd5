"""The heatmap metrics and normalisations, on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.analysis.metrics import (
    METRICS,
    NORMALISATIONS,
    metric_values,
    next_metric,
    next_normalisation,
    normalise,
    scale_bounds,
    value_range,
)
from neuroscope_tui.errors import NeuroscopeError, UsageError
from neuroscope_tui.trace import ModelInfo, Trace


def _trace(arrays: dict[str, np.ndarray], n_layers: int = 2) -> Trace:
    n_tokens = next(iter(arrays.values())).shape[1] if arrays else 3
    return Trace(
        model=ModelInfo(name="hand", n_layers=n_layers),
        token_ids=list(range(n_tokens)),
        token_text=[f"t{i}" for i in range(n_tokens)],
        n_prompt=2,
        arrays=arrays,
    )


def test_every_metric_the_issue_asks_for_is_registered_in_cycle_order():
    assert list(METRICS) == [
        "resid.norm",
        "attn.norm",
        "mlp.norm",
        "resid.max_abs",
        "neurons.zero_frac",
        "resid.delta",
    ]
    assert NORMALISATIONS == ("global", "per layer", "per token")


def test_metric_reads_its_array_and_fills_nan_when_not_recorded():
    rng = np.random.default_rng(0)
    resid = rng.random((2, 4)).astype(np.float32)
    trace = _trace({"resid.norm": resid})
    np.testing.assert_array_equal(metric_values(trace, "resid.norm"), resid)
    missing = metric_values(trace, "mlp.norm")
    assert missing.shape == (2, 4)
    assert np.isnan(missing).all()


def test_block_change_metric_matches_its_formula():
    # resid.delta is ||x_out - x_in|| / ||x_in||: build it from vectors and check the reader.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 8))  # [layer+1, token, d_model]: stream before/after blocks
    delta = np.linalg.norm(x[1:] - x[:-1], axis=-1) / np.linalg.norm(x[:-1], axis=-1)
    trace = _trace({"resid.delta": delta.astype(np.float32)})
    np.testing.assert_allclose(metric_values(trace, "resid.delta"), delta, rtol=1e-6)


def test_unknown_metric_is_one_user_sentence():
    with pytest.raises(UsageError, match=r"resid\.norm") as info:
        metric_values(_trace({}), "nope")
    assert isinstance(info.value, NeuroscopeError)


def test_cycles_wrap_around():
    names = list(METRICS)
    assert next_metric(names[-1]) == names[0]
    assert next_metric(names[0]) == names[1]
    assert next_normalisation("per token") == "global"
    assert next_normalisation("global") == "per layer"


def test_global_normalisation_is_min_max_over_all_cells():
    v = np.array([[0.0, 5.0], [10.0, 2.5]])
    np.testing.assert_allclose(normalise(v, "global"), [[0.0, 0.5], [1.0, 0.25]])


def test_per_layer_normalisation_scales_each_row():
    v = np.array([[1.0, 2.0, 3.0], [100.0, 300.0, 200.0]])
    np.testing.assert_allclose(normalise(v, "per layer"), [[0, 0.5, 1], [0, 1, 0.5]])


def test_per_token_normalisation_scales_each_column():
    v = np.array([[1.0, 30.0], [3.0, 10.0], [2.0, 20.0]])
    np.testing.assert_allclose(normalise(v, "per token"), [[0, 1], [1, 0], [0.5, 0.5]])


def test_normalisation_keeps_nan_and_ignores_it_for_the_range():
    v = np.array([[np.nan, 2.0, 4.0], [np.nan, 0.0, np.nan]])
    out = normalise(v, "global")
    assert np.isnan(out[0, 0]) and np.isnan(out[1, 0]) and np.isnan(out[1, 2])
    np.testing.assert_allclose(out[0, 1:], [0.5, 1.0])
    assert out[1, 1] == 0.0
    per_token = normalise(v, "per token")
    assert np.isnan(per_token[:, 0]).all()  # an all-NaN column stays empty
    assert per_token[0, 2] == 0.5  # one finite value: no contrast -> mid-scale


def test_constant_groups_map_to_mid_scale():
    v = np.full((2, 3), 7.0)
    for mode in NORMALISATIONS:
        np.testing.assert_array_equal(normalise(v, mode), np.full((2, 3), 0.5))
    rows = normalise(np.array([[1.0, 1.0], [0.0, 2.0]]), "per layer")
    np.testing.assert_allclose(rows, [[0.5, 0.5], [0.0, 1.0]])


def test_infinities_clip_to_the_ends():
    out = normalise(np.array([[0.0, 1.0, np.inf, -np.inf]]), "global")
    np.testing.assert_allclose(out, [[0.0, 1.0, 1.0, 0.0]])


def test_normalised_values_always_lie_in_unit_interval():
    rng = np.random.default_rng(2)
    v = rng.normal(scale=1e4, size=(7, 11))
    v[rng.random(v.shape) < 0.2] = np.nan
    for mode in NORMALISATIONS:
        out = normalise(v, mode)
        finite = out[~np.isnan(out)]
        assert finite.min() >= 0.0 and finite.max() <= 1.0
        np.testing.assert_array_equal(np.isnan(out), np.isnan(v))


def test_normalise_rejects_unknown_mode_and_handles_empty():
    with pytest.raises(UsageError, match="per layer"):
        normalise(np.zeros((2, 2)), "log")
    assert normalise(np.zeros((3, 0)), "global").shape == (3, 0)
    assert np.isnan(normalise(np.full((2, 2), np.nan), "global")).all()


def test_value_range_ignores_nan():
    assert value_range(np.array([[np.nan, 1.0], [-2.0, 3.0]])) == (-2.0, 3.0)
    lo, hi = value_range(np.full((1, 2), np.nan))
    assert np.isnan(lo) and np.isnan(hi)


def test_clipping_outliers_gives_the_other_cells_the_scale():
    # one massive activation (an attention sink at token 0) among ordinary values
    row = np.array([5000.0, 500.0, 520.0, 540.0, 560.0, 580.0, 600.0, 620.0, 640.0])
    plain = normalise(row[None, :], "per layer")
    assert plain[0, 1:].max() < 0.04  # min-max: every ordinary cell near the bottom colour
    clipped = normalise(row[None, :], "per layer", clip_outliers=True)
    q1, q3 = np.percentile(row, [25, 75])
    hi = q3 + 3.0 * (q3 - q1)  # Tukey's far-out fence, independently computed
    assert hi < 5000.0
    np.testing.assert_allclose(clipped[0, 1:], (row[1:] - 500.0) / (hi - 500.0), rtol=1e-6)
    assert clipped[0, 0] == 1.0  # the outlier takes the top colour


def test_clipping_keeps_groups_without_outliers_and_with_zero_iqr_as_min_max():
    rng = np.random.default_rng(3)
    v = rng.random((4, 50))  # uniform: the fences lie outside min and max
    for mode in NORMALISATIONS:
        np.testing.assert_allclose(normalise(v, mode, clip_outliers=True), normalise(v, mode))
    steps = np.array([[0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0]])  # IQR 0: nothing to fence
    np.testing.assert_allclose(
        normalise(steps, "global", clip_outliers=True), normalise(steps, "global")
    )


def test_clipping_is_nan_safe_and_scale_bounds_name_the_fences():
    v = np.array([[np.nan, 1.0, 2.0, 3.0, 4.0, 100.0], [np.nan] * 6])
    out = normalise(v, "per layer", clip_outliers=True)
    assert np.isnan(out[1]).all() and np.isnan(out[0, 0])
    assert out[0, 5] == 1.0 and out[0, 1] == 0.0
    q1, q3 = np.nanpercentile(v, [25, 75])
    lo, hi = scale_bounds(v, "global", clip_outliers=True)
    assert (lo, hi) == (1.0, pytest.approx(q3 + 3 * (q3 - q1)))
    assert scale_bounds(v, "global") == (1.0, 100.0)
    assert scale_bounds(v, "per layer", clip_outliers=True) == (1.0, 100.0)
