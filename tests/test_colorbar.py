"""widgets/colorbar.py `ColorBar.set_scale`: the bar is redrawn only when its words change (a
live run sets the scale at every frame; ends equal in their three digits draw nothing)."""

from __future__ import annotations

from neuroscope_tui.tui.widgets.colorbar import ColorBar


def counted_bar() -> tuple[ColorBar, list[int]]:
    bar = ColorBar()
    calls: list[int] = []
    bar.refresh = lambda *a, **k: calls.append(1)  # type: ignore[method-assign]
    return bar, calls


def test_the_same_words_draw_nothing_new():
    bar, calls = counted_bar()
    bar.set_scale("residual norm", "||x||", 1.0, 20.0, "global", True)
    assert len(calls) == 1
    bar.set_scale("residual norm", "||x||", 1.0001, 20.001, "global", True)  # "≤1" .. "≥20"
    assert len(calls) == 1
    assert (bar.lo, bar.hi) == (1.0001, 20.001)  # kept, for the next comparison and render


def test_changed_words_redraw():
    bar, calls = counted_bar()
    bar.set_scale("residual norm", "||x||", 1.0, 20.0, "global", True)
    bar.set_scale("residual norm", "||x||", 1.0, 21.0, "global", True)
    bar.set_scale("residual norm", "||x||", 1.0, 21.0, "per layer", True)
    bar.set_scale("residual norm", "||x||", 1.0, 21.0, "per layer", False)
    bar.set_scale("block change", "", 1.0, 21.0, "per layer", False)
    assert len(calls) == 5
