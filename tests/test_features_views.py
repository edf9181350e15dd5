"""Pilot tests of the projection and attribution views on hand-built traces (no model)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from _fixtures_features import ViewHost, projection_trace
from neuroscope_tui.tui.views.projection import ProjectionView

pytestmark = pytest.mark.anyio


async def settle(pilot, view: ProjectionView, timeout: float = 60.0) -> None:
    """Wait until the view's worker has finished and its result is drawn."""
    start = time.monotonic()
    await pilot.pause()
    while time.monotonic() - start < timeout and (
        view.running is not None or (view.result is None and not view.notice)
    ):
        await pilot.pause(0.05)
    await pilot.pause()


async def test_pca_clusters_and_stored_extras() -> None:
    trace = projection_trace()
    view = ProjectionView()
    async with ViewHost(view, trace).run_test(size=(120, 36)) as pilot:
        await settle(pilot, view)
        res = view.result
        assert res is not None and res.request.method == "pca" and res.request.layer == 1
        assert adjusted_rand_score(np.arange(12) % 3, res.clusters.labels) == 1.0
        assert trace.extras["projection.pca.L1"].shape == (12, 3)
        assert "clusters.kmeans.L1" in trace.extras
        await pilot.press("a", "a", "r", "p", "l")
        assert view.axes == "3D" and view.show_path and view.show_labels
        path, labels = view._token_path(res, 4)
        assert labels == ["L0", "L1", "L2"] and path.shape == (3, 3)
        # At its own layer the path point is the token's own PCA coordinates.
        np.testing.assert_allclose(path[1], res.projection.coords[4], atol=1e-3)


class TimedProjectionView(ProjectionView):
    """Records, for each key action, how long after the key it ran and whether a worker ran."""

    pressed_at = 0.0
    answered: list[tuple[str, float, bool]]

    def _record(self, name: str) -> None:
        latency = time.monotonic() - self.pressed_at
        self.answered.append((name, latency, self.running is not None))

    def action_toggle_labels(self) -> None:
        self._record("labels")
        super().action_toggle_labels()

    def action_cycle_axes(self) -> None:
        self._record("axes")
        super().action_cycle_axes()

    def action_cancel(self) -> None:
        self._record("cancel")
        super().action_cancel()


async def press_timed(pilot, view: TimedProjectionView, key: str) -> None:
    view.pressed_at = time.monotonic()
    await pilot.press(key)  # returns only once progress messages pause: not a latency


async def test_keys_work_while_tsne_runs_and_cancel_stops_it() -> None:
    trace = projection_trace(t=1200, d=32)  # t-SNE of 1200 points takes seconds
    view = TimedProjectionView()
    view.answered = []
    async with ViewHost(view, trace).run_test(size=(120, 36)) as pilot:
        await settle(pilot, view)
        await pilot.press("m")  # t-SNE starts in a worker
        assert view.running is not None and view.running.method == "tsne"
        await press_timed(pilot, view, "l")
        await press_timed(pilot, view, "c")
        await settle(pilot, view, 30)
        (_, labels_latency, labels_running), (_, cancel_latency, cancel_running) = view.answered
        # Answered at once, while t-SNE was still running.
        assert labels_running and labels_latency < 0.5
        assert cancel_running and cancel_latency < 0.5
        assert view.running is None and "cancelled" in view.notice
        assert view.result is not None and view.result.request.method == "pca"


async def test_umap_runs_in_a_worker_while_keys_are_answered() -> None:
    # UMAP's first call in a process imports and compiles (~15-30 s): the UI keeps answering.
    trace = projection_trace(t=30)
    view = TimedProjectionView()
    view.answered = []
    async with ViewHost(view, trace).run_test(size=(120, 36)) as pilot:
        await settle(pilot, view)
        await pilot.press("m", "m")  # t-SNE (superseded at once), then UMAP
        assert view.running is not None and view.running.method == "umap"
        await press_timed(pilot, view, "l")
        await press_timed(pilot, view, "a")
        assert view.show_labels and view.axes == "1-3"
        await settle(pilot, view, 120)
        for _, latency, running in view.answered:
            assert latency < 0.5 and running
        assert view.result is not None and view.result.request.method == "umap"
        assert trace.extras["projection.umap.L1"].shape == (30, 2)
        assert adjusted_rand_score(np.arange(30) % 3, view.result.clusters.labels) == 1.0


async def test_fewer_than_three_points_is_a_notice() -> None:
    trace = projection_trace(t=2)
    view = ProjectionView()
    async with ViewHost(view, trace).run_test(size=(100, 30)) as pilot:
        await settle(pilot, view)
        assert view.result is None
        assert "at least 3 tokens" in view.notice


async def test_a_trace_without_full_vectors_says_how_to_get_them() -> None:
    trace = projection_trace()
    trace.arrays.pop("resid.full")
    view = ProjectionView()
    async with ViewHost(view, trace).run_test(size=(100, 30)) as pilot:
        await settle(pilot, view)
        assert "--full-layers" in view.notice


async def test_csv_key_writes_the_points(tmp_path) -> None:
    trace = projection_trace()
    view = ProjectionView()
    host = ViewHost(view, trace)
    host.save_dir = tmp_path
    async with host.run_test(size=(120, 36)) as pilot:
        await settle(pilot, view)
        await pilot.press("x")
        await pilot.pause()
    (csv,) = tmp_path.glob("*.csv")
    lines = csv.read_text().splitlines()
    assert lines[0] == "token,text,c1,c2,c3,cluster" and len(lines) == 13


@pytest.mark.parametrize("k", [2, 4])
async def test_k_can_be_set(k: int) -> None:
    trace = projection_trace()
    view = ProjectionView()
    async with ViewHost(view, trace).run_test(size=(120, 36)) as pilot:
        await settle(pilot, view)
        keys = ["minus"] if k == 2 else ["plus"]
        await pilot.press(*keys)
        await settle(pilot, view)
        assert view.result.clusters.k == k


# ---- attribution view ----------------------------------------------------------------------


async def test_attribution_view_shows_a_stored_attribution() -> None:
    from _fixtures_features import attribution_trace
    from neuroscope_tui.tui.views.attribution import AttributionView

    view = AttributionView()
    async with ViewHost(view, attribution_trace()).run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        title = str(view.query_one("#attr-title").render())
        assert "' Paris' rather than ' London'" in title and "occlusion" in title
        gaps = str(view.query_one("#attr-gaps").render())
        assert "gap 0.5%" in gaps and "64 steps" in gaps
        await pilot.press("m")
        assert view.method == "integrated_gradients"
        await pilot.press("a")  # no live model here: a notice, no crash
        assert "live model" in view.message


async def test_attribution_view_computes_with_the_live_model(tmp_path) -> None:
    from neuroscope_tui.models.types import LoadedModel
    from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace
    from neuroscope_tui.tui.views.attribution import AttributionView
    from tiny_models import build_model, build_tokenizer

    tok = build_tokenizer()
    bundle = LoadedModel(build_model("llama"), tok, "tiny", "", None, "cpu", "float32", None)
    ids = tok("The cat sat on the mat", add_special_tokens=False)["input_ids"]
    trace = Trace(ModelInfo(name="tiny", n_layers=2), CaptureSpec())
    trace.append(ids, [tok.decode([i]) for i in ids], {})
    trace.n_prompt, trace.finished = len(ids) - 1, True
    view = AttributionView()
    host = ViewHost(view, trace, model_task=lambda fn, *args: fn(bundle, *args))
    host.save_dir = tmp_path
    async with host.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("f", "d", "o", "g", "enter")
        assert view.foil == "dog"
        await pilot.press("a")
        await pilot.pause()
        note = trace.notes["attribution"]
        assert note["target_id"] == ids[-1] and note["position"] == len(ids) - 1
        assert note["foil_id"] == tok("dog", add_special_tokens=False)["input_ids"][0]
        assert trace.extras["attribution.occlusion"].shape == (len(ids) - 1,)
        assert note["methods"]["integrated_gradients"]["relative_gap"] <= 0.05
        await pilot.press("x")
        await pilot.pause()
    (csv,) = tmp_path.glob("*attribution*.csv")
    assert csv.read_text().startswith("method,token,text,score,share,relative_gap")


# ---- inside the real app -------------------------------------------------------------------


async def test_keys_7_and_8_open_the_views_in_the_app(tmp_path) -> None:
    from _fixtures_features import attribution_trace
    from neuroscope_tui.tui.app import NeuroscopeApp
    from neuroscope_tui.tui.views.attribution import AttributionView

    trace = projection_trace()
    trace.extras.update(attribution_trace().extras)
    trace.notes.update(attribution_trace().notes)
    app = NeuroscopeApp(snapshot=trace, snapshot_path=str(tmp_path / "s.nscope"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("7")
        await pilot.pause()
        view = app.query_one(ProjectionView)
        await settle(pilot, view)
        assert view.result is not None and view.result.request.layer == 0
        await pilot.press("right_square_bracket")  # the app's next-layer key
        await settle(pilot, view)
        assert view.result.request.layer == 1
        await pilot.press("8")
        await pilot.pause()
        attribution = app.query_one(AttributionView)
        assert "' Paris' rather than ' London'" in str(
            attribution.query_one("#attr-title").render()
        )


async def test_growing_trace_coalesces_pca_runs_and_shows_the_newest() -> None:
    full = projection_trace(t=40)
    trace = projection_trace(t=40)
    trace.finished = False
    view = ProjectionView()

    def grow_to(n: int) -> None:
        trace.token_ids, trace.token_text = full.token_ids[:n], full.token_text[:n]
        trace.arrays = {"resid.full": full.arrays["resid.full"][:, :n]}

    grow_to(10)
    async with ViewHost(view, trace).run_test(size=(120, 36)) as pilot:
        await settle(pilot, view)
        started = view._serial
        for n in range(11, 41):  # tokens arrive faster than PCA + clustering finish
            grow_to(n)
            view.show_trace(trace)
        assert view._serial - started < 30  # runs that only lacked new tokens were not started
        await settle(pilot, view)
        deadline = time.monotonic() + 60
        while view.result.request.n_tokens < 40 and time.monotonic() < deadline:
            await pilot.pause(0.05)
            view.show_trace(trace)
        assert view.result.projection.coords.shape == (40, 3)


async def test_live_app_attributes_and_projects_a_real_run(tmp_path) -> None:
    """A tiny Llama in the real app: run a prompt, then keys 7 and 8 (model worker)."""
    from _fixtures_app import tiny_llama_bundle, wait_until
    from neuroscope_tui.trace import CaptureSpec
    from neuroscope_tui.tui.app import NeuroscopeApp
    from neuroscope_tui.tui.views.attribution import AttributionView

    bundle = tiny_llama_bundle(tmp_path / "llama")
    app = NeuroscopeApp(
        model=bundle, save_dir=tmp_path, generation={"max_new_tokens": 3},
        spec=CaptureSpec(full_layers=None),
    )  # fmt: skip

    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one("#prompt").focus()
        await pilot.press(*"the cat sat", "enter")
        await wait_until(lambda: app.figures.state.startswith(("done", "failed")))
        trace = app.shown
        assert trace.finished and trace.has("resid.full")
        await pilot.press("7")
        view = app.query_one(ProjectionView)
        await wait_until(lambda: view.result is not None)
        np.testing.assert_allclose(
            np.abs(view.result.projection.coords),
            np.abs(trace.extras[f"projection.pca.L{view.result.request.layer}"]),
        )
        await pilot.press("8")
        attribution = app.query_one(AttributionView)
        await pilot.pause()
        await pilot.press("a")
        await wait_until(lambda: "attribution" in trace.notes)
        assert trace.notes["attribution"]["target_id"] == trace.token_ids[-1]
        assert trace.extras["attribution.occlusion"].shape == (trace.n_tokens - 1,)
        await pilot.pause()
        assert "at position" in str(attribution.query_one("#attr-title").render())


async def test_a_stored_tsne_is_shown_without_recomputing() -> None:
    trace = projection_trace()
    coords = np.arange(24, dtype=np.float32).reshape(12, 2)
    trace.extras["projection.tsne.L1"] = coords
    trace.extras["clusters.kmeans.L1"] = (np.arange(12) % 3).astype(np.int32)
    trace.notes["features"] = {"clusters.kmeans.L1": {"k": 3, "silhouette": {"3": 0.9}}}
    view = ProjectionView()
    async with ViewHost(view, trace).run_test(size=(120, 36)) as pilot:
        await settle(pilot, view)
        serial = view._serial
        await pilot.press("m")
        assert view._serial == serial and view.running is None  # nothing started
        assert view.result.request.method == "tsne"
        np.testing.assert_array_equal(view.result.projection.coords, coords)


async def test_neurons_site_and_agglomerative_clusters() -> None:
    trace = projection_trace(neurons=True)
    view = ProjectionView()
    async with ViewHost(view, trace).run_test(size=(120, 36)) as pilot:
        await settle(pilot, view)
        await pilot.press("n")
        await settle(pilot, view)
        assert view.result.request.site == "neurons"
        assert "projection.pca.L1.neurons" in trace.extras
        await pilot.press("k")
        await settle(pilot, view)
        assert view.result.clusters.method == "agglomerative"
        assert adjusted_rand_score(np.arange(12) % 3, view.result.clusters.labels) == 1.0
        assert "clusters.agglomerative.L1.neurons" in trace.extras


async def test_a_failing_attribution_is_a_notice_and_the_view_recovers() -> None:
    from _fixtures_features import attribution_trace
    from neuroscope_tui.tui.views.attribution import AttributionView

    def broken(fn, *args):  # the model worker, with a model that fails
        def boom(bundle, *a):
            raise RuntimeError("out of memory")

        return fn(None, boom, *args[1:])

    view = AttributionView()
    async with ViewHost(view, attribution_trace(), model_task=broken).run_test() as pilot:
        await pilot.press("a")
        await pilot.pause()
        assert not view.busy and "out of memory" in view.message
