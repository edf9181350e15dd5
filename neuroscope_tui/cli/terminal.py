"""Whether the full-screen app can start here: it reads keys from stdin and draws on stderr
(textual's Linux driver writes the screen to stderr, so stdout stays free for results).

In a script (stdin closed or /dev/null, output piped) the app would draw escape codes into a
file and wait for a key that never comes; the commands check first and either print their
result instead (when stdout is not a terminal) or say in one sentence that they need one.
"""

from __future__ import annotations

import os
import sys

from neuroscope_tui.errors import UsageError


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream is not None and not stream.closed and stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # a replaced or half-closed stream
        return False


def served() -> bool:
    """Whether another textual driver owns the screen: `neuroscope-tui serve` runs each browser
    tab's app with textual-serve's web driver, whose stdout is the browser's pipe."""
    return bool(os.environ.get("TEXTUAL_DRIVER"))


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal (False when piped, redirected to a file, or closed); a
    served app counts as one, since its screen is the browser."""
    return served() or _is_terminal(sys.stdout)


def terminal_problem() -> str | None:
    """Why the app cannot draw and read keys here (a phrase), or None when it can."""
    if served():
        return None
    if sys.stdin is None or getattr(sys.stdin, "closed", True):
        return "standard input is closed"
    if not _is_terminal(sys.stdin):
        return "standard input is not a terminal"
    if not _is_terminal(sys.stderr):
        return "standard error, where the screen is drawn, is not a terminal"
    return None


def require_terminal(what: str, instead: str) -> None:
    """UsageError saying that `what` needs a terminal, and what to do `instead`."""
    problem = terminal_problem()
    if problem is not None:
        raise UsageError(f"{what} needs a terminal, but {problem}; {instead}")
