"""One head's attention pattern on screen: a query x key grid, a one-query strip, thumbnails.

`PatternGrid` is a Line-API ScrollView over a [query, key] pattern: one 2-column cell per key,
token labels on both axes (query text on the left, key text written downwards on top), the
causal upper triangle drawn as dim dots, a linear or log colour scale, the selected query row
marked and, during generation, the newest query row highlighted. A frame costs the visible
rows and columns only; rendered rows are cached until the pattern or the scale changes.

`query_weights_text` colours the prompt's tokens by the weight one query puts on them (the
terminal cousin of bertviz's head view) and `thumbnail_text` shrinks a pattern to a small
block of half-block characters for the small multiples.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from neuroscope_tui.tui.widgets.heatmap_render import token_shown

N_COLOURS = 256
LOG_FLOOR = 1e-4  # the log scale spans 1e-4 .. 1: weights below it look like zero

# dark blue -> teal -> yellow: dark means "no attention", so the empty triangle reads as empty
_ANCHORS = np.array(
    [[13, 8, 52], [59, 28, 140], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=float
)


@lru_cache(maxsize=1)
def colour_ramp() -> list[tuple[int, int, int]]:
    """N_COLOURS RGB colours from low to high weight."""
    x = np.linspace(0, len(_ANCHORS) - 1, N_COLOURS)
    lo = np.floor(x).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (x - lo)[:, None]
    rgb = _ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac
    return [tuple(round(c) for c in row) for row in rgb]


@lru_cache(maxsize=1)
def cell_styles() -> list[Style]:
    """One background style per colour bucket, built once (a Style per cell costs frames)."""
    return [Style(bgcolor=f"rgb({r},{g},{b})") for r, g, b in colour_ramp()]


def text_colour(bucket: int) -> str:
    """Black on the bright end of the ramp, white on the dark end."""
    r, g, b = colour_ramp()[bucket]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "white"


def to_unit(weights: np.ndarray, log: bool) -> np.ndarray:
    """Attention weights -> [0, 1] positions on the colour scale (linear, or log10 from 1e-4)."""
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0).clip(0.0, 1.0)
    if not log:
        return w
    return ((np.log10(np.maximum(w, LOG_FLOOR)) - np.log10(LOG_FLOOR)) / -np.log10(LOG_FLOOR)).clip(
        0, 1
    )


def buckets(weights: np.ndarray, log: bool = False) -> np.ndarray:
    """Colour bucket (0..N_COLOURS-1) of each weight."""
    return np.minimum((to_unit(weights, log) * N_COLOURS).astype(int), N_COLOURS - 1)


def short_label(text: str, width: int) -> str:
    """A token's text made printable (spaces and newlines visible) and cut to `width`."""
    return token_shown(text)[:width]


class PatternGrid(ScrollView, can_focus=True):
    """The selected head's pattern as a query x key grid that scrolls both ways."""

    LABEL_WIDTH = 12  # "  123 token·"
    HEADER_HEIGHT = 5  # key labels written downwards, up to 5 characters
    CELL_WIDTH = 2

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "query(-1)", "previous query row", show=False),
        Binding("down", "query(1)", "next query row", show=False),
        Binding("pageup", "query(-10)", "10 query rows up", show=False),
        Binding("pagedown", "query(10)", "10 query rows down", show=False),
    ]

    class QueryMoved(Message):
        """The user moved the selected query row."""

        def __init__(self, query: int) -> None:
            super().__init__()
            self.query = query

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.pattern: np.ndarray | None = None  # [T, T]
        self.labels: list[str] = []
        self.query = 0
        self.newest: int | None = None  # newest query row during generation
        self.log_scale = False
        self.message = "no pattern yet"
        self._rows: dict[tuple[int, int, int], Strip] = {}

    # ---- data --------------------------------------------------------------------------------

    def show(
        self,
        pattern: np.ndarray | None,
        labels: list[str],
        *,
        query: int = 0,
        newest: int | None = None,
        log_scale: bool = False,
        message: str = "",
    ) -> None:
        """Draw `pattern` [T, T] (None: show `message` instead) with these token labels."""
        changed = pattern is not self.pattern or log_scale != self.log_scale
        if changed or labels != self.labels:
            self._rows.clear()
        self.pattern, self.labels = pattern, list(labels)
        self.log_scale, self.newest, self.message = log_scale, newest, message
        self.query = query
        n = 0 if pattern is None else pattern.shape[0]
        self.virtual_size = Size(
            self.LABEL_WIDTH + self.CELL_WIDTH * n, self.HEADER_HEIGHT + max(n, 1)
        )
        self._keep_query_visible()
        self.refresh()

    def _keep_query_visible(self) -> None:
        body = max(1, self.size.height - self.HEADER_HEIGHT)
        top = int(self.scroll_offset.y)
        if self.query < top:
            self.scroll_to(y=self.query, animate=False)
        elif self.query >= top + body:
            self.scroll_to(y=self.query - body + 1, animate=False)

    def action_query(self, step: int) -> None:
        if self.pattern is None:
            return
        self.query = int(np.clip(self.query + step, 0, self.pattern.shape[0] - 1))
        self._keep_query_visible()
        self.refresh()
        self.post_message(self.QueryMoved(self.query))

    # ---- drawing -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self.pattern is None:
            return Strip([Segment(self.message if y == 0 else "")]).adjust_cell_length(width)
        n = self.pattern.shape[0]
        x0 = int(self.scroll_offset.x)
        first_col = x0 // self.CELL_WIDTH
        n_cols = max(0, (width - self.LABEL_WIDTH) // self.CELL_WIDTH + 1)
        cols = (first_col, min(n, first_col + n_cols))
        if y < self.HEADER_HEIGHT:
            strip = self._header_line(y, cols)
        else:
            row = int(self.scroll_offset.y) + y - self.HEADER_HEIGHT
            if row >= n:
                return Strip.blank(width)
            strip = self._row_strip(row, cols)
        return strip.crop(0, width).adjust_cell_length(width)

    def _header_line(self, y: int, cols: tuple[int, int]) -> Strip:
        dim = Style(dim=True)
        label = "key ↓" if y == 0 else ""
        segs = [Segment(label.ljust(self.LABEL_WIDTH), dim)]
        for key in range(*cols):
            text = (
                short_label(self.labels[key], self.HEADER_HEIGHT) if key < len(self.labels) else ""
            )
            ch = text[y] if y < len(text) else " "
            segs.append(Segment(ch.ljust(self.CELL_WIDTH), Style(bold=key == self.query)))
        return Strip(segs)

    def _row_strip(self, row: int, cols: tuple[int, int]) -> Strip:
        is_newest = self.newest is not None and row == self.newest
        cache_key = (row, cols[0], cols[1] * 4 + 2 * (row == self.query) + is_newest)
        strip = self._rows.get(cache_key)
        if strip is not None:
            return strip
        marker = "▶" if is_newest else ("›" if row == self.query else " ")
        text = self.labels[row] if row < len(self.labels) else ""
        label = f"{marker}{row:>4} {short_label(text, self.LABEL_WIDTH - 6)}"
        label_style = Style(reverse=True) if is_newest else Style(bold=row == self.query)
        segs = [Segment(label.ljust(self.LABEL_WIDTH), label_style)]
        styles = cell_styles()
        lo, hi = cols
        visible = min(hi, row + 1)  # keys this query can see
        if visible > lo:
            bs = buckets(self.pattern[row, lo:visible], self.log_scale)
            cell = " " * self.CELL_WIDTH
            if is_newest:
                cell = "▔" * self.CELL_WIDTH  # a line over the newest row, on top of its colour
            segs.extend(Segment(cell, styles[b]) for b in bs)
        if hi > max(lo, row + 1):
            causal = Style(color="grey35")
            segs.append(Segment("· " * (hi - max(lo, row + 1)), causal))
        strip = Strip(segs)
        if len(self._rows) > 512:
            self._rows.clear()
        self._rows[cache_key] = strip
        return strip


def colour_key(log_scale: bool, width: int = 24) -> Text:
    """The colour scale as a strip of cells with its end labels."""
    text = Text("0 " if not log_scale else "1e-4 ")
    for i in range(width):
        b = int(i / max(1, width - 1) * (N_COLOURS - 1))
        text.append(" ", cell_styles()[b])
    text.append(" 1  (log)" if log_scale else " 1  (linear)")
    return text


def query_weights_text(
    pattern_row: np.ndarray, labels: list[str], query: int, *, log_scale: bool = False
) -> Text:
    """The tokens up to `query`, each on a background coloured by the weight query puts on it."""
    text = Text()
    weights = np.asarray(pattern_row[: query + 1], dtype=np.float64)
    bs = buckets(weights, log_scale)
    for key, b in enumerate(bs):
        r, g, bl = colour_ramp()[b]
        style = Style(bgcolor=f"rgb({r},{g},{bl})", color=text_colour(int(b)))
        if key == query:
            style += Style(underline=True)
        text.append(short_label(labels[key], 16), style)
        text.append(" ")
    top = np.argsort(-weights)[:5]
    text.append("\n top keys: ")
    text.append(
        "  ".join(f"{key} {short_label(labels[key], 10)} {weights[key]:.3f}" for key in top)
    )
    return text


def shrink(pattern: np.ndarray, size: int) -> np.ndarray:
    """Mean-pool a [T, T] pattern into at most [size, size] bins (the causal zeros included)."""
    p = np.nan_to_num(np.asarray(pattern, dtype=np.float64))
    n = p.shape[0]
    if n <= size:
        return p
    edges = np.linspace(0, n, size + 1).astype(int)
    rows = np.add.reduceat(p, edges[:-1], axis=0) / np.diff(edges)[:, None]
    return np.add.reduceat(rows, edges[:-1], axis=1) / np.diff(edges)[None, :]


def thumbnail_text(pattern: np.ndarray, size: int = 16, *, log_scale: bool = False) -> Text:
    """A pattern shrunk to size x size bins drawn with half blocks (size/2 lines)."""
    small = shrink(pattern, size)
    # stretch each bin's range so a thumbnail shows its own structure, not only the diagonal
    peak = small.max() or 1.0
    bs = buckets(small / peak, log_scale)
    ramp = colour_ramp()
    text = Text()
    for r in range(0, bs.shape[0], 2):
        for c in range(bs.shape[1]):
            top = ramp[bs[r, c]]
            bottom = ramp[bs[r + 1, c]] if r + 1 < bs.shape[0] else (0, 0, 0)
            text.append(
                "▀",
                Style(color=f"rgb{top}".replace(" ", ""), bgcolor=f"rgb{bottom}".replace(" ", "")),
            )
        text.append("\n")
    text.rstrip()
    return text


def _rgb(colour: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*colour)
