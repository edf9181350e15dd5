"""tui/pacing.py: a growing trace is redrawn at most every 0.1 s, and less often the more
the last redraw cost the UI thread (so drawing never takes more than its share)."""

from __future__ import annotations

import time

from neuroscope_tui.tui.pacing import MAX_INTERVAL, MIN_INTERVAL, UI_SHARE, RedrawPacer


def busy(seconds: float) -> None:
    """Spend about `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_the_first_frame_waits_the_minimum():
    assert RedrawPacer().delay() == MIN_INTERVAL


def test_a_costly_frame_spaces_the_next_one_out():
    pacer = RedrawPacer()
    pacer.drawn()
    busy(0.03)
    spent_floor = 0.03 / UI_SHARE
    assert spent_floor <= pacer.delay() <= MAX_INTERVAL
    pacer.drawn()
    assert pacer.delay() == MIN_INTERVAL  # nothing spent since the last redraw


def test_however_slow_a_frame_one_comes_every_max_interval():
    pacer = RedrawPacer(share=0.0001)
    pacer.drawn()
    busy(0.01)
    assert pacer.delay() == MAX_INTERVAL
