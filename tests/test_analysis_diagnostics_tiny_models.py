"""The detectors on real captures of a tiny random llama: silent when healthy (but for the
near-uniform heads every untrained model has), and each planted defect fires its finding.

The captures here keep every array the detectors read (full residual rows, every head's
pattern); neuron statistics and gradients come from capture/ and are tested there.
"""

from __future__ import annotations

import pytest

from tiny_models import tiny_bundle

torch = pytest.importorskip("torch")

from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs  # noqa: E402
from neuroscope_tui.analysis.diagnostics.runner import run_detectors  # noqa: E402
from neuroscope_tui.capture.run import GenerationOptions, run  # noqa: E402
from neuroscope_tui.prompt_sets import default_prompts  # noqa: E402
from neuroscope_tui.trace import CaptureSpec  # noqa: E402

LAYERS = 4


def report(plant=None):
    bundle = tiny_bundle("llama", num_hidden_layers=LAYERS)
    anatomy = bundle.anatomy
    if plant is not None:
        with torch.no_grad():
            plant(anatomy)
    heads = tuple((layer, h) for layer in range(LAYERS) for h in range(anatomy.n_heads))
    spec = CaptureSpec(full_layers=None, pattern_heads=heads, lens_positions=())
    prompts = default_prompts()[:4]
    traces = [run(bundle, p, spec, GenerationOptions(max_new_tokens=0)) for p in prompts]
    return run_detectors(DiagnosticInputs(traces=traces, prompts=prompts), source="tiny")


def lines(rep):
    return [(f.severity, f.detector, f.title) for f in rep.findings]


def test_a_healthy_tiny_model_has_only_the_untrained_models_uniform_heads():
    rep = report()
    assert lines(rep) == [("info", "heads", lines(rep)[0][2])]
    assert "near-uniform" in rep.findings[0].title


def test_an_mlp_scaled_100x_stands_out():
    def scale(anatomy):
        anatomy.down_proj[1].weight.mul_(100)

    found = [f for f in report(scale).findings if f.severity == "warning"]
    loud = [f for f in found if "more than the other blocks" in f.title]
    assert loud and loud[0].figures["layers"] == [1]


def test_a_zeroed_mlp_contributes_nothing():
    def zero(anatomy):
        anatomy.down_proj[2].weight.zero_()

    found = [f for f in report(zero).findings if "contributes nothing" in f.title]
    assert found and found[0].figures["layers"] == [2] and found[0].figures["site"] == "mlp"


def test_two_identical_heads_are_named():
    def copy_head(anatomy):
        q = anatomy.attention[1].q_proj
        d = anatomy.d_head  # heads 0 and 1 share a key/value head: copying the query suffices
        q.weight[d : 2 * d] = q.weight[:d]

    (f,) = [f for f in report(copy_head).findings if f.detector == "heads" and "pair" in f.title]
    assert f.severity == "warning" and f.figures["pairs"][0][:2] == [[1, 0], [1, 1]]


def test_a_nan_weight_is_an_error_at_its_layer():
    def poison(anatomy):
        anatomy.down_proj[2].weight[0, 0] = float("nan")

    rep = report(poison)
    assert rep.findings[0].severity == "error" and rep.findings[0].detector == "numerics"
    assert rep.findings[0].figures["first_layer"] == 2
