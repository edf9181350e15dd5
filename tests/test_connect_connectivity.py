"""Connectivity matrices checked against their defining formulas and invariances."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.analysis.connectivity import (
    available_measures,
    cka_matrix,
    connectivity,
    correlation_matrix,
    cosine_matrix,
    linear_cka,
    token_subset,
)
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

RNG = np.random.default_rng(0)


def random_orthogonal(d: int) -> np.ndarray:
    q, r = np.linalg.qr(RNG.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA by its HSIC definition with the centring matrix H (Kornblith et al. 2019, eq. 1)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_cka_with_itself_is_one():
    x = RNG.normal(size=(40, 12))
    assert linear_cka(x, x) == pytest.approx(1.0)


def test_cka_invariant_to_orthogonal_transform_and_isotropic_scaling():
    x = RNG.normal(size=(40, 12))
    y = RNG.normal(size=(40, 7)) + x[:, :7]
    q = random_orthogonal(12)
    base = linear_cka(x, y)
    assert 0.0 < base < 1.0
    assert linear_cka(x @ q, y) == pytest.approx(base)
    assert linear_cka(3.7 * x, y) == pytest.approx(base)
    assert linear_cka(x @ q * 0.01, 5 * y) == pytest.approx(base)
    assert linear_cka(x, x @ q * 2.5) == pytest.approx(1.0)


def test_cka_not_invariant_to_anisotropic_scaling():
    # the invariances above must not be vacuous: stretching one axis does change CKA
    x = RNG.normal(size=(40, 12))
    y = RNG.normal(size=(40, 12)) + x
    stretched = x * np.r_[20.0, np.ones(11)]
    assert linear_cka(stretched, y) != pytest.approx(linear_cka(x, y), abs=1e-3)


def test_cka_matches_hsic_formula():
    x = RNG.normal(size=(30, 9))
    y = np.tanh(x @ RNG.normal(size=(9, 5))) + 0.3 * RNG.normal(size=(30, 5))
    assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y))


def test_cka_matrix_matches_pairwise_cka():
    resid = RNG.normal(size=(4, 25, 8)).astype(np.float32)
    resid[2] = resid[1] @ random_orthogonal(8).astype(np.float32) * 3  # layer 2 ~ layer 1
    m = cka_matrix(resid)
    for a in range(4):
        for b in range(4):
            assert m[a, b] == pytest.approx(hsic_cka(resid[a], resid[b]), abs=1e-5)
    assert np.allclose(np.diag(m), 1.0)
    assert m[1, 2] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(m, m.T)


def test_cka_matrix_subsamples_long_runs_keeping_the_newest_token():
    idx = token_subset(5000, 100)
    assert len(idx) == 100 and idx[0] == 0 and idx[-1] == 4999
    resid = RNG.normal(size=(2, 300, 4))
    sub = token_subset(300, 50)
    assert cka_matrix(resid, max_tokens=50)[0, 1] == pytest.approx(
        hsic_cka(resid[0, sub], resid[1, sub])
    )


def test_correlation_matches_numpy_corrcoef():
    values = RNG.normal(size=(5, 30))
    values[3] = 2 * values[0] + 1  # perfectly correlated with layer 0
    values[4] = -values[1]
    c = correlation_matrix(values)
    assert np.allclose(c, np.corrcoef(values))
    assert c[0, 3] == pytest.approx(1.0) and c[1, 4] == pytest.approx(-1.0)


def test_correlation_constant_layer_is_nan_and_nan_tokens_left_out():
    values = RNG.normal(size=(3, 20))
    values[1] = 4.0
    values[2, 5] = np.nan
    c = correlation_matrix(values)
    assert np.isnan(c[1]).all() and np.isnan(c[:, 1]).all()
    keep = np.arange(20) != 5
    assert c[0, 2] == pytest.approx(np.corrcoef(values[0, keep], values[2, keep])[0, 1])


def test_cosine_matrix_matches_direct_mean_of_cosines():
    resid = RNG.normal(size=(3, 10, 6))
    m = cosine_matrix(resid)
    for a in range(3):
        for b in range(3):
            na, nb = np.linalg.norm(resid[a], axis=1), np.linalg.norm(resid[b], axis=1)
            cos = [resid[a, t] @ resid[b, t] / na[t] / nb[t] for t in range(10)]
            assert m[a, b] == pytest.approx(np.mean(cos))


def make_trace(with_full: bool) -> Trace:
    trace = Trace(model=ModelInfo(name="toy", n_layers=3), spec=CaptureSpec(full_layers=None))
    rows = {
        "resid.norm": RNG.random((3, 12)),
        "attn.norm": RNG.random((3, 12)),
        "mlp.norm": RNG.random((3, 12)),
    }
    if with_full:
        rows["resid.full"] = RNG.normal(size=(3, 12, 4)).astype(np.float32)
    trace.append(list(range(12)), [f"t{i}" for i in range(12)], rows)
    return trace


def test_connectivity_on_a_trace_and_its_errors():
    trace = make_trace(with_full=True)
    assert available_measures(trace) == [
        "corr resid.norm",
        "corr attn.norm",
        "corr mlp.norm",
        "cka",
        "cosine",
    ]
    m, layers = connectivity(trace, "corr mlp.norm")
    assert layers == [0, 1, 2] and np.allclose(m, np.corrcoef(trace.get("mlp.norm")))
    m, _ = connectivity(trace, "cka")
    assert m.shape == (3, 3)
    bare = make_trace(with_full=False)
    with pytest.raises(SnapshotError, match="--full-layers"):
        connectivity(bare, "cka")
    with pytest.raises(SnapshotError, match="unknown connectivity measure"):
        connectivity(bare, "nope")
