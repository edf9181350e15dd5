"""Attention rollout and attention flow on hand-built patterns with known answers."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from neuroscope_tui.analysis.flow import (
    attention_flow,
    head_averaged_patterns,
    require_patterns,
    rollout,
    shares,
    with_residual,
)
from neuroscope_tui.errors import SnapshotError, UsageError
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

RNG = np.random.default_rng(2)


def causal_random(n_layers: int, n: int) -> np.ndarray:
    p = np.tril(RNG.random((n_layers, n, n)) ** 3)
    return p / p.sum(axis=-1, keepdims=True)


def previous_token(n: int) -> np.ndarray:
    """Every token puts all its attention on the previous one (token 0 on itself)."""
    p = np.zeros((n, n))
    p[0, 0] = 1
    p[np.arange(1, n), np.arange(n - 1)] = 1
    return p


def test_rollout_rows_sum_to_one():
    grid = rollout(causal_random(5, 9), position=8)
    assert np.allclose(grid.sum(axis=1), 1.0)
    assert (grid >= 0).all()


def test_rollout_hand_built_previous_token_chain():
    # one previous-token layer: A' row 2 = 0.5 e1 + 0.5 e2
    pats = np.stack([previous_token(3), previous_token(3)])
    grid = rollout(pats, position=2)
    assert np.allclose(grid[0], [0.0, 0.5, 0.5])
    # second layer: 0.5 (row 1 of layer 0) + 0.5 (row 2 of layer 0)
    # row 1 of layer 0 = 0.5 e0 + 0.5 e1 -> 0.25 e0 + 0.25 e1 + 0.25 e1 + 0.25 e2
    assert np.allclose(grid[1], [0.25, 0.5, 0.25])


def test_rollout_of_self_attention_stays_put():
    pats = np.stack([np.eye(4)] * 3)
    assert np.allclose(rollout(pats, 2), np.tile([0, 0, 1, 0], (3, 1)))


def test_rollout_matches_matrix_product():
    pats = causal_random(4, 6)
    mixed = with_residual(pats)
    expected = mixed[3] @ mixed[2] @ mixed[1] @ mixed[0]
    assert np.allclose(rollout(pats, 5)[3], expected[5])
    assert np.allclose(rollout(pats, 3)[1], (mixed[1] @ mixed[0])[3])


def networkx_flow(pats: np.ndarray, position: int, layer: int, source: int) -> float:
    """Max flow from input `source` to node (layer + 1, position), by networkx."""
    mixed = with_residual(pats)
    n = pats.shape[-1]
    g = nx.DiGraph()
    for k in range(layer + 1):
        for i in range(n):
            for j in range(i + 1):
                g.add_edge((k, j), (k + 1, i), capacity=mixed[k, i, j])
    return nx.maximum_flow_value(g, (0, source), (layer + 1, position))


def test_flow_of_one_layer_is_the_attention_weight():
    pats = causal_random(1, 5)
    flow = attention_flow(pats, position=4)
    assert np.allclose(flow[0], with_residual(pats)[0, 4], atol=1e-5)


def test_flow_matches_networkx_max_flow():
    pats = causal_random(3, 6)
    flow = attention_flow(pats, position=4)
    for layer in range(3):
        for j in range(6):
            expected = networkx_flow(pats, 4, layer, j) if j <= 4 else 0.0
            assert flow[layer, j] == pytest.approx(expected, abs=1e-5)


def test_flow_hand_built_bottleneck():
    # self-attention only: the position's own input pushes 1, everything else 0
    flow = attention_flow(np.stack([np.eye(4)] * 2), position=2)
    assert np.allclose(flow, [[0, 0, 1, 0], [0, 0, 1, 0]], atol=1e-6)


def test_flow_layers_subset_and_cancel():
    pats = causal_random(3, 5)
    part = attention_flow(pats, 4, layers=[2])
    assert np.isnan(part[0]).all() and np.isfinite(part[2]).all()
    stopped = attention_flow(pats, 4, cancel=lambda: True)
    assert np.isnan(stopped[:, :5]).all()


def test_shares_rows_sum_to_one():
    s = shares(attention_flow(causal_random(2, 5), 3))
    assert np.allclose(s.sum(axis=1), 1.0)


def test_bad_positions():
    with pytest.raises(UsageError, match="outside"):
        rollout(causal_random(1, 3), 3)
    with pytest.raises(UsageError, match="limited to the first 128"):
        attention_flow(np.stack([np.eye(130)]), 129)


def test_head_averaged_patterns_from_the_trace():
    trace = Trace(model=ModelInfo(name="toy", n_layers=2, n_heads=2), spec=CaptureSpec())
    trace.token_ids = [1, 2, 3]
    a, b, c = causal_random(3, 3)
    trace.arrays = {"pattern.0.-1": a, "pattern.1.0": b, "pattern.1.1": c}
    got = head_averaged_patterns(trace)
    assert np.allclose(got[0], a) and np.allclose(got[1], (b + c) / 2)
    del trace.arrays["pattern.1.1"]
    assert head_averaged_patterns(trace) is None
    with pytest.raises(SnapshotError, match="--no-layer-patterns"):
        require_patterns(trace)
