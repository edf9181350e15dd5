"""SVG snapshots of the heads view from the hand-built fixture (no model needed)."""

from __future__ import annotations

from _fixtures_heads import HeadsHost, make_trace


class TestHeadOverview:
    def test_overview_coloured_by_induction(self, snap_compare):
        assert snap_compare(HeadsHost(make_trace()), terminal_size=(120, 40))

    def test_overview_coloured_by_prev_cursor_moved(self, snap_compare):
        app = HeadsHost(make_trace())
        assert snap_compare(app, press=["c", "c", "down", "right"], terminal_size=(120, 40))

    def test_overview_marked_with_probe_types(self, snap_compare):
        app = HeadsHost(make_trace(), live=True)
        assert snap_compare(app, press=["p", "down", "down", "right"], terminal_size=(120, 40))


class TestPatternPanel:
    def test_pattern_with_query_selected_log_scale(self, snap_compare):
        app = HeadsHost(make_trace())
        press = ["right", "tab", "down", "down", "down", "down", "down", "down", "down", "g"]
        assert snap_compare(app, press=press, terminal_size=(120, 40))

    def test_newest_row_during_generation(self, snap_compare):
        assert snap_compare(HeadsHost(make_trace(finished=False)), terminal_size=(120, 40))

    def test_small_multiples_on_a_big_terminal(self, snap_compare):
        app = HeadsHost(make_trace(keep_patterns=()), live=True)
        assert snap_compare(app, terminal_size=(160, 50))
