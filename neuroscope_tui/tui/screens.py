"""What the app shows while the model loads (a line under the prompt box), when loading fails
(a panel over the views), and the "terminal too small" notice.

Loading is not a modal screen: the layout opens at once and the prompt box takes typing while
the model loads in the worker, so a user who types at once loses nothing.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from neuroscope_tui.text_safety import visible

MIN_SIZE = (80, 24)


def loading_text(model_name: str, step: str, queued: str | None) -> Text:
    """The line under the prompt box while the model loads: which step it is on (the loader's
    own progress string), and the prompt that runs when it is ready, if one is queued."""
    out = Text(no_wrap=True, overflow="ellipsis")
    # Text, not markup: a model folder may be named "[b]x" (control characters too)
    out.append(f"loading {visible(model_name)}", style="bold")
    out.append(f": {visible(step)}…" if step else "…")
    if queued is not None:
        shown = visible(queued)
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        # short: the notice already said it in full, and 120 columns must hold the whole line
        out.append(f"  queued “{shown}”: ", style="bold")
        out.append("runs when ready (Esc cancels)")
    return out


class LoadFailedPanel(Static):
    """Why the model could not be loaded, in place of the views, and that q quits."""

    DEFAULT_CSS = """
    LoadFailedPanel {
        height: auto; border: thick $error; padding: 1 2; margin: 1 0;
        color: $error; text-style: bold;
    }
    """

    def __init__(self, model_name: str, text: str) -> None:
        shown = visible(text, newlines=True)
        super().__init__(
            Text(f"loading {visible(model_name)} failed\n\n{shown}\n\npress q to quit"),
            id="load-failed",
        )
        self.text = text


def too_small(width: int, height: int) -> bool:
    """Whether a terminal of this size is smaller than the layout needs."""
    return width < MIN_SIZE[0] or height < MIN_SIZE[1]


def too_small_text(width: int, height: int) -> str:
    """What the app shows instead of its layout in a terminal that is too small."""
    return (
        f"The terminal is {width}x{height}; neuroscope needs at least "
        f"{MIN_SIZE[0]}x{MIN_SIZE[1]}.\nEnlarge the window (or the font smaller); q quits."
    )
