"""The real `neuroscope-tui view FIXTURE` in a tmux terminal: keys, the pane, save, quit."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest

from _fixtures_app import SCAN_FIXTURE
from tmux_terminal import private_tmux

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


SOCKET, tmux, wait_for_pane = private_tmux(
    "neuroscope-test"
)  # a private server, shared with no one


def test_view_in_a_real_terminal(tmp_path: Path):
    session = f"nscope-{uuid.uuid4().hex[:8]}"
    status = tmp_path / "status"
    cmd = (
        f"cd {shlex.quote(str(tmp_path))} && {shlex.quote(sys.executable)} -m neuroscope_tui "
        f"view {shlex.quote(str(SCAN_FIXTURE))}; echo $? > {status}; sleep 10"
    )
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd)
    try:
        pane = wait_for_pane(session, "synthetic-6L")
        assert "layer 0 · token 0 The (prompt)" in pane
        tmux("send-keys", "-t", session, "Right", "Right", "Down")
        pane = wait_for_pane(session, "layer 1 · token 2")
        tmux("send-keys", "-t", session, "m")
        wait_for_pane(session, "layer 1 attention-output norm")  # the plot title
        tmux("send-keys", "-t", session, "s")
        pane = wait_for_pane(session, "saved ")
        saved = list(tmp_path.glob("synthetic-6L-*.nscope"))
        assert len(saved) == 1 and saved[0].stat().st_size > 1000
        tmux("send-keys", "-t", session, "q")
        end = time.monotonic() + 20
        while not status.exists() and time.monotonic() < end:
            time.sleep(0.2)
        assert status.read_text().strip() == "0"
        pane = tmux("capture-pane", "-p", "-t", session)  # the shell again, after the app
        assert "Traceback" not in pane and "synthetic-6L" not in pane
    finally:
        tmux("kill-server")  # the private server of this test only
