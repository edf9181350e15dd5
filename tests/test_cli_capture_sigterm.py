"""`neuroscope-tui capture` stopped by SIGTERM: like a first Ctrl-C it saves what was captured
and exits non-zero (143), never 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from neuroscope_tui.snapshot import load_snapshot
from tiny_models import build_tiny

pytest.importorskip("torch")

# The test's own entry point: each generation step writes how far the run got and waits 50 ms,
# so the test can send SIGTERM mid-run (the production code has no test hooks).
SLOW_STEPS = r"""
import os, sys, time
import neuroscope_tui.capture.run as capture_run
original = capture_run.run
def slow_run(*args, on_step=None, **kwargs):
    def step(trace, start, stop):
        if on_step is not None:
            on_step(trace, start, stop)
        with open(os.environ["NSCOPE_TEST_STEP"], "w") as f:
            f.write(str(stop))
        time.sleep(0.05)
    return original(*args, on_step=step, **kwargs)
capture_run.run = slow_run
from neuroscope_tui.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_mid_run_saves_the_run_and_exits_143(tmp_path):
    folder = build_tiny("llama", tmp_path / "llama")
    wrapper, step, out = tmp_path / "slow.py", tmp_path / "step", tmp_path / "run.nscope"
    wrapper.write_text(SLOW_STEPS)
    args = ["capture", str(folder), "--prompt", "The cat sat", "--max-new-tokens", "100"]
    proc = subprocess.Popen(
        [sys.executable, str(wrapper), *args, "-o", str(out)],
        env={**os.environ, "NSCOPE_TEST_STEP": str(step)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + 120
        while not step.exists() and time.monotonic() < end:
            time.sleep(0.05)
        assert step.exists(), "the run never started"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and f"wrote {out}" in stdout
    saved = load_snapshot(out)
    assert saved.stop_reason == "cancelled" and 0 <= saved.n_generated < 100
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
