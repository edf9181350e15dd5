"""A private tmux server for tests that drive the real program in a real terminal."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable


def private_tmux(prefix: str) -> tuple[str, Callable[..., str], Callable[..., str]]:
    """(socket, tmux(*args) -> stdout, wait_for(session, text, timeout=30) -> pane) on a tmux
    server of its own, shared with no one (so killing it ends nobody else's sessions)."""
    socket = f"{prefix}-{uuid.uuid4().hex[:8]}"

    def tmux(*args: str) -> str:
        cmd = ["tmux", "-L", socket, *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout

    def wait_for(session: str, text: str, timeout: float = 30.0) -> str:
        end = time.monotonic() + timeout
        pane = ""
        while time.monotonic() < end:
            pane = tmux("capture-pane", "-p", "-t", session)
            if text in pane:
                return pane
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the pane shows:\n{pane}")

    return socket, tmux, wait_for
