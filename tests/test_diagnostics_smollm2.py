"""The whole check on the real SmolLM2-135M over the shipped default prompts.

What a trained model has and the report must name (measured before the issue was filed): one
residual dimension reaching thousands at the first token, more than 1000x the layer's median,
from the early-middle layers on; and first-token attention sinks. What it must not do: call a
healthy trained model broken (no error findings, no dead or saturated neuron warnings, no
vanishing or exploding gradients).
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.analysis.diagnostics.runner import DETECTORS, run_detectors
from neuroscope_tui.capture.diagnostics import diagnostic_inputs
from neuroscope_tui.prompt_sets import default_prompts

pytestmark = pytest.mark.smollm2


@pytest.fixture(scope="module")
def checked(smollm2):
    inputs = diagnostic_inputs(smollm2, default_prompts())
    return run_detectors(inputs, source="smollm2"), inputs


def test_every_detector_runs_on_the_live_model(checked) -> None:
    report, inputs = checked
    assert report.ran == list(DETECTORS) and report.skipped == []
    assert len(inputs.traces) == len(default_prompts()) == report.n_prompts
    assert inputs.neurons is not None and inputs.neurons.activation == "SiLUActivation"
    assert inputs.gradients is not None and np.isfinite(inputs.gradients.loss).all()


def test_the_massive_activation_at_the_first_token(checked) -> None:
    report, inputs = checked
    massive = [f for f in report.findings if f.detector == "massive_activations"]
    assert massive, [f.title for f in report.findings]
    top = massive[0]  # the strongest dimension comes first
    fig = top.figures
    dim = fig["dimension"]
    assert fig["peak_ratio"] > 1000 and abs(fig["peak_value"]) > 1000
    assert fig["peak_token"] == 0 and "first token" in top.title and str(dim) in top.title
    assert fig["prompts_with"] == len(inputs.traces)
    cell = top.cells[0]
    assert (cell.view, cell.token, cell.dimension) == ("scan", 0, dim)
    # independently, from the residual rows: at the first token of every prompt the
    # dimension passes 1000x its layer's median |x| from the early-middle layers to the last few
    n_layers = inputs.traces[0].model.n_layers
    over = []
    for trace in inputs.traces:
        resid = np.abs(trace.get("resid.full"))  # [L, T, D]
        ratio = resid[:, 0, dim] / np.median(resid, axis=(1, 2))
        over.append(ratio > 1000)
    every = np.all(over, axis=0)  # [L]
    start = int(np.argmax(every))
    assert every.any() and 2 <= start <= n_layers // 2
    assert every[start : n_layers - 2].all()
    curve = np.asarray(top.series["peak |x| / layer median"])
    assert (curve[start : n_layers - 2] > 1000).all()


def test_first_token_attention_sinks(checked) -> None:
    report, _ = checked
    sinks = [f for f in report.findings if f.detector == "attention_sinks"]
    first = [f for f in sinks if "first" in f.title]
    assert first, [f.title for f in sinks]
    assert first[0].cells and all(c.view == "heads" for c in first[0].cells)


def test_a_healthy_trained_model_is_not_called_broken(checked) -> None:
    report, _ = checked
    assert report.counts()["error"] == 0, [f.title for f in report.findings]
    wrong = [
        f.title
        for f in report.findings
        if f.severity == "warning" and f.detector in ("dead_neurons", "gradient_health")
    ]
    assert wrong == []
