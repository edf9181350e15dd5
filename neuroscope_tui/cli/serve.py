"""`neuroscope-tui serve [MODEL [options] | view FILE] [--host H] [--port P]`: the very same
app in a browser, served by textual-serve.

Every browser tab starts its own `neuroscope-tui MODEL ...` (or `view FILE`) process under
textual's web driver, so every view, key and live update is the app's own; nothing is drawn
twice. What the app would refuse (a model name that resolves to nothing, a damaged snapshot,
an empty prompt) is refused here, before the server starts, in one sentence. The server binds
to loopback by default; any other address is served only after a warning, since the page has
no authentication: the SSH tunnel is the way to reach a GPU box
(`ssh -L 8000:localhost:8000 gpu-box`, then open http://localhost:8000 on the laptop).
The page asks nothing of any other host: textual-serve's own page loads its font from Google
Fonts, so the server is given that page with the font served from textual-serve's own files.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import shlex
import socket
import sys
import tempfile
from pathlib import Path

from neuroscope_tui.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
SERVE_OPTIONS = ("--host", "--port", "--public-url")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "neuroscope-tui serve [--host H] [--port P] [MODEL [options] | view FILE]"
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}: only this machine; reach it through an "
        "SSH tunnel rather than binding a public address: the page has no authentication)",
    )
    parser.add_argument("--port", default=str(DEFAULT_PORT), help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="the address browsers use to reach the server, when it is not http://HOST:PORT "
        "(a reverse proxy)",
    )
    parser.add_argument(
        "app",
        nargs=argparse.REMAINDER,
        metavar="MODEL [options] | view FILE",
        help="what the app opens, as `neuroscope-tui ...` takes it (default: smollm2)",
    )


def split_serve_options(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """Pull --host/--port/--public-url out of the app's words (they may come after MODEL)."""
    found: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, value = word.partition("=")
        if name in SERVE_OPTIONS:
            if not eq:
                if i + 1 >= len(words):
                    raise UsageError(f"{name} needs a value")
                value = words[i + 1]
                i += 1
            found[name.lstrip("-").replace("-", "_")] = value
        else:
            rest.append(word)
        i += 1
    return found, rest


def check_app_arguments(words: list[str]) -> str:
    """Parse and check the app's arguments as `neuroscope-tui ...` would; returns what the
    page will show (a model name or a snapshot's file name)."""
    from neuroscope_tui.cli import live, view

    if words and words[0] == "view":
        parser = argparse.ArgumentParser(prog="neuroscope-tui serve view")
        view.add_arguments(parser)
        args = parser.parse_args(words[1:])
        from neuroscope_tui.snapshot import load_snapshot

        view.check_save_dir(args.save_dir)
        load_snapshot(args.file)  # a damaged file: one sentence now, not in every tab
        return str(args.file)
    parser = argparse.ArgumentParser(prog="neuroscope-tui serve")
    live.add_arguments(parser)
    args = parser.parse_args(words)
    live.check_arguments(args)
    return str(args.model)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only "localhost" is known to stay on this machine
        return False


def exposure_warning(host: str, port: int) -> str:
    """What binding a non-loopback address means, and the safer way (printed before serving)."""
    return (
        f"neuroscope-tui: warning: serving on {host}:{port} lets anyone who can reach that "
        "address drive the app and the model: the page has no authentication. Prefer the "
        f"default --host {DEFAULT_HOST} and an SSH tunnel from your laptop: "
        f"ssh -L {port}:localhost:{port} <this-machine>, then open http://localhost:{port}"
    )


def check_port_free(host: str, port: int) -> None:
    """UsageError when the port cannot be bound (in use, not ours, no such address)."""
    if not 0 < port < 65536:
        raise UsageError(f"--port {port} is not a port number (1-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise UsageError(f"cannot serve on {host!r}: {err.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise UsageError(
                f"cannot serve on {host}:{port} ({err.strerror}); pick another with --port"
            ) from None


def app_command(words: list[str]) -> str:
    """The shell command each browser tab runs: this interpreter, this package, these words."""
    return shlex.join([sys.executable, "-m", "neuroscope_tui", *words])


def run(args: argparse.Namespace) -> int:
    extra, words = split_serve_options(list(args.app))
    host = extra.get("host", args.host)
    given_port = extra.get("port", args.port)
    try:
        port = int(given_port)
    except ValueError:
        raise UsageError(f"--port {given_port!r} is not a number") from None
    public_url = extra.get("public_url", args.public_url)
    shown = check_app_arguments(words)
    check_port_free(host, port)
    try:
        from textual_serve.server import Server
    except ImportError:
        raise UsageError(
            "serving needs textual-serve; install it with `pip install textual-serve`"
        ) from None
    if not is_loopback(host):
        print(exposure_warning(host, port), file=sys.stderr)
    url = public_url or f"http://{'localhost' if is_loopback(host) else host}:{port}"
    print(
        f"neuroscope-tui: serving {shown} at {url} (each browser tab runs its own app; "
        "Ctrl+C stops the server and every tab's app)",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="neuroscope-serve-") as folder:
        templates = offline_templates(Path(folder))
        paths = {} if templates is None else {"templates_path": str(templates)}
        server = Server(
            app_command(words), host=host, port=port, title="neuroscope-tui", public_url=url,
            **paths,
        )  # fmt: skip
        server.serve()
    return 0


# textual-serve's page (templates/app_index.html) links a stylesheet of Google Fonts for
# Roboto Mono, although the package ships the font in its static files.
_GOOGLE_FONTS = re.compile(r"<link\b[^>]*https://fonts\.googleapis\.com[^>]*>", re.S)
_FONT = "fonts/RobotoMono-VariableFont_wght.ttf"


def offline_templates(folder: Path) -> Path | None:
    """Write textual-serve's page into `folder` with the Google Fonts stylesheet replaced by
    an @font-face on the package's own copy of the font; return `folder`, or None (serve
    the package's page as it is) when the page or its link is not where this expects."""
    import textual_serve

    package = Path(textual_serve.__file__).parent
    page = package / "templates" / "app_index.html"
    try:
        text = page.read_text(encoding="utf-8")
    except OSError:
        return None
    link = _GOOGLE_FONTS.search(text)
    if link is None:
        return None
    face = ""
    if (package / "static" / _FONT).is_file():
        face = (
            '<style>@font-face { font-family: "Roboto Mono"; '
            f'src: url("{{{{ config.static.url }}}}{_FONT}"); }}</style>'
        )
    (folder / "app_index.html").write_text(
        text[: link.start()] + face + text[link.end() :], encoding="utf-8"
    )
    return folder
