"""The concept view (key 0): a fit in the model worker equals the direct computation, Esc
cancels it, `view` mode says it needs the model, and SVG snapshots of the drawn view."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace, tiny_llama_bundle, wait_until
from neuroscope_tui.analysis.concepts import fit_concept
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.views.concepts import ConceptResult, ConceptView
from test_app_live import SIZE

POS = ["The cat sat on the mat.", "A cat looked at the dog.", "The quick brown fox.", "Paris."]
NEG = ["One two three four.", "Language models predict.", "Five six seven.", "Heads [b]copy."]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture
def sets(tmp_path):
    (tmp_path / "pos.txt").write_text("\n".join(POS))
    (tmp_path / "neg.txt").write_text("\n".join(NEG))
    return [str(tmp_path / "pos.txt"), str(tmp_path / "neg.txt")]


@pytest.mark.anyio
async def test_fit_in_the_worker_equals_the_direct_computation(tiny, sets, tmp_path):
    from neuroscope_tui.capture.concepts import collect_activations

    app = NeuroscopeApp(model=tiny, save_dir=tmp_path, concept_sets=sets)
    async with app.run_test(size=SIZE) as pilot:
        await app.action_show_view("concepts")  # the prompt box holds the keys before a run
        await pilot.pause()
        view = app.query_one(ConceptView)
        assert "pos.txt" in str(view.query_one("#concept-status").render())
        view.action_fit()
        await wait_until(lambda: view.result is not None or view.message)
        await pilot.pause()
        r = view.result
        assert r is not None and r.labels == ("pos", "neg")
        x = collect_activations(tiny, POS + NEG)
        want = fit_concept(x, np.array([0] * 4 + [1] * 4))
        np.testing.assert_allclose(r.fit.cv_accuracy, want.cv_accuracy)
        np.testing.assert_allclose(r.fit.projections, want.projections, atol=1e-5)
        assert app.selection.layer == want.best_layer
        worst = str(view.query_one("#concept-worst").render())
        assert f"probe accuracy {want.cv_accuracy[want.best_layer]:.2f}" in worst
        view.query_one("#concept-strip").focus()
        await pilot.press("right")
        await pilot.pause()
        assert view.layer() == min(want.best_layer + 1, tiny.anatomy.n_layers - 1)


@pytest.mark.anyio
async def test_escape_cancels_a_fit(tiny, sets, tmp_path):
    app = NeuroscopeApp(model=tiny, save_dir=tmp_path, concept_sets=sets)
    async with app.run_test(size=SIZE) as pilot:
        await app.action_show_view("concepts")
        await pilot.pause()
        view = app.query_one(ConceptView)
        app.engine.lock.acquire()  # keep the worker busy so the task is still waiting
        try:
            view.action_fit()
            assert view.busy
            await pilot.press("escape")
            await pilot.pause()
        finally:
            app.engine.lock.release()
        assert not view.busy and view.message == "concept fit cancelled"
        await pilot.pause(0.5)
        assert view.result is None


@pytest.mark.anyio
async def test_view_mode_says_it_needs_the_model():
    app = NeuroscopeApp(snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("0", "f")
        await pilot.pause()
        assert "needs the live model" in app.query_one(ConceptView).message


def synthetic_result() -> ConceptResult:
    """A deterministic fit: 6 layers, a planted direction from layer 2 on."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6, 8)).astype(np.float32)
    y = np.arange(80) % 2
    x[:, 2:, 0] += np.where(y == 0, 1.2, -1.2)[:, None]
    tx = rng.normal(size=(16, 6, 8)).astype(np.float32)
    ty = np.arange(16) % 2
    tx[:, 3:5, 0] += np.where(ty == 0, 1.5, -1.5)[:, None]
    fit = fit_concept(x, y, transfer_x=tx, transfer_y=ty, folds=4)
    texts = tuple(f"example [bold]{i}[/bold] \x1b[31m" for i in range(80))
    return ConceptResult(fit, ("positive", "negative"), texts, y, ("a.txt",), ("b.txt",))


async def show_synthetic(pilot) -> None:
    await pilot.press("0")
    await pilot.pause()
    pilot.app.query_one(ConceptView).show_result(synthetic_result())
    await pilot.pause()


class TestConceptScreen:
    def test_a_fitted_concept(self, snap_compare):
        app = NeuroscopeApp(snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE))
        assert snap_compare(app, terminal_size=SIZE, run_before=show_synthetic)


def test_example_text_is_never_markup():
    from neuroscope_tui.tui.views.concepts import ConceptView as View

    r = synthetic_result()
    view = View()
    text = view.worst_text(r, 2)
    assert "[bold]" in text.plain or "every example" in text.plain
    assert "\x1b" not in text.plain
