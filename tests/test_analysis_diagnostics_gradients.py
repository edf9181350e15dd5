"""analysis/diagnostics/gradients.py: vanishing, exploding and non-finite gradients."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_diagnostics import clean_trace, inputs_of
from neuroscope_tui.analysis.diagnostics import gradients
from neuroscope_tui.analysis.diagnostics.findings import DetectorSkipped
from neuroscope_tui.analysis.diagnostics.inputs import GradientHealth

P, LAYERS = 5, 8


def health(seed=0) -> GradientHealth:
    rng = np.random.default_rng(seed)
    # healthy: within an order of magnitude across depth, noisy across prompts
    resid = np.geomspace(3.0, 0.5, LAYERS)[None] * rng.lognormal(0, 0.2, (P, LAYERS))
    params = rng.lognormal(0, 0.3, (P, LAYERS))
    return GradientHealth(resid, np.ones(P), params, params / 2, params / 2, np.full(P, 2.5))


def test_healthy_gradients_give_nothing():
    assert gradients.detect(inputs_of(clean_trace(0), gradients=health())) == []


def test_vanishing_and_exploding_layers_against_the_median_layer():
    g = health()
    g.resid[:, 6] = 1e-4  # every prompt: vanishing
    g.params[:, 2] *= 1e3  # exploding
    g.params[0, 5] *= 1e4  # one prompt only: the median over prompts ignores it
    found = gradients.detect(inputs_of(clean_trace(0), gradients=g))
    by = {(f.figures["quantity"], f.figures["direction"]): f for f in found}
    assert set(by) == {("resid", "vanishing"), ("params", "exploding")}
    van = by[("resid", "vanishing")]
    assert van.figures["layers"] == [6] and van.severity == "warning"
    median = np.median(np.median(g.resid, axis=0))
    assert van.figures["median"] == pytest.approx(median)
    assert van.figures["values"] == [pytest.approx(1e-4)]
    assert by[("params", "exploding")].figures["layers"] == [2]
    assert van.cells[0].view == "residual" and van.cells[0].layer == 6
    assert len(van.series["residual-stream gradient norm (median over prompts)"]) == LAYERS


def test_nan_gradients_are_an_error_naming_the_first_layer():
    g = health()
    g.resid[3, 4:] = np.nan
    g.params[3, 5] = np.inf
    (err,) = [f for f in gradients.detect(inputs_of(clean_trace(0), gradients=g))]
    assert err.severity == "error" and err.figures["prompts"] == [3]
    assert err.figures["first"] == ["resid", 3, 4] and err.figures["layers"] == [4, 5, 6, 7]


def test_a_prompt_too_short_for_a_loss_is_not_an_error():
    g = health()
    g.resid[1] = np.nan
    g.params[1] = np.nan
    g.attn_params[1] = np.nan
    g.mlp_params[1] = np.nan
    g.loss[1] = np.nan
    assert gradients.detect(inputs_of(clean_trace(0), gradients=g)) == []


def test_without_gradients_it_is_skipped_and_says_it_needs_the_model():
    with pytest.raises(DetectorSkipped, match="needs the model"):
        gradients.detect(inputs_of(clean_trace(0)))
    inputs = inputs_of(clean_trace(0), missing={"gradients": "--no-gradients was given"})
    with pytest.raises(DetectorSkipped, match=r"--no-gradients was given\."):
        gradients.detect(inputs)


def test_a_long_prompt_whose_every_gradient_is_nan_is_an_error_not_a_short_prompt():
    # the prompts' token counts decide what is "too short", not the NaN pattern: a model whose
    # loss is NaN everywhere on a 6-token prompt is broken, a 1-token prompt simply has no loss
    g = health()
    for p in (1, 3):
        for key in ("resid", "params", "attn_params", "mlp_params"):
            getattr(g, key)[p] = np.nan
        g.loss[p] = np.nan
    traces = [clean_trace(p, n_tokens=1 if p == 1 else 6) for p in range(P)]
    (err,) = gradients.detect(inputs_of(*traces, gradients=g))
    assert err.severity == "error" and err.figures["prompts"] == [3]
    assert err.figures["loss_nonfinite_prompts"] == [3]
