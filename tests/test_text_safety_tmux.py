"""In a real terminal (tmux): a snapshot whose model name is a retitle escape cannot retitle it.

`\\x1b]0;pwned\\x07` is the OSC sequence that sets a terminal's window title. The test first
checks that this tmux honours it (a shell printf retitles the pane), then opens `view` on a
snapshot with that model name and token texts and checks the pane title is untouched and the
header shows the escape as text.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest

from _fixtures_hostile import hostile_trace
from neuroscope_tui.snapshot import save_snapshot
from tmux_terminal import private_tmux

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def test_a_model_name_with_a_title_escape_does_not_retitle_the_terminal(tmp_path: Path):
    _, tmux, wait_for_pane = private_tmux("neuroscope-text")
    snap = save_snapshot(hostile_trace(), tmp_path / "hostile.nscope")
    session = f"nscope-{uuid.uuid4().hex[:8]}"

    def title() -> str:
        return tmux("display", "-p", "-t", session, "#{pane_title}").strip()

    def wait_title(text: str, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in title():
                return True
            time.sleep(0.2)
        return False

    tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "44", "sh")
    try:
        # the control: this terminal does take a title from an OSC 0 sequence
        tmux("send-keys", "-t", session, r"printf '\033]0;probe\007'; clear", "Enter")
        assert wait_title("probe"), f"tmux ignored the probe title: {title()!r}"
        cmd = f"{shlex.quote(sys.executable)} -m neuroscope_tui view {shlex.quote(str(snap))}"
        tmux("send-keys", "-t", session, cmd, "Enter")
        wait_for_pane(session, "neuroscope ")  # the app has drawn its header
        for key in "5678":  # views that show token texts at length
            tmux("send-keys", "-t", session, key)
            time.sleep(1.0)
        assert not wait_title("pwned", timeout=2.0), f"retitled: {title()!r}"
        assert title() == "probe"
        wait_for_pane(session, "\\x1b]0;pwned\\x07")  # the header shows the escape as text
        tmux("send-keys", "-t", session, "q")
    finally:
        tmux("kill-server")  # the private server of this test only
