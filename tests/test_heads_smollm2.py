"""On the real SmolLM2-135M the induction probe finds induction and previous-token heads."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.analysis.heads import head_scores, query_scores_from_pattern
from neuroscope_tui.capture.probes import induction_probe

pytestmark = pytest.mark.smollm2


@pytest.fixture(scope="module")
def probe(smollm2):
    return induction_probe(smollm2, 50, seed=0)


def test_probe_finds_induction_and_previous_token_heads(probe):
    scores = head_scores(probe)
    induction = [h for h, types in scores.types.items() if "induction" in types]
    previous = [h for h, types in scores.types.items() if "previous-token" in types]
    assert len(induction) >= 3, scores.values["induction"].max()
    assert len(previous) >= 3
    # induction needs an earlier previous-token head to build on: none in the first layers
    assert min(layer for layer, _ in induction) > min(layer for layer, _ in previous)
    # a head without the skill puts about 1/(t+1) on the target; the best ones put most weight
    assert np.nanmax(scores.values["induction"]) > 0.7
    assert np.nanmax(scores.values["prev"]) > 0.7


def test_best_induction_head_pattern_looks_one_past_the_earlier_copy(probe):
    scores = head_scores(probe)
    layer, head = np.unravel_index(np.nanargmax(scores.values["induction"]), (30, 9))
    pattern = probe.get(f"pattern.{layer}.{head}")
    ids = probe.token_ids
    n = (len(ids) - 1) // 2  # BOS + n + n
    second_half = np.arange(1 + n, len(ids))
    # the argmax key of each second-half query (past the sink) is the token after its copy
    targets = second_half - n + 1
    hits = pattern[second_half, :][:, 1:].argmax(axis=1) + 1 == targets
    assert hits.mean() > 0.8
    per_query = query_scores_from_pattern(pattern, ids)
    assert per_query["induction"][second_half].mean() == pytest.approx(
        scores.score("induction", int(layer), int(head)), abs=1e-4
    )
