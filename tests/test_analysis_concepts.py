"""Per-layer concept probes on synthetic activations with known answers, and against a direct
scikit-learn / numpy computation."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.analysis.concepts import (
    best_layer,
    cross_validate,
    fit_concept,
    fit_probes,
    mean_difference,
    project,
    sign_accuracy,
    transfer_scores,
    worst_examples,
)


def planted(n=60, layers=4, d=16, at=2, strength=4.0, seed=0):
    """Noise everywhere; at layer `at` label 0 sits `strength` along e_3, label 1 opposite."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, layers, d)).astype(np.float32)
    y = np.arange(n) % 2
    x[:, at, 3] += np.where(y == 0, strength / 2, -strength / 2)
    return x, y


def test_mean_difference_matches_numpy_and_finds_the_planted_axis():
    x, y = planted()
    u, mid = mean_difference(x, y)
    m0, m1 = x[y == 0].mean(0), x[y == 1].mean(0)
    expect = (m0 - m1) / np.linalg.norm(m0 - m1, axis=-1, keepdims=True)
    np.testing.assert_allclose(u, expect, atol=1e-6)
    np.testing.assert_allclose(mid, np.einsum("ld,ld->l", expect, (m0 + m1) / 2), atol=1e-5)
    assert np.argmax(np.abs(u[2])) == 3 and u[2, 3] > 0.9  # points toward label 0
    p = project(x, u, mid)
    np.testing.assert_allclose(p, np.einsum("nld,ld->nl", x, u) - mid, atol=1e-4)
    acc = sign_accuracy(p, y)
    assert acc[2] > 0.95 and max(acc[0], acc[1], acc[3]) < 0.8


def test_cross_validated_accuracy_peaks_at_the_planted_layer():
    x, y = planted()
    acc, margins = cross_validate(x, y, folds=5)
    assert best_layer(acc) == 2 and acc[2] > 0.85
    assert max(acc[0], acc[1], acc[3]) < 0.75
    # margins are positive exactly where the out-of-fold probe was right
    assert (margins[:, 2] > 0).mean() == pytest.approx(acc[2])


def test_random_labels_give_chance_accuracy_no_leakage_between_folds():
    # 200 dimensions and 60 examples: a probe fit on all the data separates anything, so a
    # scaler or a probe that saw the held-out fold would score far above chance here
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3, 200)).astype(np.float32)
    y = rng.permutation(np.arange(60) % 2)
    acc, _ = cross_validate(x, y, folds=5)
    assert np.all(acc < 0.75) and acc.mean() < 0.65
    w, b = fit_probes(x, y)
    train = ((np.einsum("nld,ld->nl", x, w) + b > 0).astype(int) == y[:, None]).mean(0)
    assert np.all(train == 1.0)  # the same data in-sample is perfectly separated: leakage shows


def test_cross_validation_equals_sklearn_with_the_same_folds():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = planted(strength=1.5)
    acc, _ = cross_validate(x, y, folds=4, seed=3)
    for layer in range(x.shape[1]):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        cv = StratifiedKFold(4, shuffle=True, random_state=3)
        ref = cross_val_score(model, x[:, layer].astype(np.float64), y, cv=cv).mean()
        assert acc[layer] == pytest.approx(ref, abs=1e-6)


def test_probe_weights_in_raw_units_reproduce_sklearn_decisions():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = planted(strength=1.0)
    w, b = fit_probes(x, y)
    for layer in range(x.shape[1]):
        xl = x[:, layer].astype(np.float64)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(xl, y)
        np.testing.assert_allclose(xl @ w[layer] + b[layer], model.decision_function(xl), atol=1e-3)


def test_transfer_is_high_where_the_second_set_shares_the_direction():
    x, y = planted(at=2)
    # second set: the same axis at layer 2 but every projection shifted (another language);
    # at layer 1 a different axis separates it, which the first set's direction cannot see
    x2, y2 = planted(n=40, at=2, seed=5)
    x2[:, 2, 3] += 10.0
    x2[:, 1, 7] += np.where(y2 == 0, 3.0, -3.0)
    fit = fit_concept(x, y, transfer_x=x2, transfer_y=y2)
    assert fit.transfer_accuracy[2] > 0.9 and fit.transfer_auc[2] > 0.95
    assert fit.transfer_accuracy[1] < 0.8 and fit.transfer_auc[1] < 0.8
    # the shift alone would put every example on label 0's side with the first set's midpoint
    assert sign_accuracy(fit.transfer_projections, y2)[2] == pytest.approx(0.5)


def test_transfer_auc_counts_ties_as_half():
    p = np.array([[1.0], [1.0], [0.0], [1.0]])
    _, auc = transfer_scores(p, np.array([0, 0, 1, 1]))
    assert auc[0] == pytest.approx((1 + 0.5 + 1 + 0.5) / 4)


def test_worst_examples_lists_only_the_wrong_side_worst_first():
    p = np.array([[3.0], [-2.0], [-0.5], [1.0], [-4.0]])
    y = np.array([0, 0, 0, 1, 1])  # example 1, 2 wrong (label 0 below 0), 3 wrong (label 1 above)
    assert worst_examples(p, y, 0) == [1, 3, 2]


def test_one_label_or_too_few_examples_is_refused():
    x, _ = planted(n=6)
    with pytest.raises(ValueError):
        mean_difference(x, np.zeros(6, int))
    with pytest.raises(ValueError):
        mean_difference(x, np.array([0, 1, 1, 1, 1, 1]))
