"""`neuroscope-tui serve`: the same app in a real headless browser, and every refusal first.

The browser test starts the real command on a tiny model, opens the page in Debian's
chromium driven by playwright, types a prompt, and reads what the app sent to the browser's
terminal (the websocket frames textual-serve forwards): the run's heatmap cells (viridis
backgrounds) and, after `2`, the heads view. It then stops the server and checks that no
process it started is left. Skipped, with the reason, only where no browser can be found.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuroscope_tui.analysis.metrics import viridis
from neuroscope_tui.cli import main
from neuroscope_tui.cli.serve import (
    exposure_warning,
    is_loopback,
    offline_templates,
    split_serve_options,
)
from tiny_models import build_tiny

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ANSI = re.compile(rb"\x1b\[[0-9;?$<>=]*[A-Za-z]|\x1b\][^\x07]*\x07")
BACKGROUND = re.compile(rb"48;2;(\d+);(\d+);(\d+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- arguments and refusals ------------------------------------------------------------------


def test_serve_options_may_come_after_the_model() -> None:
    found, rest = split_serve_options(
        ["smollm2", "--port", "9001", "--max-new-tokens", "5", "--host=0.0.0.0"]
    )
    assert found == {"port": "9001", "host": "0.0.0.0"}
    assert rest == ["smollm2", "--max-new-tokens", "5"]


def test_only_loopback_addresses_count_as_private() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert not is_loopback("gpu-box.example")


def test_the_exposure_warning_names_the_tunnel() -> None:
    text = exposure_warning("0.0.0.0", 8123)
    assert "no authentication" in text and "ssh -L 8123:localhost:8123" in text


@pytest.mark.parametrize(
    "argv, words",
    [
        (["serve", "/no/such/model-folder"], "model-folder"),
        (["serve", "view", "/no/such/run.nscope"], "run.nscope"),
        (["serve", "--port", "0"], "port"),
        (["serve", "--port", "http"], "not a number"),
    ],
)
def test_bad_input_is_one_sentence_before_serving(argv, words, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuroscope-tui: ") and words in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_port_in_use_is_refused(tmp_path: Path, capsys) -> None:
    folder = build_tiny("llama", tmp_path / "tiny")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(folder), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}" in err and "--port" in err


def test_a_public_address_is_served_only_after_the_warning(tmp_path: Path, monkeypatch) -> None:
    """Binding 0.0.0.0 prints the warning first; the server gets the app's own command."""
    import textual_serve.server

    started = {}

    class FakeServer:
        def __init__(self, command, host, port, title, public_url, templates_path=None):
            started.update(command=command, host=host, port=port, url=public_url)
            started["page"] = Path(templates_path, "app_index.html").read_text()

        def serve(self) -> None:
            started["served"] = True

    monkeypatch.setattr(textual_serve.server, "Server", FakeServer)
    folder = build_tiny("llama", tmp_path / "tiny")
    port = _free_port()
    done = {}

    def run() -> None:
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            done["status"] = main(["serve", "--host", "0.0.0.0", "--port", str(port),
                                   str(folder), "--max-new-tokens", "3"])  # fmt: skip
        done["err"] = err.getvalue()

    run()
    assert done["status"] == 0 and started["served"]
    assert "no authentication" in done["err"] and "ssh -L" in done["err"]
    assert started["host"] == "0.0.0.0" and started["port"] == port
    assert started["command"].endswith(f"-m neuroscope_tui {folder} --max-new-tokens 3")
    assert "googleapis" not in started["page"] and "@font-face" in started["page"]


def test_the_page_loads_nothing_from_another_host(tmp_path: Path) -> None:
    """textual-serve's page links Google Fonts; the served page takes the font from the
    package's own static files, and still renders as a template."""
    import jinja2

    page = offline_templates(tmp_path)
    assert page == tmp_path
    text = jinja2.Template((tmp_path / "app_index.html").read_text()).render(
        config={"static": {"url": "/static/"}}, application={}, ping_url="", app_websocket_url=""
    )
    hosts = re.findall(r"(?:src|href)=\"(https?:)?//([^/\"]+)", text)
    assert hosts == [], hosts
    assert 'url("/static/fonts/RobotoMono-VariableFont_wght.ttf")' in text


# ---- the real program in a real browser -------------------------------------------------------


def _session_processes(sid: int) -> list[int]:
    """Live processes in session `sid` (the server and every app it started), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_for_port(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"serve exited early: {server.stderr.read()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("serve did not listen in time")


class Screen:
    """What the app sent to the browser's terminal, as plain text and as cell backgrounds."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    def frame(self, payload: bytes | str) -> None:
        if isinstance(payload, bytes):
            self.raw.append(payload)

    def text_since(self, start: int) -> str:
        return ANSI.sub(b"", b"".join(self.raw[start:])).decode("utf-8", "replace")

    def backgrounds_since(self, start: int) -> set[tuple[int, int, int]]:
        blob = b"".join(self.raw[start:])
        return {tuple(int(v) for v in m.groups()) for m in BACKGROUND.finditer(blob)}


def _wait(page, check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"the browser never showed {what}")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (CI installs Debian's chromium)")
def test_the_app_runs_in_a_real_browser(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra")
    folder = build_tiny("llama", tmp_path / "tiny")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "neuroscope_tui", "serve", str(folder), "--port", str(port),
         "--max-new-tokens", "6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    viridis_colours = set(viridis(256))
    try:
        _wait_for_port(port, server)
        screen = Screen()
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("websocket", lambda ws: ws.on("framereceived", screen.frame))
            asked: list[str] = []
            page.on("request", lambda request: asked.append(request.url))
            page.goto(f"http://127.0.0.1:{port}")
            _wait(page, lambda: "ready" in screen.text_since(0), "the model loaded")
            page.mouse.click(300, 44)  # the prompt box: the terminal takes the keys
            page.keyboard.type("the cat sat on the mat")
            page.keyboard.press("Enter")
            started = len(screen.raw)

            def heatmap_drawn() -> bool:
                cells = screen.backgrounds_since(started) & viridis_colours
                return len(cells) >= 8 and "done" in screen.text_since(started)

            _wait(page, heatmap_drawn, "the run's heatmap cells")
            page.screenshot(path=str(tmp_path / "scan.png"))
            page.mouse.click(700, 400)  # leave the prompt box: number keys switch views
            switched = len(screen.raw)
            page.keyboard.press("2")
            # the heads view: its head grid's detail line and the selected head's pattern
            _wait(page, lambda: "pattern L0.H0, query x key" in screen.text_since(switched),
                  "the heads view")  # fmt: skip
            browser.close()
        # the page, its script and its font all came from this server
        local = (f"http://127.0.0.1:{port}/", f"http://localhost:{port}/")
        assert asked and all(url.startswith(local) for url in asked), asked
        assert any(url.endswith(".ttf") for url in asked), asked
    finally:
        sid = os.getsid(server.pid)
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            raise
        deadline = time.monotonic() + 15
        while _session_processes(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _session_processes(sid)
        if left:
            os.killpg(sid, signal.SIGKILL)
        assert not left, f"serve left processes behind: {left}"
