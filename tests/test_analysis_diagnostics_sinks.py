"""analysis/diagnostics/sinks.py: first-token and delimiter sinks on planted patterns."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_diagnostics import T, clean_inputs, clean_trace, inputs_of
from neuroscope_tui.analysis.diagnostics import sinks
from neuroscope_tui.analysis.diagnostics.findings import DetectorSkipped


def uniform(n=T):
    return np.tri(n) / np.arange(1, n + 1)[:, None]


def on_key(key, weight, n=T):
    """A causal pattern with `weight` on `key` for queries that can see it, the rest uniform."""
    p = uniform(n) * (1 - weight)
    p[key:, key] += weight
    p[:key] = uniform(n)[:key]
    return p


def test_clean_diffuse_heads_are_no_sinks():
    assert sinks.detect(clean_inputs(3)) == []


def test_first_token_sinks_are_summarised_per_layer_with_the_strongest_heads():
    planted = {(2, 0): on_key(0, 0.9), (2, 1): on_key(0, 0.7), (3, 3): on_key(0, 0.8)}
    inputs = inputs_of(clean_trace(0, patterns=planted), clean_trace(1, patterns=planted))
    (f,) = sinks.detect(inputs)
    assert f.severity == "info"
    assert f.figures["sink_layers"] == [2, 3] and f.figures["n_sink_heads"] == 3
    assert f.title.startswith("2 of 4 layers have first-token sink heads; 3 of 16 heads")
    assert [(c.view, c.layer, c.head) for c in f.cells] == [
        ("heads", 2, 0), ("heads", 3, 3), ("heads", 2, 1)
    ]  # fmt: skip
    # the weight: mean over queries t >= 1 of p[t, 0], computed here from the pattern
    expected = on_key(0, 0.9)[1:, 0].mean()
    assert f.figures["strongest"][0][2] == pytest.approx(expected, rel=1e-5)
    assert f.series["sink heads per layer"] == [0.0, 0.0, 2.0, 1.0]


def test_a_head_parked_on_a_full_stop_is_a_delimiter_sink():
    trace = clean_trace(0)
    stop = trace.token_text.index(".")
    trace = clean_trace(0, patterns={(3, 2): on_key(stop, 0.85)})
    found = sinks.detect(inputs_of(trace))
    (f,) = [f for f in found if "delimiter" in f.title]
    assert f.figures["n_sink_heads"] == 1 and f.figures["strongest"][0][:2] == [3, 2]
    assert (f.cells[0].layer, f.cells[0].head) == (3, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(".", True), (" ,", True), ("\n", True), ("</s>", True), ("<|im_end|>", True), ("", True),
     (" the", False), ("3", False), ("Hello.", False), (" é", False)],
)  # fmt: skip
def test_delimiters(text, expected):
    assert sinks.is_delimiter(text) is expected


def test_without_head_scores_it_is_skipped():
    trace = clean_trace(0)
    del trace.arrays["heads.first"]
    with pytest.raises(DetectorSkipped, match=r"heads\.first"):
        sinks.detect(inputs_of(trace))
