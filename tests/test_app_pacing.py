"""tui/pacing.py: a growing trace is redrawn at most every 0.1 s, at least every 2 s, and in
between only once the UI thread's CPU time since the last redraw is at most its share of the
CPU time the whole process spent (clocks driven by hand: no timing in these tests)."""

from __future__ import annotations

import pytest

from neuroscope_tui.tui.pacing import MAX_INTERVAL, MIN_INTERVAL, UI_SHARE, RedrawPacer


class Clocks:
    """The UI thread's CPU, the process's CPU and the wall clock, moved by the test."""

    def __init__(self) -> None:
        self.ui = self.process = self.wall = 100.0

    def pacer(self, share: float = UI_SHARE) -> RedrawPacer:
        return RedrawPacer(
            share, thread_cpu=lambda: self.ui, process_cpu=lambda: self.process,
            wall=lambda: self.wall,
        )  # fmt: skip

    def draw(self, seconds: float) -> None:
        """The UI thread spends `seconds` of CPU (and of the process's, and of wall time)."""
        self.ui += seconds
        self.process += seconds
        self.wall += seconds

    def model(self, cpu: float, wall: float) -> None:
        """Other threads spend `cpu` seconds of CPU while `wall` seconds pass."""
        self.process += cpu
        self.wall += wall


def test_the_first_frame_is_drawn_at_once():
    assert Clocks().pacer().delay() == 0.0


def test_a_cheap_frame_waits_the_minimum_interval():
    clocks = Clocks()
    pacer = clocks.pacer()
    pacer.drawn()
    assert pacer.delay() == MIN_INTERVAL
    clocks.model(cpu=MIN_INTERVAL / 2, wall=MIN_INTERVAL / 2)
    assert pacer.delay() == pytest.approx(MIN_INTERVAL / 2)
    clocks.model(cpu=MIN_INTERVAL, wall=MIN_INTERVAL)
    assert pacer.delay() == 0.0


def test_a_costly_frame_waits_until_the_process_spent_its_share():
    clocks = Clocks()
    pacer = clocks.pacer()
    pacer.drawn()
    clocks.draw(0.02)  # 20 ms of drawing: the process must spend 1 s of CPU in all
    owed = 0.02 / UI_SHARE - 0.02
    assert pacer.delay() == pytest.approx(owed)
    clocks.model(cpu=owed / 2, wall=owed / 2)
    assert pacer.delay() == pytest.approx(owed / 2)
    clocks.model(cpu=owed / 2, wall=owed / 2)
    assert pacer.delay() == 0.0


def test_a_loaded_machine_waits_for_cpu_not_for_the_wall_clock():
    clocks = Clocks()
    pacer = clocks.pacer()
    pacer.drawn()
    clocks.draw(0.01)  # due once the process spent 0.5 s of CPU
    clocks.model(cpu=0.1, wall=0.49)  # the model got a fifth of a core meanwhile
    assert pacer.delay() == pytest.approx(0.5 - 0.11)


def test_however_slow_a_frame_one_comes_every_max_interval():
    clocks = Clocks()
    pacer = clocks.pacer(share=0.0001)
    pacer.drawn()
    clocks.draw(0.01)
    assert pacer.delay() == pytest.approx(MAX_INTERVAL - 0.01)
    clocks.model(cpu=0.5, wall=MAX_INTERVAL)
    assert pacer.delay() == 0.0
