"""analysis/diagnostics/massive.py: massive residual dimensions on planted synthetic traces."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_diagnostics import L, clean_inputs, clean_trace, inputs_of
from neuroscope_tui.analysis.diagnostics import massive
from neuroscope_tui.analysis.diagnostics.findings import DetectorSkipped


def plant(trace, dim, token, value, layers):
    resid = trace.arrays["resid.full"]
    for layer in layers:
        resid[layer, token, dim] = value
    return trace


def test_clean_random_streams_have_no_massive_dimension():
    assert massive.detect(clean_inputs(4)) == []


def test_a_planted_first_token_dimension_is_named_with_its_layers_and_ratio():
    traces = [
        plant(clean_trace(s), dim=7, token=0, value=-500.0, layers=range(1, L)) for s in (0, 1)
    ]
    (f,) = massive.detect(inputs_of(*traces))
    fig = f.figures
    assert f.severity == "info" and fig["dimension"] == 7
    assert (fig["appears_layer"], fig["disappears_layer"]) == (1, L - 1)
    assert fig["not_first_token"] == 0 and fig["prompts_with"] == 2
    assert [t[:2] for t in fig["tokens"]] == [[0, 0], [1, 0]]
    # the peak, against an independent median of the layer's |x|
    ratios = [
        500.0 / np.median(np.abs(t.arrays["resid.full"][layer]))
        for t in traces
        for layer in range(1, L)
    ]
    assert fig["peak_ratio"] == pytest.approx(max(ratios), rel=1e-5)
    assert fig["peak_value"] == -500.0
    assert "dimension 7" in f.title and "at the first token" in f.title
    assert "from layer 1 on" in f.title
    assert f.cells[0].view == "scan" and f.cells[0].token == 0 and f.cells[0].dimension == 7
    curve = f.series["peak |x| / layer median"]
    assert len(curve) == L and curve[0] < massive.MASSIVE_RATIO < min(curve[1:])


def test_the_title_says_where_the_dimension_passes_1000x():
    # like SmolLM2's dimension 507: above 100x from an early layer, past 1000x only later
    trace = plant(clean_trace(0), dim=7, token=0, value=300.0, layers=range(1, L))
    median = min(np.median(np.abs(trace.arrays["resid.full"][layer])) for layer in range(L))
    trace = plant(trace, dim=7, token=0, value=5000.0 * median, layers=range(2, L))
    (f,) = massive.detect(inputs_of(trace))
    assert f.figures["layers_over_1000x"] == list(range(2, L))
    assert f.figures["over_1000x_from"] == 2
    assert "from layer 1 on" in f.title and "(over 1,000x from layer 2 on)" in f.title
    (below,) = massive.detect(inputs_of(plant(clean_trace(1), 7, 0, 300.0, range(1, L))))
    assert below.figures["layers_over_1000x"] == [] and "over 1" not in below.title


def test_a_massive_value_away_from_the_first_token_is_said():
    trace = plant(clean_trace(0), dim=3, token=5, value=400.0, layers=[2])
    (f,) = massive.detect(inputs_of(trace))
    assert f.figures["not_first_token"] == 1
    assert "none of them the first" in f.title and "in layer 2" in f.title
    assert f.figures["tokens"][0][:3] == [0, 5, repr(trace.token_text[5])]


def test_many_dimensions_are_capped_with_one_line_for_the_rest():
    trace = clean_trace(0)
    for d in range(massive.MAX_DIMENSIONS + 3):
        plant(trace, dim=d, token=0, value=300.0 + 10 * d, layers=[3])
    found = massive.detect(inputs_of(trace))
    assert len(found) == massive.MAX_DIMENSIONS + 1
    assert found[0].figures["dimension"] == massive.MAX_DIMENSIONS + 2  # largest first
    assert len(found[-1].figures["dimensions"]) == 3


def test_without_full_residual_rows_it_is_skipped_with_a_reason():
    trace = clean_trace(0)
    del trace.arrays["resid.full"]
    with pytest.raises(DetectorSkipped, match=r"resid\.full"):
        massive.detect(inputs_of(trace))
