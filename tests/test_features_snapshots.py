"""SVG snapshots of the projection and attribution views from hand-built traces (no model)."""

from __future__ import annotations

import time

from _fixtures_features import ViewHost, attribution_trace, projection_trace
from neuroscope_tui.tui.views.attribution import AttributionView
from neuroscope_tui.tui.views.projection import ProjectionView

SIZE = (120, 36)


def projection_app() -> tuple[ViewHost, ProjectionView]:
    view = ProjectionView()
    return ViewHost(view, projection_trace(t=24)), view


def settled(view: ProjectionView, *keys: str):
    """A run_before that waits for the view's worker, presses keys, and waits again."""

    async def run_before(pilot) -> None:
        for key in (None, *keys):
            if key is not None:
                await pilot.press(key)
            start = time.monotonic()
            while view.running is not None and time.monotonic() - start < 60:
                await pilot.pause(0.05)
            await pilot.pause()

    return run_before


class TestProjectionView:
    def test_pca_coloured_by_cluster(self, snap_compare):
        app, view = projection_app()
        assert snap_compare(app, terminal_size=SIZE, run_before=settled(view))

    def test_3d_turned_with_labels_and_token_path(self, snap_compare):
        app, view = projection_app()
        keys = ("a", "a", "a", "r", "r", "l", "p")
        assert snap_compare(app, terminal_size=SIZE, run_before=settled(view, *keys))

    def test_too_few_tokens_notice(self, snap_compare):
        view = ProjectionView()
        app = ViewHost(view, projection_trace(t=2))
        assert snap_compare(app, terminal_size=(100, 24), run_before=settled(view))


class TestAttributionView:
    def test_stored_attribution_with_foil(self, snap_compare):
        app = ViewHost(AttributionView(), attribution_trace())
        assert snap_compare(app, terminal_size=SIZE)

    def test_coloured_by_integrated_gradients(self, snap_compare):
        app = ViewHost(AttributionView(), attribution_trace())
        assert snap_compare(app, press=["m"], terminal_size=SIZE)
