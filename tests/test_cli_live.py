"""`neuroscope-tui [MODEL]` as scripts and users run it: without a terminal it prints the run
(or the error) instead of opening the app; an empty prompt is refused before loading; a crash
or SIGTERM in the app saves the run and exits non-zero, saying where (real terminal, tmux)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuroscope_tui.snapshot import load_snapshot
from tiny_models import build_tiny
from tmux_terminal import private_tmux

pytest.importorskip("torch")
SOCKET, tmux, wait_for = private_tmux("nscope-cli-live")

# The test's own entry point: it injects a fault named by NSCOPE_TEST_FAULT (the production
# code has no test hooks), writes its pid, then runs the real command line.
WRAPPER = r"""
import os, sys
fault = os.environ.get("NSCOPE_TEST_FAULT", "")
if fault.startswith("view-bug-at-"):
    from neuroscope_tui.tui.views.scan import ScanView
    at, original = int(fault.rsplit("-", 1)[1]), ScanView.show_trace
    def show_trace(self, trace):
        if trace.n_tokens >= at:
            raise IndexError("index 8 is out of bounds for axis 1 with size 8")
        original(self, trace)
    ScanView.show_trace = show_trace
with open(os.environ["NSCOPE_TEST_PID"], "w") as f:
    f.write(str(os.getpid()))
from neuroscope_tui.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("tiny") / "llama")


def run_piped(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """The real command with stdout and stderr piped (a script), stdin from /dev/null."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        [sys.executable, "-m", "neuroscope_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )


def one_sentence(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("neuroscope-tui: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- without a terminal ----------------------------------------------------------------------


def test_without_a_terminal_the_prompt_is_run_and_printed(tiny_folder):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    got = run_piped(str(tiny_folder), "--prompt", "The cat sat", "--max-new-tokens", "5")
    assert got.returncode == 0, got.stderr
    # the same greedy continuation, computed by transformers' own generate
    tok = AutoTokenizer.from_pretrained(tiny_folder)
    model = AutoModelForCausalLM.from_pretrained(tiny_folder, dtype=torch.float32).eval()
    ids = tok("The cat sat", return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0, eos_token_id=None)
    new = out[0, ids.shape[1] :].tolist()
    n_prompt = ids.shape[1]
    lines = got.stdout.strip().splitlines()
    assert lines[0] == f"generated: {tok.decode(new)!r}"
    assert lines[1].startswith(f"{n_prompt} prompt + {len(new)} generated tokens (stop: length)")
    assert "neuroscope-tui capture" in lines[1]


def test_without_a_terminal_a_model_that_cannot_load_is_one_sentence(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')  # no weights, no tokenizer
    got = run_piped(str(broken), "--prompt", "hi", timeout=120)  # never waits for a key
    assert got.returncode == 2
    assert "broken" in one_sentence(got.stderr)


def test_without_a_terminal_and_no_prompt_says_it_needs_one(tiny_folder):
    got = run_piped(str(tiny_folder), timeout=60)
    assert got.returncode == 2 and got.stdout == ""
    assert "needs a terminal" in one_sentence(got.stderr) and "--prompt" in got.stderr


@pytest.mark.parametrize("prompt", ["", "   ", "\n"])
def test_an_empty_prompt_is_refused_before_loading(tmp_path, prompt):
    # the model does not exist: the prompt is what is refused, so it was checked first
    got = run_piped(str(tmp_path / "no-such-model"), "--prompt", prompt, timeout=60)
    assert got.returncode == 2
    assert "prompt is empty" in one_sentence(got.stderr)


def test_view_with_stdin_closed_or_not_a_terminal(tmp_path):
    from _fixtures_app import SCAN_FIXTURE

    closed = run_piped("view", str(SCAN_FIXTURE), stdin=None, preexec_fn=lambda: os.close(0))
    assert closed.returncode == 2
    assert "standard input is closed" in one_sentence(closed.stderr)
    devnull = run_piped("view", str(SCAN_FIXTURE))
    assert devnull.returncode == 2
    assert "needs a terminal" in one_sentence(devnull.stderr)


def test_info_into_a_full_disk_is_one_sentence():
    from _fixtures_app import SCAN_FIXTURE

    with open("/dev/full", "w") as full:
        got = subprocess.run(
            [sys.executable, "-m", "neuroscope_tui", "info", str(SCAN_FIXTURE)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert got.returncode == 2
    assert "No space left on device" in one_sentence(got.stderr)


# ---- in a real terminal: a crash or SIGTERM keeps the run ------------------------------------


def start_in_tmux(tmp_path: Path, session: str, args: list[str], fault: str = "") -> Path:
    """Start the wrapper in a private tmux at 120x40 (stderr stays the terminal: textual draws
    there; what the command says after the screen is gone is read back from the pane)."""
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    status = tmp_path / "status"
    env = f"NSCOPE_TEST_FAULT={shlex.quote(fault)} NSCOPE_TEST_PID={tmp_path / 'pid'} "
    env += f"PYTHONPATH={shlex.quote(os.environ.get('PYTHONPATH', ''))} "
    cmd = (
        f"cd {shlex.quote(str(tmp_path))} && {env}{shlex.quote(sys.executable)} {wrapper} "
        f"{' '.join(map(shlex.quote, args))}; "
        f"echo $? > {status}; sleep 60"
    )
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", "bash", "-c", cmd)
    return status


def pane_text(session: str) -> str:
    """Everything the pane shows and scrolled past, wrapped lines joined."""
    return tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session)


def wait_status(status: Path, timeout: float = 60) -> int:
    end = time.monotonic() + timeout
    while not status.exists() or not status.read_text().strip():
        assert time.monotonic() < end, "the command did not exit"
        time.sleep(0.2)
    return int(status.read_text())


def test_a_crash_in_the_real_app_saves_the_run_and_exits_3(tiny_folder, tmp_path):
    args = [str(tiny_folder), "--prompt", "The cat sat", "--max-new-tokens", "20"]
    status = start_in_tmux(tmp_path, "crash", args, fault="view-bug-at-7")
    try:
        assert wait_status(status, 120) == 3
        err = pane_text("crash")
        assert "IndexError" in err  # textual's traceback, for a bug report
        saved = list(tmp_path.glob("llama-*.recovered.nscope"))
        assert len(saved) == 1
        last = [ln for ln in err.splitlines() if ln.startswith("neuroscope-tui: ")][-1]
        assert last.startswith("neuroscope-tui: the app stopped on an unexpected error (IndexError")
        assert str(saved[0]) in last
        assert load_snapshot(saved[0]).n_tokens >= 7
    finally:
        tmux("kill-server")


def test_sigterm_to_the_app_saves_the_run_and_exits_143(tiny_folder, tmp_path):
    args = [str(tiny_folder), "--prompt", "The cat sat", "--max-new-tokens", "4"]
    status = start_in_tmux(tmp_path, "term", args)
    try:
        wait_for("term", "+ 4 generated tokens]", 120)  # the run is over, not saved
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGTERM)
        assert wait_status(status) == 143
        saved = list(tmp_path.glob("llama-*.recovered.nscope"))
        assert len(saved) == 1
        pane = pane_text("term")
        (last,) = [ln for ln in pane.splitlines() if ln.startswith("neuroscope-tui: ")]
        assert "Traceback" not in pane
        assert last.startswith("neuroscope-tui: terminated (SIGTERM); the run so far")
        assert str(saved[0]) in last
        back = load_snapshot(saved[0])
        assert back.n_generated == 4 and back.prompt == "The cat sat"
        # the terminal was handed back: no alternate screen, no Textual left on it
        assert tmux("display-message", "-p", "-t", "term", "#{alternate_on}").strip() == "0"
    finally:
        tmux("kill-server")


def test_a_model_that_fails_to_load_shows_on_screen_and_q_exits_2(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # found by name, refused by transformers
    status = start_in_tmux(tmp_path, "broken", [str(broken)])
    try:
        wait_for("broken", "press q to quit", 120)  # the panel, on the app's own screen
        tmux("send-keys", "-t", "broken", "q")
        assert wait_status(status) == 2
        pane = pane_text("broken")
        (last,) = [ln for ln in pane.splitlines() if ln.startswith("neuroscope-tui: ")]
        assert "broken" in last and "Traceback" not in pane
    finally:
        tmux("kill-server")
