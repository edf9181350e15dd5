"""The app's modal screens: loading the model, and the "terminal too small" notice."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import LoadingIndicator, Static

from neuroscope_tui.text_safety import visible

MIN_SIZE = (80, 24)


class LoadingScreen(ModalScreen[None]):
    """Shown while the model loads: each progress string the loader sends, then any error."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("q,escape", "app.quit", "quit")]

    DEFAULT_CSS = """
    LoadingScreen { align: center middle; }
    LoadingScreen > Vertical {
        width: 70; height: auto; max-height: 20; border: thick $primary; padding: 1 2;
        background: $surface;
    }
    LoadingScreen #loading-title { text-style: bold; }
    LoadingScreen LoadingIndicator { height: 1; }
    LoadingScreen #loading-error { color: $error; text-style: bold; display: none; }
    LoadingScreen.-failed #loading-error { display: block; }
    LoadingScreen.-failed LoadingIndicator { display: none; }
    """

    def __init__(self, model_name: str) -> None:
        super().__init__()
        self.model_name = model_name
        self.lines: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            # Text, not markup: a model folder may be named "[b]x" (control characters too)
            yield Static(Text(f"loading {visible(self.model_name)}"), id="loading-title")
            yield LoadingIndicator()
            yield Static("", id="loading-log")
            yield Static("", id="loading-error")

    def add_line(self, text: str) -> None:
        """Show one more progress string (the last 8 stay)."""
        self.lines.append(text)
        shown = visible("\n".join(self.lines[-8:]), newlines=True)
        self.query_one("#loading-log", Static).update(Text(shown))

    def fail(self, text: str) -> None:
        """Show why loading failed, and that q quits."""
        self.add_class("-failed")
        shown = visible(text, newlines=True)
        self.query_one("#loading-error", Static).update(Text(f"{shown}\n\npress q to quit"))


def too_small(width: int, height: int) -> bool:
    """Whether a terminal of this size is smaller than the layout needs."""
    return width < MIN_SIZE[0] or height < MIN_SIZE[1]


def too_small_text(width: int, height: int) -> str:
    """What the app shows instead of its layout in a terminal that is too small."""
    return (
        f"The terminal is {width}x{height}; neuroscope needs at least "
        f"{MIN_SIZE[0]}x{MIN_SIZE[1]}.\nEnlarge the window (or the font smaller); q quits."
    )
