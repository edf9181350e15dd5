"""The head overview: a layers x heads grid coloured by one head score, with a cursor.

Line API: one row per layer, one 5-column cell per head holding the head's type letters
(P previous-token, I induction, D duplicate-token, S sink, U near-uniform, R redundant) on a
background coloured by the score (every score lies in 0..1, so the scale is fixed 0..1 and
grids of different runs compare). The header row with head numbers stays on top. Moving the
cursor refreshes only the two cells that changed.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from neuroscope_tui.tui.widgets.pattern import N_COLOURS, colour_ramp, text_colour


class HeadGrid(ScrollView, can_focus=True):
    """Layers (rows) x heads (columns), coloured by a score in 0..1; arrows move the cursor."""

    LABEL_WIDTH = 5  # "L12  "
    CELL_WIDTH = 5

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1, 0)", "previous layer", show=False),
        Binding("down", "move(1, 0)", "next layer", show=False),
        Binding("left", "move(0, -1)", "previous head", show=False),
        Binding("right", "move(0, 1)", "next head", show=False),
    ]

    class CursorMoved(Message):
        """The cursor is on another head: `row` indexes the grid's layers, `head` the head."""

        def __init__(self, row: int, head: int) -> None:
            super().__init__()
            self.row = row
            self.head = head

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values = np.zeros((0, 0))  # [L, H] in 0..1, NaN where undefined
        self.letters: list[list[str]] = []  # [L][H] type letters
        self.layer_labels: list[int] = []
        self.row = 0
        self.head = 0
        self._styles = [
            Style(bgcolor=f"rgb({r},{g},{b})", color=text_colour(i))
            for i, (r, g, b) in enumerate(colour_ramp())
        ]

    def show(self, values: np.ndarray, letters: list[list[str]], layer_labels: list[int]) -> None:
        """Draw `values` [L, H] with type `letters` [L][H] for model layers `layer_labels`."""
        self.values = np.asarray(values, dtype=np.float64)
        self.letters = letters
        self.layer_labels = list(layer_labels)
        n_layers, n_heads = self.values.shape
        self.row = min(self.row, max(0, n_layers - 1))
        self.head = min(self.head, max(0, n_heads - 1))
        self.virtual_size = Size(self.LABEL_WIDTH + self.CELL_WIDTH * n_heads, n_layers + 1)
        self.refresh()

    def move_to(self, row: int, head: int) -> None:
        """Put the cursor on (row, head) without posting a message (the app moved it)."""
        n_layers, n_heads = self.values.shape
        if not n_layers:
            return
        old = (self.row, self.head)
        self.row = int(np.clip(row, 0, n_layers - 1))
        self.head = int(np.clip(head, 0, n_heads - 1))
        self._refresh_cell(*old)
        self._refresh_cell(self.row, self.head)
        # the cell and the header row above it; the cell's region is widened on the left by
        # the layer labels, which stay put over the scrolled cells
        x = self.head * self.CELL_WIDTH
        self.scroll_to_region(
            Region(x, self.row, self.CELL_WIDTH + self.LABEL_WIDTH, 2), animate=False
        )

    def action_move(self, d_row: int, d_head: int) -> None:
        if not self.values.size:
            return
        self.move_to(self.row + d_row, self.head + d_head)
        self.post_message(self.CursorMoved(self.row, self.head))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1 or offset.x < self.LABEL_WIDTH:
            return
        row = offset.y - 1 + int(self.scroll_offset.y)
        head = (offset.x - self.LABEL_WIDTH + int(self.scroll_offset.x)) // self.CELL_WIDTH
        if row < self.values.shape[0] and head < self.values.shape[1]:
            self.move_to(row, head)
            self.post_message(self.CursorMoved(self.row, self.head))

    def _refresh_cell(self, row: int, head: int) -> None:
        x = self.LABEL_WIDTH + head * self.CELL_WIDTH - int(self.scroll_offset.x)
        y = row + 1 - int(self.scroll_offset.y)
        self.refresh(Region(x, y, self.CELL_WIDTH, 1))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width  # without the scrollbars
        n_layers, n_heads = self.values.shape
        x0 = int(self.scroll_offset.x)
        if y == 0:
            segs = [Segment(" " * self.LABEL_WIDTH)]
            segs += [
                Segment(f"h{h}".center(self.CELL_WIDTH), Style(dim=True)) for h in range(n_heads)
            ]
            return self._more_heads_hint(self._crop(Strip(segs), x0, width), x0, width)
        row = y - 1 + int(self.scroll_offset.y)
        if row >= n_layers:
            return Strip.blank(width)
        segs = [Segment(f"L{self.layer_labels[row]}".ljust(self.LABEL_WIDTH), Style(dim=True))]
        for head in range(n_heads):
            v = self.values[row, head]
            letters = self.letters[row][head] if self.letters else ""
            if np.isnan(v):
                style = Style(color="grey50")
                text = (letters or "·").center(self.CELL_WIDTH)
            else:
                style = self._styles[min(int(v * N_COLOURS), N_COLOURS - 1)]
                text = letters[:3].center(self.CELL_WIDTH)
            if (row, head) == (self.row, self.head):
                style = style + Style(reverse=True, bold=True)
                text = f"[{letters[:3]:^3}]"
            segs.append(Segment(text, style))
        return self._crop(Strip(segs), x0, width)

    def heads_right_of_view(self, x0: int | None = None, width: int | None = None) -> int:
        """How many heads lie (partly) right of the visible cells."""
        x0 = int(self.scroll_offset.x) if x0 is None else x0
        width = self.scrollable_content_region.width if width is None else width
        shown = max(0, (x0 + width - self.LABEL_WIDTH) // self.CELL_WIDTH)
        return max(0, self.values.shape[1] - shown)

    def _more_heads_hint(self, strip: Strip, x0: int, width: int) -> Strip:
        # a narrow terminal shows fewer heads than the layer has: say so on the header row
        hidden = self.heads_right_of_view(x0, width)
        if not hidden or width <= self.LABEL_WIDTH:
            return strip
        hint = f"+{hidden}→"[: width - 1]
        tail = Strip([Segment(hint, Style(bold=True, reverse=True))])
        return Strip.join([strip.crop(0, width - len(hint)), tail])

    def _crop(self, strip: Strip, x0: int, width: int) -> Strip:
        # the layer labels stay put; only the head cells scroll sideways
        if x0:
            head, cells = strip.divide([self.LABEL_WIDTH, strip.cell_length])[:2]
            strip = Strip.join([head, cells.crop(x0, x0 + width)])
        return strip.crop(0, width).adjust_cell_length(width)
