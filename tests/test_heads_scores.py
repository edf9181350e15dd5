"""Head scores and types on hand-built patterns whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroscope_tui.analysis.heads import (
    HEAD_TYPES,
    SCORE_NAMES,
    Thresholds,
    head_scores,
    query_scores_from_pattern,
    redundant_pairs,
    scores_from_pattern,
    summarise,
    type_letters,
)
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

# a b c d e | a b c d e : the second half repeats the first (period 5)
REPEATED = [7, 3, 9, 4, 2, 7, 3, 9, 4, 2]
PERIOD = 5


def uniform(n: int) -> np.ndarray:
    """Every query spreads its weight evenly over the keys it can see."""
    p = np.tril(np.ones((n, n)))
    return p / p.sum(axis=1, keepdims=True)


def one_key(n: int, key_of: callable) -> np.ndarray:
    """Query t puts all its weight on key_of(t) (clamped into 0..t)."""
    p = np.zeros((n, n))
    for t in range(n):
        p[t, min(max(key_of(t), 0), t)] = 1.0
    return p


def test_previous_token_head():
    s = scores_from_pattern(one_key(10, lambda t: t - 1), REPEATED)
    assert s["prev"] == 1.0
    assert s["self"] == 0.0
    assert s["entropy"] == 0.0
    # only query 1's previous token is the first token: 1 of 9 queries
    assert s["first"] == pytest.approx(1 / 9)
    # in the second half, the previous token of query t is t-1, whose own previous is not t
    assert s["induction"] == 0.0 and s["dup"] == 0.0


def test_uniform_head_has_normalised_entropy_one():
    n = 10
    s = scores_from_pattern(uniform(n), REPEATED)
    assert s["entropy"] == pytest.approx(1.0)
    expected_first = np.mean([1 / (t + 1) for t in range(1, n)])
    assert s["first"] == pytest.approx(expected_first)
    assert s["prev"] == pytest.approx(expected_first)
    assert s["self"] == pytest.approx(expected_first)
    # repeated queries t = 5..9 each see exactly one earlier copy
    assert s["dup"] == pytest.approx(np.mean([1 / (t + 1) for t in range(5, 10)]))


def test_raw_entropy_is_in_nats():
    q = query_scores_from_pattern(uniform(4), [1, 2, 3, 4])
    np.testing.assert_allclose(q["entropy"], [0, math.log(2), math.log(3), math.log(4)])


def test_induction_head_scores_one_on_the_repeat():
    # query t in the second half looks at the token after its earlier copy: t - PERIOD + 1
    s = scores_from_pattern(one_key(10, lambda t: t - PERIOD + 1 if t >= PERIOD else 0), REPEATED)
    assert s["induction"] == 1.0
    assert s["dup"] == 0.0
    assert s["prev"] == pytest.approx(1 / 9)  # query 1 falls back to key 0, its previous token


def test_duplicate_token_head_scores_one_on_the_repeat():
    s = scores_from_pattern(one_key(10, lambda t: t - PERIOD if t >= PERIOD else 0), REPEATED)
    assert s["dup"] == 1.0
    assert s["induction"] == 0.0


def test_sink_head():
    s = scores_from_pattern(one_key(10, lambda t: 0), REPEATED)
    assert s["first"] == 1.0 and s["self"] == 0.0 and s["entropy"] == 0.0


def test_self_head():
    s = scores_from_pattern(np.eye(10), REPEATED)
    assert s["self"] == 1.0 and s["prev"] == 0.0 and s["first"] == 0.0


def test_no_repeats_leaves_dup_and_induction_undefined():
    s = scores_from_pattern(uniform(5), [1, 2, 3, 4, 5])
    assert math.isnan(s["dup"]) and math.isnan(s["induction"])
    assert not math.isnan(s["prev"])


def test_weights_above_the_diagonal_are_ignored():
    p = uniform(6)
    noisy = p + np.triu(np.full((6, 6), 5.0), k=1)
    assert scores_from_pattern(noisy, REPEATED[:6]) == scores_from_pattern(p, REPEATED[:6])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="does not match"):
        query_scores_from_pattern(np.eye(4), [1, 2, 3])


def test_redundant_pairs_find_identical_heads_only():
    n = 10
    pats = {
        (0, 0): one_key(n, lambda t: t - 1),
        (1, 2): one_key(n, lambda t: t - 1),
        (0, 1): uniform(n),
        (1, 0): one_key(n, lambda t: 0),
    }
    pairs = redundant_pairs(pats, 0.95)
    assert [(a, b) for a, b, _ in pairs] == [((0, 0), (1, 2))]
    assert pairs[0][2] == pytest.approx(1.0)
    # a sink and a previous-token head share only query 1's weight: far below the threshold
    assert redundant_pairs({(0, 0): pats[(0, 0)], (1, 0): pats[(1, 0)]}, 0.5) == []


def _trace_from_patterns(patterns: list[list[np.ndarray]], ids: list[int]) -> Trace:
    """A Trace whose heads.* arrays [L, T, H] come from per-head hand-built patterns."""
    n_layers, n_heads = len(patterns), len(patterns[0])
    per_head = [[query_scores_from_pattern(p, ids) for p in layer] for layer in patterns]
    arrays = {
        f"heads.{name}": np.stack(
            [
                np.stack([per_head[li][h][name] for h in range(n_heads)], axis=1)
                for li in range(n_layers)
            ]
        ).astype(np.float32)
        for name in SCORE_NAMES
    }
    info = ModelInfo(name="hand", n_layers=n_layers, n_heads=n_heads)
    return Trace(info, CaptureSpec(), list(ids), [str(i) for i in ids], len(ids), arrays)


def test_trace_scores_and_types():
    n = 10
    prev = one_key(n, lambda t: t - 1)
    induction = one_key(n, lambda t: t - PERIOD + 1 if t >= PERIOD else 0)
    dup = one_key(n, lambda t: t - PERIOD if t >= PERIOD else 0)
    sink = one_key(n, lambda t: 0)
    trace = _trace_from_patterns([[prev, induction, uniform(n)], [dup, sink, prev]], REPEATED)
    assert trace.arrays["heads.prev"].shape == (2, n, 3)
    trace.arrays["pattern.0.0"] = prev.astype(np.float32)
    trace.arrays["pattern.1.2"] = prev.astype(np.float32)
    trace.arrays["pattern.0.2"] = uniform(n).astype(np.float32)

    scores = head_scores(trace)
    assert scores.values["prev"].shape == (2, 3)
    assert scores.score("prev", 0, 0) == pytest.approx(1.0)
    assert scores.score("induction", 0, 1) == pytest.approx(1.0)
    assert scores.score("entropy", 0, 2) == pytest.approx(1.0, abs=1e-6)
    assert scores.types[(0, 0)] == ["previous-token", "redundant"]
    assert scores.types[(0, 1)] == ["induction"]
    assert scores.types[(0, 2)] == ["near-uniform"]
    assert scores.types[(1, 0)] == ["duplicate-token"]
    assert scores.types[(1, 1)] == ["sink"]
    assert scores.types[(1, 2)] == ["previous-token", "redundant"]
    assert type_letters(scores.types[(0, 0)]) == "PR"

    rows = scores.rows()
    assert len(rows) == 6
    assert rows[1]["layer"] == 0 and rows[1]["head"] == 1 and rows[1]["types"] == ["induction"]
    assert set(SCORE_NAMES) <= set(rows[0])


def test_thresholds_move_types():
    n = 10
    trace = _trace_from_patterns([[uniform(n)]], REPEATED)
    assert head_scores(trace).types[(0, 0)] == ["near-uniform"]
    assert head_scores(trace, Thresholds(entropy=1.01)).types[(0, 0)] == []


def test_summarise_matches_per_pattern_scores():
    rng = np.random.default_rng(0)
    n = 12
    ids = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, n)) + np.triu(np.full((n, n), -np.inf), k=1)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = query_scores_from_pattern(p, ids)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    stacked = {k: v[None, :, None] for k, v in rows.items()}  # [1, T, 1]
    summary = summarise(stacked, ids)
    single = scores_from_pattern(p, ids)
    for name in SCORE_NAMES:
        assert summary[name].shape == (1, 1)
        assert summary[name][0, 0] == pytest.approx(single[name])


def test_every_type_has_a_distinct_letter():
    letters = [letter for letter, _ in HEAD_TYPES.values()]
    assert len(set(letters)) == len(letters)


def test_induction_needs_an_earlier_key():
    # query 1 repeats token 5: key 0 is an earlier copy (dup); key 1 follows a 5 but is the
    # query itself, not an earlier key, so it is no induction target
    q = query_scores_from_pattern(np.array([[1.0, 0.0], [0.25, 0.75]]), [5, 5])
    assert q["dup"][1] == 0.25
    assert q["induction"][1] == 0.0


def test_heads_export_table():
    from neuroscope_tui.analysis.exports import EXPORTS, table_function

    assert "heads" in EXPORTS
    n = 10
    trace = _trace_from_patterns([[uniform(n), one_key(n, lambda t: t - 1)]], REPEATED)
    table = table_function("heads")(trace)
    assert table.columns[:2] == ["layer", "head"] and table.columns[-1] == "types"
    assert len(table.rows) == 2
    prev_col = table.columns.index("prev")
    assert table.rows[1][prev_col] == pytest.approx(1.0)
    assert table.rows[1][-1] == "previous-token"


def test_heads_export_without_scores_is_a_snapshot_error():
    from neuroscope_tui.analysis.heads import heads_table
    from neuroscope_tui.errors import SnapshotError

    trace = Trace(ModelInfo(name="x", n_layers=1, n_heads=1), CaptureSpec(), [1], ["a"], 1, {})
    with pytest.raises(SnapshotError, match="no attention head scores"):
        heads_table(trace)


def test_uniform_heads_are_not_redundant_with_each_other():
    n = 10
    pats = {(0, 0): uniform(n), (0, 1): uniform(n), (1, 0): one_key(n, lambda t: t - 1)}
    assert redundant_pairs(pats, 0.5) == []


def test_docs_state_the_thresholds_in_use():
    from pathlib import Path

    from neuroscope_tui.analysis.heads import DEFAULT_THRESHOLDS as T

    doc = (Path(__file__).parent.parent / "docs" / "heads.md").read_text()
    for rule in (
        f"`prev` >= {T.prev}",
        f"`induction` >= {T.induction}",
        f"`dup` >= {T.dup}",
        f"`first` >= {T.first}",
        f"`entropy` >= {T.entropy}",
        f"similarity >= {T.redundant}",
    ):
        assert rule in doc
