"""The app's two generic guards for text it did not write (see neuroscope_tui/text_safety.py).

- `PlainNotices`, mixed into an App: every notice (`app.notify`, and `widget.notify`, which
  calls it) is shown as plain text with control characters as escapes. Notices quote file
  names, model names and error messages; Textual would read `[/]` in them as markup (and
  crash) and pass ESC through to the terminal.
- `ControlPictures`, an `Input` highlighter: an editable field keeps the exact text the user
  gave (a `--prompt` runs as typed), but shows each control character as one printable
  picture (ESC as '␛'), so the cursor still lines up with the characters.
"""

from __future__ import annotations

from typing import Any

from rich.highlighter import Highlighter
from rich.text import Text

from neuroscope_tui.text_safety import one_cell_each, visible


class PlainNotices:
    """App mixin: notices never read as markup, their control characters made visible."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,  # accepted for Textual's signature; notices are never markup
    ) -> None:
        super().notify(  # type: ignore[misc]
            visible(str(message), newlines=True),
            title=visible(str(title)),
            severity=severity,
            timeout=timeout,
            markup=False,
        )


class ControlPictures(Highlighter):
    """Shows control characters in an Input as pictures, one character for one."""

    def highlight(self, text: Text) -> None:
        # Same length, so the Input's cursor and selection spans stay on their characters.
        text.plain = one_cell_each(text.plain)
