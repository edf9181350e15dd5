"""SVG snapshots of the connectivity, residual, flow and lens views (fixture run, no model)."""

from __future__ import annotations

from _fixtures_connect import load_fixture, make_host
from neuroscope_tui.tui.views.connectivity import ConnectivityView
from neuroscope_tui.tui.views.flow import FlowView
from neuroscope_tui.tui.views.lens import LensView
from neuroscope_tui.tui.views.residual import ResidualView

SIZE = (120, 40)


class TestConnectivityView:
    def test_cka_with_cursor_off_the_diagonal(self, snap_compare):
        app = make_host(ConnectivityView, load_fixture())
        assert snap_compare(app, press=["down", "down", "right"], terminal_size=SIZE)

    def test_correlation_of_mlp_norms(self, snap_compare):
        app = make_host(ConnectivityView, load_fixture())
        assert snap_compare(app, press=["c", "c", "c", "c", "down"], terminal_size=SIZE)


class TestResidualView:
    def test_attention_ratio(self, snap_compare):
        app = make_host(ResidualView, load_fixture())
        assert snap_compare(app, press=["down", "right", "right"], terminal_size=SIZE)

    def test_dominant_path(self, snap_compare):
        app = make_host(ResidualView, load_fixture())
        assert snap_compare(app, press=["m", "m", "m", "m", "end"], terminal_size=SIZE)


class TestFlowView:
    def test_rollout_to_the_last_token(self, snap_compare):
        app = make_host(FlowView, load_fixture())
        assert snap_compare(app, press=["G"], terminal_size=SIZE)

    def test_rollout_to_a_chosen_output(self, snap_compare):
        app = make_host(FlowView, load_fixture())
        assert snap_compare(app, press=["right"] * 5 + ["o", "down"], terminal_size=SIZE)


class TestLensView:
    def test_top1_tokens_coloured_by_probability(self, snap_compare):
        app = make_host(LensView, load_fixture())
        assert snap_compare(app, press=["G"] + ["right"] * 13, terminal_size=SIZE)

    def test_rank_of_the_final_prediction(self, snap_compare):
        app = make_host(LensView, load_fixture())
        assert snap_compare(app, press=["m", "m", "down"], terminal_size=SIZE)


class TestCompareApp:
    def test_two_prompts_figures_and_difference_heatmap(self, snap_compare):
        from _fixtures_connect import FIXTURE_B
        from neuroscope_tui.tui.compare_app import CompareApp

        app = CompareApp(load_fixture(), load_fixture(FIXTURE_B))
        assert snap_compare(app, press=["down", "right", "right"], terminal_size=SIZE)
