"""analysis/diagnostics/neurons.py: dead and saturated MLP neurons."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_diagnostics import L, N, clean_trace, inputs_of
from neuroscope_tui.analysis.diagnostics import neurons
from neuroscope_tui.analysis.diagnostics.findings import DetectorSkipped
from neuroscope_tui.analysis.diagnostics.inputs import NeuronHealth


def health(active=None, flat=None) -> NeuronHealth:
    rng = np.random.default_rng(0)
    return NeuronHealth(
        active_frac=rng.uniform(0.2, 0.9, (L, N)) if active is None else active,
        flat_frac=rng.uniform(0.0, 0.5, (L, N)) if flat is None else flat,
        max_abs=np.ones((L, N), np.float32),
        mean=np.zeros((L, N), np.float32),
        n_tokens=200,
        threshold=1e-3,
        flat_slope=1e-3,
        activation="SiLU",
    )


def kill(h: NeuronHealth, layer, neurons_) -> NeuronHealth:
    """Neurons that never pass the threshold, with outputs negligible next to their layer's."""
    h.active_frac[layer, neurons_] = 0.0
    h.max_abs[layer, neurons_] = 1e-5
    return h


def test_healthy_statistics_give_nothing():
    assert neurons.detect(inputs_of(clean_trace(0), neurons=health())) == []


def test_a_layer_with_dead_neurons_gets_its_own_finding_and_the_overall_one():
    h = health()
    kill(h, 1, slice(0, 10))  # 10 of 64 = 15.6% of layer 1
    found = neurons.detect(inputs_of(clean_trace(0), neurons=h))
    layer, overall = found
    assert layer.severity == overall.severity == "warning"
    assert layer.figures["layer"] == 1 and layer.figures["count"] == 10
    assert layer.figures["neurons"] == list(range(10))
    assert layer.title == "Layer 1: 15.6% of MLP neurons never activate (10 of 64)"
    assert overall.figures["count"] == 10 and overall.figures["of"] == L * N
    assert overall.series["dead share per layer"] == pytest.approx([0, 10 / 64, 0, 0])
    assert layer.cells[0].view == "scan" and layer.cells[0].layer == 1


def test_saturated_neurons_exclude_dead_ones():
    h = health()
    h.flat_frac[2, :8] = 0.995  # saturated
    kill(h, 2, slice(0, 2))  # ... but two of them are dead: counted as dead only
    found = neurons.detect(inputs_of(clean_trace(0), neurons=h))
    kinds = {(f.figures["kind"], f.figures.get("layer")) for f in found}
    assert ("saturated", 2) in kinds
    (sat,) = [f for f in found if f.figures["kind"] == "saturated" and "layer" in f.figures]
    assert sat.figures["count"] == 6
    # two dead of 64 (3%), 2 of 256 overall: under both bars
    assert ("dead", 1) not in kinds


def test_a_layer_of_small_outputs_is_not_dead():
    """A tiny model's outputs may all sit under the capture's threshold: none is an outlier."""
    h = health()
    h.active_frac[1] = 0.0
    h.max_abs[1] = np.random.default_rng(1).uniform(1e-4, 5e-3, N)
    assert neurons.detect(inputs_of(clean_trace(0), neurons=h)) == []


def test_unknown_activation_means_no_saturation_finding():
    h = health(flat=np.full((L, N), np.nan))
    kill(h, 0, slice(0, 20))
    found = neurons.detect(inputs_of(clean_trace(0), neurons=h))
    assert found and all(f.figures["kind"] == "dead" for f in found)


def test_many_flagged_layers_give_one_finding_listing_them():
    h = kill(health(), slice(None), slice(0, 32))  # half of every layer dead
    assert neurons.MAX_LAYER_FINDINGS < 3 * L  # so flag every layer of a wider model
    wide = NeuronHealth(
        np.tile(h.active_frac, (3, 1)), np.tile(h.flat_frac, (3, 1)), np.tile(h.max_abs, (3, 1)),
        np.zeros((3 * L, N)), 10, 1e-3, 1e-3, "GELU",
    )  # fmt: skip
    (f,) = neurons.detect(inputs_of(clean_trace(0), neurons=wide))
    assert f.figures["flagged_layers"] == list(range(3 * L))
    assert "layers 0-11" in f.title


def test_without_statistics_dead_neurons_come_from_the_kept_rows():
    traces = []
    for seed in range(2):
        trace = clean_trace(seed)
        trace.arrays["neurons.full"][3, :, 40:60] = 0.0
        trace.arrays["neurons.full"][2] *= 1e-3  # small but alive: under the 0.01 threshold
        traces.append(trace)
    found = neurons.detect(inputs_of(*traces))
    layer, overall = found
    assert layer.figures["layer"] == 3 and layer.figures["neurons"] == list(range(40, 60))
    assert "saturation needs the model" in overall.figures["counted"]


def test_nan_rows_are_not_dead():
    trace = clean_trace(0)
    trace.arrays["neurons.full"][2] = np.nan
    assert neurons.detect(inputs_of(trace)) == []


def test_with_neither_it_is_skipped_with_the_captures_reason():
    trace = clean_trace(0)
    del trace.arrays["neurons.full"]
    inputs = inputs_of(trace, missing={"neurons": "a snapshot holds no neuron statistics"})
    with pytest.raises(DetectorSkipped, match=r"a snapshot holds no neuron statistics\."):
        neurons.detect(inputs)


def test_a_mostly_dead_layer_is_measured_against_its_live_neurons():
    h = health()
    kill(h, 3, slice(0, 48))  # 75% dead, with small non-zero noise
    h.max_abs[3, :48] = np.random.default_rng(2).uniform(1e-6, 1e-5, 48)
    (layer, _) = neurons.detect(inputs_of(clean_trace(0), neurons=h))
    assert layer.figures["layer"] == 3 and layer.figures["count"] == 48
