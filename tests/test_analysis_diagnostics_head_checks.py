"""analysis/diagnostics/head_checks.py: redundant pairs and near-uniform heads."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_diagnostics import T, clean_trace, inputs_of, random_patterns
from neuroscope_tui.analysis.diagnostics import head_checks
from neuroscope_tui.analysis.diagnostics.findings import DetectorSkipped


def sharp(seed, n=T):
    """Every head of every layer with sharp (low-entropy) random patterns."""
    rng = np.random.default_rng(100 + seed)
    return {(layer, h): p for layer in range(4) for h, p in enumerate(random_patterns(rng, n, 4.0))}


def test_sharp_distinct_heads_give_nothing():
    inputs = inputs_of(*(clean_trace(s, patterns=sharp(s)) for s in range(3)))
    assert head_checks.detect(inputs) == []


def test_identical_heads_are_a_warning_pointing_at_both():
    traces = []
    for s in range(3):
        pats = sharp(s)
        pats[(1, 1)] = pats[(1, 0)].copy()
        traces.append(clean_trace(s, patterns=pats))
    (f,) = head_checks.detect(inputs_of(*traces))
    assert f.severity == "warning" and f.figures["n_identical"] == 1
    assert f.figures["pairs"][0][:2] == [[1, 0], [1, 1]]
    assert f.figures["pairs"][0][3:] == [3, 3]  # redundant on 3 of 3 prompts
    assert [(c.view, c.layer, c.head) for c in f.cells] == [("heads", 1, 0), ("heads", 1, 1)]
    assert "identical" in f.title


def test_a_pair_redundant_on_one_prompt_of_three_is_chance():
    traces = []
    for s in range(3):
        pats = sharp(s)
        if s == 0:
            pats[(1, 1)] = pats[(1, 0)].copy()
        traces.append(clean_trace(s, patterns=pats))
    assert head_checks.detect(inputs_of(*traces)) == []


def test_pairs_of_first_token_sinks_are_left_out():
    traces = []
    for s in range(2):
        pats = sharp(s)
        sink = np.zeros((T, T))
        sink[:, 0] = 1.0
        pats[(2, 0)] = sink
        pats[(3, 1)] = sink.copy()
        traces.append(clean_trace(s, patterns=pats))
    assert head_checks.detect(inputs_of(*traces)) == []


def test_diffuse_heads_are_near_uniform_info():
    (f,) = head_checks.detect(inputs_of(clean_trace(0), clean_trace(1)))
    assert f.severity == "info" and f.figures["n_uniform"] == f.figures["n_heads"] == 16
    assert f.cells[0].view == "heads"


def test_prompts_too_short_to_judge_uniformity_say_nothing():
    assert head_checks.detect(inputs_of(clean_trace(0, n_tokens=8))) == []


def test_without_patterns_or_scores_it_is_skipped():
    trace = clean_trace(0)
    trace.arrays = {k: v for k, v in trace.arrays.items() if not k.startswith(("pattern", "heads"))}
    with pytest.raises(DetectorSkipped, match="patterns"):
        head_checks.detect(inputs_of(trace))
