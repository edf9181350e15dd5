"""A fitted concept as a metric of the scan heatmap: live (from the trace's residual rows),
from a snapshot's kept rows, and equal to the projection computed from transformers' own
hidden states; a concept of another model's shape is a notice."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_app import tiny_llama_bundle, wait_until
from neuroscope_tui.analysis import metrics
from neuroscope_tui.analysis.concepts import fit_concept
from neuroscope_tui.concept_file import (
    add_concept_rows,
    concept_from_fit,
    concept_metric,
    register_concept_metrics,
)
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap
from test_app_live import SIZE, run_prompt

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def metric_list():
    """Concepts add metrics to the module's list: put it back after each test."""
    saved = dict(metrics.METRICS)
    yield
    metrics.METRICS.clear()
    metrics.METRICS.update(saved)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny") / "llama")


def toy_concept(n_layers: int, d_model: int, name: str = "toy", seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(12, n_layers, d_model)).astype(np.float32)
    y = np.arange(12) % 2
    x[y == 0] += rng.normal(size=(n_layers, d_model)).astype(np.float32)
    fit = fit_concept(x, y, folds=3)
    model = {"name": "tiny", "n_layers": n_layers, "d_model": d_model}
    return concept_from_fit(
        fit, name=name, labels=("a", "b"), position="last", model=model, sets=[]
    )


@pytest.mark.anyio
async def test_live_concept_metric_equals_the_projection_of_hidden_states(tiny, tmp_path):
    a = tiny.anatomy
    concept = toy_concept(a.n_layers, a.d_model)
    names = register_concept_metrics([concept])
    assert names == ["concept.toy"] and list(metrics.METRICS)[-1] == "concept.toy"
    app = NeuroscopeApp(
        model=tiny, save_dir=tmp_path, generation={"max_new_tokens": 3}, concepts=[concept]
    )
    async with app.run_test(size=SIZE) as pilot:
        await run_prompt(pilot, app, "The cat sat on")
        heat = app.query_one(LayerHeatmap)
        for _ in range(len(metrics.METRICS)):
            if app.query_one("ScanView").metric == "concept.toy":
                break
            await pilot.press("m")
        await pilot.pause()
        assert app.query_one("ScanView").metric == "concept.toy"
        trace = app.shown
        with torch.no_grad():
            out = tiny.model(torch.tensor([trace.token_ids]), output_hidden_states=True)
        hidden = np.stack([h[0].double().numpy() for h in out.hidden_states[1:]])  # [L, T, D]
        want = np.einsum("ltd,ld->lt", hidden, concept.direction.astype(np.float64))
        want -= concept.midpoint[:, None]
        # the last hidden state is after the final norm: compare the blocks before it
        np.testing.assert_allclose(heat._raw[:-1], want[:-1], rtol=1e-4, atol=1e-4)
        assert "concept toy (a vs b)" in str(app.query_one("#colorbar").render())


@pytest.mark.anyio
async def test_concept_of_another_shape_is_a_notice(tiny, tmp_path):
    concept = toy_concept(tiny.anatomy.n_layers, tiny.anatomy.d_model + 8, name="wide")
    register_concept_metrics([concept])
    app = NeuroscopeApp(model=tiny, save_dir=tmp_path, concepts=[concept])
    notes = []
    async with app.run_test(size=SIZE):
        original = app.notify
        app.notify = lambda *a, **k: (notes.append(str(a[0])), original(*a, **k))
        app._model_ready(tiny)
        await wait_until(lambda: notes)
    assert "fit it again on this model" in notes[0]


def test_snapshot_rows_become_a_metric_without_the_file():
    from _fixtures_app import synthetic_trace

    trace = synthetic_trace()
    rng = np.random.default_rng(3)
    trace.arrays["resid.full"] = rng.normal(size=(2, trace.n_tokens, trace.model.d_model))
    concept = toy_concept(trace.n_layers, trace.model.d_model)
    add_concept_rows(trace, [concept])
    rows = trace.extras["concept.toy"]
    # the synthetic trace keeps full rows of layers 1 and 3 only: the rest are NaN
    assert np.isnan(rows[0]).all() and np.isfinite(rows[1]).all() and np.isfinite(rows[3]).all()
    full = trace.get("resid.full").astype(np.float64)
    np.testing.assert_allclose(
        rows[3], full[1] @ concept.direction[3].astype(np.float64) - concept.midpoint[3], atol=1e-4
    )
    names = register_concept_metrics([], trace)
    assert names == ["concept.toy"]
    np.testing.assert_array_equal(metrics.metric_values(trace, "concept.toy"), rows)
    assert metrics.METRICS["concept.toy"].label == "concept toy (a vs b)"
    # a concept of another shape gives empty cells, not an error
    other = toy_concept(trace.n_layers + 1, trace.model.d_model)
    assert np.isnan(concept_metric(other).fn(trace)).all()
