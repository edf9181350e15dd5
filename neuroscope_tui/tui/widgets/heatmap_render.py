"""The layer x token heatmap's drawing, as pure functions from arrays to Strips.

`LayerHeatmap` (heatmap.py) is a thin widget over these: it keeps the data, the cursor and the
scroll position, and asks for the strips of the visible rows. Everything here can be tested
without an app. Coordinates: `x0` is the first visible character of the data area (the
horizontal scroll offset, the layer gutter excluded) and `width` the data area's width;
column c (a token) covers characters [c * cell_width, (c + 1) * cell_width).

Colours come from 256 buckets of viridis (perceptually uniform, readable by most colour-blind
users); each bucket's Style is built once, so a frame costs slicing and joining, not Style
construction (a new Style per cell costs ~250 ms for 30 x 512 cells).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from neuroscope_tui.analysis.metrics import viridis  # one colour scale: app and HTML page
from neuroscope_tui.text_safety import visible

N_BUCKETS = 256
EMPTY = -1  # the bucket of a NaN cell (nothing recorded)

VISIBLE_WHITESPACE = {" ": "·", "\n": "⏎", "\t": "⇥", "\r": "␍"}


def _contrast(rgb: tuple[int, int, int]) -> Color:
    """Black or white, whichever reads better on `rgb` (relative luminance)."""
    r, g, b = rgb
    return (
        Color.from_rgb(0, 0, 0)
        if 0.2126 * r + 0.7152 * g + 0.0722 * b > 128
        else (Color.from_rgb(255, 255, 255))
    )


@dataclass(frozen=True)
class Palette:
    """Precomputed styles of every cell kind: one per colour bucket, plain and under the cursor."""

    colours: tuple[tuple[int, int, int], ...]
    cells: tuple[Style, ...]
    cursor: tuple[Style, ...]
    empty: Style
    empty_cursor: Style
    # (bucket << 16 | length) -> Segment of `length` blanks in that bucket's colour: rows of
    # noisy data are mostly one-cell runs, and reusing their Segments halves a row's cost.
    runs: dict[int, Segment] = field(default_factory=dict, compare=False, repr=False)


@lru_cache(maxsize=4)
def build_palette(n: int = N_BUCKETS) -> Palette:
    """The palette of `n` viridis buckets (built once per process and shared by every heatmap)."""
    colours = tuple(viridis(n))
    cells = tuple(Style(bgcolor=Color.from_rgb(*c)) for c in colours)
    cursor = tuple(
        Style(bgcolor=Color.from_rgb(*c), color=_contrast(c), bold=True) for c in colours
    )
    return Palette(
        colours=colours,
        cells=cells,
        cursor=cursor,
        empty=Style(color="grey42"),
        empty_cursor=Style(color="white", bgcolor="grey35", bold=True),
    )


def to_buckets(values: np.ndarray, n: int = N_BUCKETS) -> np.ndarray:
    """Colour bucket per cell of `values` in [0, 1] (any shape): int16 in [0, n), EMPTY for NaN."""
    v = np.asarray(values, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        scaled = np.clip(v * n, 0, n - 1)  # NaN stays NaN through clip
    return np.where(np.isnan(v), EMPTY, scaled).astype(np.int16)


def _cell_text(cell_width: int, cursor: bool, empty: bool) -> str:
    """What one cell shows: blanks (colour only), a dot when empty, brackets under the cursor."""
    if cursor:
        if cell_width == 1:
            return "◆"
        return "[" + "■" * (cell_width - 2) + "]"
    if empty:
        return "·".center(cell_width)
    return " " * cell_width


CURSOR = 1000  # added to the cursor cell's bucket so it always forms a run of its own


def heatmap_strip(
    row_buckets: np.ndarray,
    x0: int,
    width: int,
    cell_width: int,
    palette: Palette,
    cursor_col: int | None = None,
    pad_style: Style | None = None,
) -> Strip:
    """One layer's cells as a Strip of exactly `width` cells, starting at character `x0`.

    `row_buckets` [token] are colour buckets (EMPTY for NaN). Runs of equal colour become one
    Segment, so a row costs its colour changes, not its cells. Past the last token the strip
    is padded with `pad_style` blanks.
    """
    if width <= 0:
        return Strip([], 0)
    n = len(row_buckets)
    c0 = max(0, x0 // cell_width)
    c1 = min(n, -(-(x0 + width) // cell_width))  # ceil: the column holding the last character
    segments: list[Segment] = []
    used = 0
    if c1 > c0:
        cols = np.array(row_buckets[c0:c1], dtype=np.int32)
        if cursor_col is not None and c0 <= cursor_col < c1:
            cols[cursor_col - c0] += CURSOR
        # Runs of equal code: where they start, how many columns, which code.
        starts = np.flatnonzero(np.diff(cols, prepend=np.int32(-(2**30))))
        lengths = np.diff(starts, append=len(cols)) * cell_width
        codes = cols[starts]
        lengths[0] -= x0 - c0 * cell_width  # the first cell may be cut by the scroll offset
        skip = x0 - c0 * cell_width
        cells, empty_style = palette.cells, palette.empty
        if pad_style is not None:
            empty_style = pad_style + empty_style
        room = width
        runs = palette.runs
        if len(runs) > 100_000:  # widths vary with the terminal; keep the memo bounded
            runs.clear()
        append = segments.append
        n_colours = len(cells)
        for code, length in zip(codes.tolist(), lengths.tolist(), strict=True):
            if length > room:
                length = room
            if 0 <= code < n_colours:  # a plain coloured run (not empty, not the cursor)
                key = code << 16 | length
                seg = runs.get(key)
                if seg is None:
                    seg = runs[key] = Segment(" " * length, cells[code])
                append(seg)
            else:
                cursor = code >= CURSOR + EMPTY  # the cursor's code is its bucket + CURSOR
                bucket = code - CURSOR if cursor else code
                run_cells = -(-(length + skip) // cell_width)
                text = _cell_text(cell_width, cursor, bucket == EMPTY) * run_cells
                if cursor:
                    style = palette.empty_cursor if bucket == EMPTY else palette.cursor[bucket]
                else:
                    style = empty_style
                segments.append(Segment(text[skip : skip + length], style))
            skip = 0
            room -= length
            if room <= 0:
                break
        used = width - room
    if used < width:
        segments.append(Segment(" " * (width - used), pad_style))
    return Strip(segments, width)


def token_shown(text: str) -> str:
    """A token's text for a label: whitespace as pictures (· ⏎ ⇥ ␍), every other
    non-printable character as its escape (`text_safety.visible`: ESC -> \\x1b), '∅' if empty."""
    return visible("".join(VISIBLE_WHITESPACE.get(ch, ch) for ch in text)) or "∅"


def token_label(text: str, width: int) -> str:
    """A token's text in `width` cells: whitespace made visible, cut to fit, padded with blanks.

    A leading space (the word-start marker of most tokenizers) shows as '·' and counts, so
    " Paris" becomes "·Pa" in 3 cells; an empty token shows as '∅'.
    """
    shown = token_shown(text)
    if len(shown) > width and width >= 5:
        shown = shown[: width - 1] + "…"
    return shown[:width].ljust(width)


@dataclass(frozen=True)
class AxisStyles:
    """The styles of the top axis and the gutter (from the widget's component classes)."""

    base: Style
    tick: Style
    prompt: Style
    generated: Style
    cursor_label: Style
    gutter: Style
    gutter_cursor: Style


def label_strip(
    labels: list[str],
    n_prompt: int,
    x0: int,
    width: int,
    cell_width: int,
    styles: AxisStyles,
    cursor_col: int | None = None,
) -> Strip:
    """The axis row of token texts, each cut to one cell; generated tokens in their own style."""
    if width <= 0:
        return Strip([], 0)
    n = len(labels)
    c0 = max(0, x0 // cell_width)
    c1 = min(n, -(-(x0 + width) // cell_width))
    segments: list[Segment] = []
    for c in range(c0, c1):
        if c == cursor_col:
            style = styles.cursor_label
        else:
            style = styles.generated if c >= n_prompt else styles.prompt
        segments.append(Segment(token_label(labels[c], cell_width), style))
    offset = x0 - c0 * cell_width
    strip = Strip(segments).crop(offset, offset + width)
    return strip.adjust_cell_length(width, styles.base)


def tick_strip(
    n_tokens: int,
    x0: int,
    width: int,
    cell_width: int,
    styles: AxisStyles,
    cursor_col: int | None = None,
    cursor_text: str = "",
) -> Strip:
    """The axis row above the labels: token positions every few columns, and the cursor's token.

    The cursor's token is written in full there ("▼·Paris #12"), since a cell holds only its
    first characters; it is shifted left to stay inside the visible width.
    """
    if width <= 0:
        return Strip([], 0)
    step = max(1, -(-8 // cell_width))  # at least 8 characters between position labels
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100) if s >= step)
    chars = [" "] * width
    kinds = [0] * width  # 0 blank/tick, 1 cursor text
    first = max(0, (x0 // cell_width) // step * step - step)
    for c in range(first, n_tokens, step):
        start = c * cell_width - x0
        if start >= width:
            break
        for i, ch in enumerate(f"╵{c}"):
            if 0 <= start + i < width:
                chars[start + i] = ch
    if cursor_col is not None and 0 <= cursor_col < n_tokens:
        shown = token_shown(cursor_text)
        if len(shown) > 24:
            shown = shown[:23] + "…"
        text = f"▼{shown} #{cursor_col}"
        start = cursor_col * cell_width - x0
        if 0 <= start < width or 0 <= start + cell_width - 1 < width:
            start = max(0, min(start, width - len(text)))
            for i, ch in enumerate(text[:width]):
                chars[start + i] = ch
                kinds[start + i] = 1
    segments: list[Segment] = []
    i = 0
    while i < width:
        j = i
        while j < width and kinds[j] == kinds[i]:
            j += 1
        style = styles.cursor_label if kinds[i] else styles.tick
        segments.append(Segment("".join(chars[i:j]), style))
        i = j
    return Strip(segments, width)


SKIPPED_MARK = "┊"  # in the gutter: the layers between this row and the next were not recorded


def gutter_segment(
    layer_id: int | None,
    gutter_width: int,
    styles: AxisStyles,
    cursor: bool,
    gap_after: bool = False,
) -> Segment:
    """The left gutter of one row: the layer number right-aligned, blank for the axis rows.

    `gap_after` marks a row after which a sampled capture skipped layers (`4┊` then `8┊`).
    """
    if layer_id is None:
        return Segment(" " * gutter_width, styles.base)
    text = f"{layer_id:>{gutter_width - 1}}{SKIPPED_MARK if gap_after else ' '}"
    return Segment(text, styles.gutter_cursor if cursor else styles.gutter)


def scroll_to_show(start: int, stop: int, offset: int, visible: int) -> int:
    """The scroll offset that shows [start, stop) in a window of `visible` cells, moving the
    current `offset` as little as possible (not at all if it already shows)."""
    if start < offset:
        return start
    if stop > offset + visible:
        return stop - visible
    return offset
