"""The `?` help screen: every key of the app, the view on screen and the heatmap.

The table is built from the same Binding lists the app, views and widgets use (`key_rows`),
so it cannot drift from what the keys really do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Static

# keys whose name is not what a user types
_KEY_NAMES = {
    "question_mark": "?",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "left_curly_bracket": "{",
    "right_curly_bracket": "}",
    "escape": "Esc",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "enter": "Enter",
    "slash": "/",
}


def as_bindings(bindings: Iterable[BindingType]) -> list[Binding]:
    """Binding objects from a BINDINGS list (which may also hold tuples)."""
    out = []
    for b in bindings:
        out.append(b if isinstance(b, Binding) else Binding(*b))
    return out


def key_name(key: str) -> str:
    """One key as a user types it: "full_stop" -> ".", "plus" -> "+", "left" -> "left"."""
    if key in _KEY_NAMES:
        return _KEY_NAMES[key]
    shown = format_key(key)  # Textual's names of punctuation keys -> the character
    if len(key) > 1 and len(shown) == 1 and shown.isascii() and not shown.isalnum():
        return shown
    return key


def key_label(keys: str) -> str:
    """A Binding's key string as a user reads it: "left,h" -> "left / h"."""
    return " / ".join(key_name(k.strip()) for k in keys.split(","))


def key_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys, what they do) for each binding that has a description."""
    rows = []
    for b in as_bindings(bindings):
        if b.description:
            rows.append((key_label(b.key), b.description))
    return rows


def help_table(sections: list[tuple[str, list[tuple[str, str]]]]) -> Table:
    """One table with a heading row per section (app, view, heatmap)."""
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for title, rows in sections:
        if not rows:
            continue
        table.add_row(f"[b u]{title}[/]", "")
        for keys, what in rows:
            table.add_row(keys, what)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    """Every key, by where it works; Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "close help"),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 80; max-width: 100%; height: 90%; border: thick $primary; padding: 0 1;
        background: $surface;
    }
    """

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("[b]neuroscope keys[/]  (Esc closes; ctrl+p finds any action by name)")
            yield Static(help_table(self.sections), id="help-table")


def own_bindings(widget: Any) -> bool:
    """Whether a widget's keys are ours (not only Textual's generic scrolling keys)."""
    return any(
        "BINDINGS" in vars(cls) and cls.__module__.startswith("neuroscope_tui")
        for cls in type(widget).__mro__
    )


def section_name(widget: Any) -> str:
    """A help-section title in the user's words: "LayerHeatmap" -> "layer heatmap"."""
    if widget.id:
        return widget.id.replace("-", " ")
    return re.sub(r"(?<!^)(?=[A-Z])", " ", type(widget).__name__).lower()
