"""The whole check on tiny models with one planted defect each (tests/tiny_defects.py): the
live capture (`diagnostic_inputs`: traces, neuron health, gradients) and every detector.

Each defect fires its detector at the expected severity and layer; the healthy model makes no
warning or error finding (an untrained model's heads are near-uniform: that is an "info").
"""

from __future__ import annotations

import pytest

from neuroscope_tui.analysis.diagnostics.runner import DETECTORS, run_detectors
from neuroscope_tui.capture.diagnostics import diagnostic_inputs
from neuroscope_tui.prompt_sets import default_prompts
from tiny_defects import DEFECT_LAYER, defect_bundle

_REPORTS: dict[str, object] = {}


def report(name: str):
    """The report of defect `name` over four of the default prompts (built once per name)."""
    if name not in _REPORTS:
        inputs = diagnostic_inputs(defect_bundle(name), default_prompts()[:4])
        _REPORTS[name] = (run_detectors(inputs, source=name), inputs)
    return _REPORTS[name]


def serious(rep) -> list:
    return [f for f in rep.findings if f.severity in ("error", "warning")]


def test_the_healthy_model_makes_no_warning_and_every_detector_runs() -> None:
    rep, inputs = report("healthy")
    assert rep.ran == list(DETECTORS) and rep.skipped == []
    assert inputs.neurons is not None and inputs.gradients is not None
    assert serious(rep) == [], [f.title for f in serious(rep)]


def test_an_mlp_scaled_100x_is_outsized_at_its_layer() -> None:
    rep, _ = report("mlp_x100")
    loud = [f for f in serious(rep) if f.detector == "collapse" and "more" in f.title]
    assert len(loud) == 1 and loud[0].severity == "warning"
    assert loud[0].figures["site"] == "mlp"
    assert loud[0].figures["layers"] == [DEFECT_LAYER["mlp_x100"]]
    assert loud[0].figures["ratio_to_median"][0] > 30


def test_a_zeroed_mlp_has_dead_neurons_and_writes_nothing() -> None:
    rep, _ = report("mlp_zeroed")
    layer = DEFECT_LAYER["mlp_zeroed"]
    dead = [f for f in serious(rep) if f.detector == "dead_neurons" and "layer" in f.figures]
    assert len(dead) == 1 and dead[0].severity == "warning"
    assert dead[0].figures["layer"] == layer and dead[0].figures["share"] == 1.0
    silent = [f for f in serious(rep) if f.detector == "collapse" and "nothing" in f.title]
    assert len(silent) == 1 and silent[0].figures["layers"] == [layer]
    # nothing else is wrong with this model
    assert {f.detector for f in serious(rep)} == {"dead_neurons", "collapse"}


def test_identical_heads_are_a_redundant_pair() -> None:
    rep, _ = report("identical_heads")
    layer = DEFECT_LAYER["identical_heads"]
    (pair,) = serious(rep)
    assert pair.detector == "heads" and pair.severity == "warning"
    assert pair.figures["pairs"][0][:2] == [[layer, 0], [layer, 1]]
    assert {(c.layer, c.head) for c in pair.cells} >= {(layer, 0), (layer, 1)}


def test_a_nan_weight_is_an_error_at_its_layer_and_no_neuron_is_called_dead() -> None:
    rep, _ = report("nan")
    first = rep.findings[0]
    assert first.detector == "numerics" and first.severity == "error"
    assert first.figures["first_layer"] == DEFECT_LAYER["nan"]
    # NaN neurons are broken, not dead; gradients may say theirs are NaN too, nothing else
    assert {f.detector for f in serious(rep)} <= {"numerics", "gradient_health"}
    assert all(f.severity == "error" for f in serious(rep))


@pytest.mark.parametrize("name", ["healthy", "mlp_zeroed", "identical_heads"])
def test_gradients_are_quiet_where_no_defect_touches_them(name: str) -> None:
    rep, _ = report(name)
    assert not [f for f in serious(rep) if f.detector == "gradient_health"]
