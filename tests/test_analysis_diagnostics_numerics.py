"""analysis/diagnostics/numerics.py: NaN / inf, float16 overflow, bfloat16 precision."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_diagnostics import clean_inputs, clean_trace, inputs_of
from neuroscope_tui.analysis.diagnostics import numerics


def test_clean_traces_give_nothing():
    assert numerics.detect(clean_inputs(3)) == []


def test_nan_names_its_first_occurrence_in_data_flow_order():
    trace = clean_trace(0)
    trace.arrays["resid.full"][3, 2, 0] = np.nan  # later layer
    trace.arrays["resid.full"][2, 9, 0] = np.nan
    trace.arrays["mlp.norm"][2, 9] = np.nan  # same layer, the MLP comes before the stream
    trace.arrays["lens.kl"] = np.full((4, 16), np.nan, np.float32)  # NaN by design: ignored
    (f,) = numerics.detect(inputs_of(clean_trace(1), trace))
    fig = f.figures
    assert f.severity == "error" and fig["kind"] == "NaN"
    assert (fig["first_array"], fig["first_layer"], fig["first_token"], fig["first_prompt"]) == (
        "mlp.norm", 2, 9, 1
    )  # fmt: skip
    assert fig["arrays"] == {"mlp.norm": 1, "resid.full": 2} and fig["prompts"] == [1]
    assert (f.cells[0].view, f.cells[0].layer, f.cells[0].token, f.cells[0].prompt) == (
        "scan", 2, 9, 1
    )  # fmt: skip
    assert "first at layer 2, token 9" in f.title


def test_inf_in_the_embeddings_comes_first():
    trace = clean_trace(0)
    trace.arrays["embed.norm"][4] = np.inf
    trace.arrays["resid.norm"][0, 1] = np.inf
    (f,) = numerics.detect(inputs_of(trace))
    assert f.figures["kind"] == "inf" and f.figures["first_array"] == "embed.norm"
    assert f.figures["first_layer"] is None and "in the embeddings" in f.title


def test_float16_overflow_is_a_warning_or_an_error_in_a_float16_model():
    for dtype, severity in (("float32", "warning"), ("float16", "error")):
        trace = clean_trace(0, dtype=dtype)
        trace.arrays["mlp.max_abs"][1, 3] = 70000.0
        found = numerics.detect(inputs_of(trace))
        (f,) = [f for f in found if f.figures.get("site") == "mlp"]
        assert f.severity == severity and f.figures["layers"] == [1]
        assert f.figures["peaks"] == [70000.0]


def test_bfloat16_step_matches_the_format():
    # bfloat16 keeps float32's exponent and 7 of its 23 fraction bits
    for x in (1.0, 3.7, 1000.0, 22000.0, 0.01):
        assert numerics.bfloat16_step(x) == np.spacing(np.float32(x)) * 2.0**16


def test_a_huge_entry_whose_bfloat16_step_exceeds_the_median_is_info():
    trace = clean_trace(0)
    trace.arrays["resid.full"][2, 0, 5] = 5000.0  # step 32 >> median |x| ~1
    trace.arrays["resid.full"][3, 0, 5] = 60.0  # step 0.25 < median: fine
    (f,) = numerics.detect(inputs_of(trace))
    median = np.median(np.abs(trace.arrays["resid.full"][2]))
    assert f.severity == "info" and f.figures["layers"] == [2]
    assert f.figures["step_over_median"] == [pytest.approx(32.0 / median)]
    assert (f.cells[0].layer, f.cells[0].token) == (2, 0)


def test_inf_in_rows_stored_as_float16_is_the_storage_not_the_model():
    trace = clean_trace(0)
    full = trace.arrays["resid.full"].astype(np.float16)
    full[2, 0, 1] = np.inf
    trace.arrays["resid.full"] = full
    assert [f for f in numerics.detect(inputs_of(trace)) if f.figures.get("kind") == "inf"] == []
