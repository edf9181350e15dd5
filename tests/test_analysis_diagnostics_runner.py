"""analysis/diagnostics/runner.py: order, severity sort, skips, timings, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _fixtures_diagnostics import clean_trace, inputs_of, random_patterns
from neuroscope_tui.analysis.diagnostics.findings import SEVERITIES, DiagnosticReport, Finding
from neuroscope_tui.analysis.diagnostics.runner import DETECTOR_INFO, DETECTORS, run_detectors

CONTRACT = {
    "massive_activations", "attention_sinks", "dead_neurons", "gradient_health", "collapse",
    "heads", "numerics",
}  # fmt: skip


def defective():
    """Two prompts with a NaN (error), a zeroed MLP and identical heads (warnings), a massive
    dimension and a sink head (info)."""
    traces = []
    for seed in range(2):
        sink = np.zeros((16, 16))
        sink[:, 0] = 1.0
        same = random_patterns(np.random.default_rng(seed), 16, 4.0)[0]
        trace = clean_trace(seed, patterns={(3, 0): sink, (1, 0): same, (1, 1): same})
        trace.arrays["resid.full"][1:, 0, 4] = 800.0
        trace.arrays["mlp.norm"][2] = 0.0
        traces.append(trace)
    traces[1].arrays["attn.norm"][3, 5] = np.nan
    return inputs_of(*traces, missing={"gradients": "this is a snapshot"})


def test_the_contracts_detectors_with_descriptions():
    assert set(DETECTORS) == CONTRACT == set(DETECTOR_INFO)
    assert list(DETECTORS) == list(DETECTOR_INFO)
    for description, needs in DETECTOR_INFO.values():
        assert description and needs


def test_findings_most_severe_first_with_timings_and_skips():
    report = run_detectors(defective(), source="snap.safetensors")
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, key=SEVERITIES.index)
    assert report.counts()["error"] >= 1 and report.counts()["warning"] >= 1
    assert report.findings[0].detector == "numerics"
    assert [s.detector for s in report.skipped] == ["gradient_health"]
    assert report.skipped[0].reason == "this is a snapshot."
    assert "gradient_health" not in report.ran
    assert report.ran == [n for n in DETECTORS if n != "gradient_health"]
    assert set(report.timings) == set(DETECTORS)
    assert all(v >= 0 for v in report.timings.values())
    assert report.n_prompts == 2 and report.model["name"] == "synthetic"
    assert report.source == "snap.safetensors"
    detectors = {f.detector for f in report.findings}
    assert detectors == {"numerics", "collapse", "massive_activations", "attention_sinks", "heads"}


def test_only_runs_the_named_detectors_in_registry_order():
    report = run_detectors(defective(), source="x", only=["heads", "numerics"])
    assert report.ran == ["numerics", "heads"]
    assert {f.detector for f in report.findings} <= {"numerics", "heads"}
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        run_detectors(defective(), source="x", only=["nope"])


def test_no_traces_skip_everything_with_a_reason():
    report = run_detectors(inputs_of(), source="x")
    assert report.findings == [] and report.n_prompts == 0
    assert {s.detector for s in report.skipped} == CONTRACT
    assert all(s.reason.endswith(".") for s in report.skipped)


def test_the_report_survives_json():
    report = run_detectors(defective(), source="x")
    d = report.to_dict()
    text = json.dumps(d)  # NaN in series is allowed by Python's json
    again = DiagnosticReport.from_dict(json.loads(text))
    assert again.to_dict().keys() == d.keys()
    assert [f.title for f in again.findings] == [f.title for f in report.findings]
    assert [c for f in again.findings for c in f.cells] == [
        c for f in report.findings for c in f.cells
    ]
    assert json.dumps(again.to_dict()) == text


def _plain(value, where="") -> list[str]:
    """Paths of values that are not plain JSON types (numpy scalars included)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _plain(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for v in value for p in _plain(v, where)]
    if type(value) in (str, int, float, bool, type(None)):
        return []
    return [f"{where}: {type(value).__name__}"]


def test_every_figure_is_a_plain_json_value():
    from neuroscope_tui.analysis.diagnostics.inputs import GradientHealth, NeuronHealth

    inputs = defective()
    rng = np.random.default_rng(0)
    active = rng.uniform(0.1, 0.9, (4, 64))
    active[1, :10] = 0
    flat = rng.uniform(0, 0.5, (4, 64))
    flat[2, :10] = 1.0
    inputs.neurons = NeuronHealth(active, flat, active, active, 100, 1e-3, 1e-3, "SiLU")
    resid = rng.lognormal(0, 0.2, (2, 4))
    resid[:, 2] = 1e-5
    resid[1, 0] = np.nan
    inputs.gradients = GradientHealth(resid, np.ones(2), resid * 3, resid, resid, np.ones(2))
    report = run_detectors(inputs, source="x")
    assert {f.detector for f in report.findings} >= {"dead_neurons", "gradient_health"}
    assert _plain(report.to_dict()) == []


def test_the_detectors_never_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, neuroscope_tui.analysis.diagnostics.runner; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_cell_names_a_view_of_the_registry():
    from neuroscope_tui.tui.views.registry import VIEWS

    names = {v.name for v in VIEWS}
    report = run_detectors(defective(), source="x")
    views = {c.view for f in report.findings for c in f.cells}
    assert views and views <= names and "diagnostics" not in views


def test_a_null_point_in_a_series_reads_back_as_nan():
    # `report --json` writes NaN as null (strict JSON); reading it back must not fail
    d = {"detector": "x", "severity": "info", "title": "t", "series": {"s": [1.0, None, 3]}}
    values = Finding.from_dict(d).series["s"]
    assert values[0] == 1.0 and np.isnan(values[1]) and values[2] == 3.0
