"""Drift measures and tables (analysis/drift.py) against plain formulas and hand-made records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuroscope_tui.analysis.connectivity import linear_cka as feature_space_cka
from neuroscope_tui.analysis.drift import (
    changed_head_types,
    drift_rows,
    lens_agreement,
    lens_split,
    linear_cka,
    mean_cosine,
    mean_kl,
    top_moved_heads,
    top_moved_neurons,
)
from neuroscope_tui.analysis.drift_record import HEAD_SCORE_NAMES, Checkpoint, DriftResult


def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from its definition: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), H the centring
    matrix, K = X X^T, L = Y Y^T (no centring of the columns beforehand)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.mark.parametrize(("n", "d1", "d2"), [(20, 8, 8), (20, 40, 30), (50, 5, 7)])
def test_cka_equals_the_hsic_definition(n, d1, d2):
    rng = np.random.default_rng(n + d1)
    x = rng.normal(size=(n, d1)) + 5.0
    y = x[:, :1] * rng.normal(size=(1, d2)) + rng.normal(size=(n, d2))
    got = linear_cka(x, y)
    assert got == pytest.approx(hsic_cka(x, y), rel=1e-9)
    assert got == pytest.approx(feature_space_cka(x, y), rel=1e-9)
    assert 0.0 < got < 1.0


@pytest.mark.parametrize(("n", "d"), [(30, 10), (10, 30)])
def test_cka_invariances(n, d):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d))
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))  # a random orthogonal matrix
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, 7.5 * x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x + 100.0) == pytest.approx(1.0, abs=1e-10)  # centring
    assert linear_cka(x, 3.0 * (x @ q) - 2.0) == pytest.approx(1.0, abs=1e-10)
    # not invariant to an anisotropic scaling: the measure can fail
    assert linear_cka(x, x * np.linspace(0.1, 10.0, d)) < 0.99
    assert linear_cka(x, rng.normal(size=(n, d))) < 0.9
    assert np.isnan(linear_cka(x, np.ones((n, d))))
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(x, x[:-1])


def test_mean_cosine_and_kl_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    y = np.array([[1.0, 1.0], [0.0, -3.0], [0.0, 0.0]])
    assert mean_cosine(x, y) == pytest.approx((np.sqrt(0.5) - 1.0 + 1.0) / 3)
    p = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    q = np.log(np.array([[0.25, 0.75], [0.9, 0.1]]))
    kl0 = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    assert mean_kl(p, q) == pytest.approx(kl0 / 2)
    assert mean_kl(p, p) == 0.0


def test_lens_agreement_and_split():
    base = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 7, 8]])
    other = np.array([[1, 2, 3, 4], [1, 2, 0, 0], [0, 0, 0, 8]])
    agree = lens_agreement(base, other)
    assert agree.tolist() == [1.0, 0.5, 0.25]
    assert lens_split(agree) == 2
    assert lens_split(np.array([1.0, 0.2, 0.9, 0.4, 0.1])) == 3  # stays below from 3 on
    assert lens_split(np.array([0.4, 0.3])) == 0
    assert lens_split(np.array([1.0, 0.2, 0.6])) == -1  # agrees again at the output


def record() -> DriftResult:
    """Base + 2 checkpoints, 2 layers, 3 heads, 4 neurons, 2 prompts, hand-made."""
    res = DriftResult(
        base=Checkpoint("b", "base"),
        checkpoints=[Checkpoint("c1", "checkpoint-1", 1), Checkpoint("c2", "checkpoint-2", 2)],
        prompts=["one", "two"],
        n_layers=2,
        n_heads=3,
        d_mlp=4,
    )
    neurons = np.zeros((3, 2, 4), np.float32)
    neurons[1, 1] = [0.0, -3.0, 1.0, 0.5]
    neurons[2, 1] = [0.0, -3.0, 2.0, 0.5]
    heads = {name: np.zeros((3, 2, 3), np.float32) for name in HEAD_SCORE_NAMES}
    heads["prev"][1, 1] = [0.0, 0.9, 0.1]
    heads["induction"][1, 1] = [0.0, 0.0, -0.4]
    res.arrays = {
        "neurons.mean": neurons,
        **{f"heads.{k}": v for k, v in heads.items()},
        "cka.base": np.array([[1.0, 0.8], [1.0, 0.5]], np.float32),
        "weights.base": np.array([[0.0, 0.1], [0.0, np.nan]], np.float32),
        "weights.module.base": np.array([[0.0, 0.1], [0.0, 0.2]], np.float32),
        "kl.base": np.array([[0.1, 0.3], [0.2, 0.4]], np.float32),
        "lens.split.base": np.array([-1, 1], np.int32),
    }
    res.modules = ["model.embed_tokens", "model.layers.1.mlp.up_proj"]
    res.head_types = [{"1.1": "", "1.0": "S"}, {"1.1": "P", "1.0": "S"}, {"1.1": "P", "1.0": ""}]
    return res


def test_top_moved_neurons_and_heads():
    res = record()
    assert top_moved_neurons(res, 0, 1, k=2) == [(1, -3.0), (2, 1.0)]
    assert top_moved_neurons(res, 1, 1, k=1, ref="prev") == [(2, 1.0)]
    assert top_moved_neurons(res, 0, 0, k=1)[0][1] == 0.0
    moved = top_moved_heads(res, 0, 1, k=2)
    assert moved[0][:2] == (1, "prev") and moved[0][2] == pytest.approx(0.9)
    assert moved[1][:2] == (2, "induction") and moved[1][2] == pytest.approx(-0.4)
    with pytest.raises(ValueError, match="ref"):
        top_moved_neurons(res, 0, 1, ref="next")


def test_changed_head_types():
    res = record()
    assert changed_head_types(res, 0) == [(1, 1, "", "P")]
    assert changed_head_types(res, 1) == [(1, 0, "S", ""), (1, 1, "", "P")]
    assert changed_head_types(res, 1, ref="prev") == [(1, 0, "S", "")]
    assert changed_head_types(res, 1, layer=0) == []


def test_drift_rows_are_json_tables():
    res = record()
    tables = drift_rows(res, k=2)
    json.dumps(tables, allow_nan=False)  # NaN became None
    layers = tables["layers"]
    assert len(layers) == 4 and layers[1]["cka_base"] == pytest.approx(0.8)
    assert layers[3]["weights_base"] is None and layers[3]["cka_prev"] is None
    assert layers[0]["checkpoint"] == "checkpoint-1" and layers[2]["step"] == 2
    assert len(tables["modules"]) == 4 and tables["modules"][3]["base"] == pytest.approx(0.2)
    assert len(tables["heads"]) == 2 * 2 * 3
    head = next(
        r
        for r in tables["heads"]
        if (r["checkpoint"], r["layer"], r["head"]) == ("checkpoint-1", 1, 1)
    )
    assert head["prev_delta"] == pytest.approx(0.9) and head["types"] == "P"
    assert head["types_base"] == ""
    top = [r for r in tables["neurons"] if r["checkpoint"] == "checkpoint-1" and r["layer"] == 1]
    assert [(r["rank"], r["neuron"]) for r in top] == [(0, 1), (1, 2)]
    assert [r["kl_base"] for r in tables["prompts"]] == pytest.approx([0.1, 0.3, 0.2, 0.4])
    assert tables["checkpoints"][1]["lens_split"] == 1
    assert tables["checkpoints"][0]["kl_base"] == pytest.approx(0.2)
