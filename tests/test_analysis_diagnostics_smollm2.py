"""The detectors on the real SmolLM2-135M: the massive activation and the first-token attention
sinks it is known to have (issue 13's check), and nothing worse than info on a healthy model."""

from __future__ import annotations

import pytest

from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs
from neuroscope_tui.analysis.diagnostics.runner import run_detectors
from neuroscope_tui.prompt_sets import default_prompts

pytestmark = pytest.mark.smollm2


@pytest.fixture(scope="module")
def smol_report(smollm2):
    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.trace import CaptureSpec

    layers, heads = smollm2.anatomy.n_layers, smollm2.anatomy.n_heads
    spec = CaptureSpec(
        full_layers=None,
        pattern_heads=tuple((a, b) for a in range(layers) for b in range(heads)),
        lens_positions=(),
    )
    prompts = default_prompts()[:4]
    traces = [run(smollm2, p, spec, GenerationOptions(max_new_tokens=0)) for p in prompts]
    return run_detectors(DiagnosticInputs(traces=traces, prompts=prompts), source="smollm2")


def test_the_massive_activation_at_the_first_token(smol_report):
    massive = [f for f in smol_report.findings if f.detector == "massive_activations"]
    top = massive[0].figures
    # thousands, more than 10^3 x the layer's median, at the first token of every prompt,
    # from the early-middle layers on (DESIGN.md: ~22,000 at layer 20, median 3.6)
    assert abs(top["peak_value"]) > 1000 and top["peak_ratio"] > 1000
    assert top["peak_token"] == 0 and top["prompts_with"] == 4
    assert top["over_1000x_from"] is not None and top["over_1000x_from"] <= 15
    assert top["disappears_layer"] >= 25


def test_the_first_token_sinks(smol_report):
    (sinks,) = [f for f in smol_report.findings if "first-token sink" in f.title]
    assert len(sinks.figures["sink_layers"]) >= 15  # most layers
    assert sinks.figures["n_sink_heads"] >= 100  # of 270


def test_a_healthy_trained_model_gives_no_errors_or_warnings(smol_report):
    assert smol_report.counts()["error"] == 0
    assert smol_report.counts()["warning"] == 0, [f.title for f in smol_report.findings]
