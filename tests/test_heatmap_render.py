"""The heatmap's pure drawing functions and the colour bar, without an app."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from rich.color import Color
from rich.style import Style

from neuroscope_tui.tui.widgets.colorbar import colorbar_text, format_value
from neuroscope_tui.tui.widgets.heatmap_render import (
    EMPTY,
    N_BUCKETS,
    AxisStyles,
    build_palette,
    heatmap_strip,
    label_strip,
    tick_strip,
    to_buckets,
    token_label,
    viridis,
)

PALETTE = build_palette()
STYLES = AxisStyles(
    base=Style(),
    tick=Style(dim=True),
    prompt=Style(color="white"),
    generated=Style(color="yellow", underline=True),
    cursor_label=Style(reverse=True),
    gutter=Style(dim=True),
    gutter_cursor=Style(reverse=True),
)


def cells(strip) -> list[tuple[str, Style | None]]:
    """Every character of a strip with its style (one entry per terminal cell)."""
    return [(ch, seg.style) for seg in strip for ch in seg.text]


def bg(style: Style | None) -> tuple[int, int, int] | None:
    if style is None or style.bgcolor is None:
        return None
    return style.bgcolor.get_truecolor()[:3]


def test_viridis_runs_from_purple_to_yellow_with_rising_luminance():
    colours = viridis(N_BUCKETS)
    assert len(colours) == 256
    assert colours[0] == (0x44, 0x01, 0x54)
    assert colours[-1] == (0xFD, 0xE7, 0x25)
    lum = [0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b in colours]
    # non-decreasing bucket to bucket (rounding to 8 bits ties a few neighbours), rising overall
    assert all(b >= a for a, b in pairwise(lum)), "viridis is monotone"
    assert all(lum[i + 16] > lum[i] for i in range(0, 240))


def test_buckets_cover_the_unit_interval_and_mark_nan_empty():
    b = to_buckets(np.array([[0.0, 0.5, 1.0, np.nan, 0.999, 1e-9]]))
    assert b.tolist() == [[0, 128, 255, EMPTY, 255, 0]]
    assert b.dtype == np.int16


def test_strip_colours_each_character_by_its_tokens_bucket():
    rng = np.random.default_rng(0)
    row = to_buckets(rng.random(50))
    cw, x0, width = 3, 7, 40  # starts inside token 2 (characters 6..8)
    strip = heatmap_strip(row, x0, width, cw, PALETTE)
    assert strip.cell_length == width
    got = cells(strip)
    assert len(got) == width
    for i, (_, style) in enumerate(got):
        token = (x0 + i) // cw
        assert bg(style) == PALETTE.colours[row[token]], f"character {i} (token {token})"


def test_equal_neighbours_merge_into_one_segment():
    row = np.full(100, 17, dtype=np.int16)
    strip = heatmap_strip(row, 0, 60, 3, PALETTE)
    assert len(list(strip)) == 1
    assert bg(next(iter(strip)).style) == PALETTE.colours[17]


def test_cursor_cell_is_bracketed_and_cropped_with_the_view():
    row = np.full(10, 200, dtype=np.int16)
    strip = heatmap_strip(row, 0, 30, 3, PALETTE, cursor_col=4)
    text = strip.text
    assert text[12:15] == "[■]"
    assert text.replace("[■]", "").strip() == ""
    # cursor style: same colour, contrasting text, bold
    style = cells(strip)[13][1]
    assert bg(style) == PALETTE.colours[200] and style.bold
    # the view starts in the middle of the cursor cell: only its tail shows
    assert heatmap_strip(row, 13, 5, 3, PALETTE, cursor_col=4).text.startswith("■]")


def test_empty_cells_show_a_dot_and_the_row_is_padded_past_the_last_token():
    row = np.array([EMPTY, 5, EMPTY], dtype=np.int16)
    pad = Style(bgcolor="black")
    strip = heatmap_strip(row, 0, 15, 3, PALETTE, pad_style=pad)
    assert strip.text == " · " + "   " + " · " + " " * 6
    got = cells(strip)
    assert bg(got[4][1]) == PALETTE.colours[5]
    assert all(bg(s) == Color.parse("black").get_truecolor()[:3] for _, s in got[9:])


def test_strip_of_a_view_past_the_data_is_blank():
    row = np.zeros(4, dtype=np.int16)
    assert heatmap_strip(row, 100, 10, 3, PALETTE).text == " " * 10
    assert heatmap_strip(row, 0, 0, 3, PALETTE).cell_length == 0


@pytest.mark.parametrize(
    ("text", "width", "shown"),
    [
        (" Paris", 3, "·Pa"),
        ("\n", 3, "⏎  "),
        ("\t", 2, "⇥ "),
        ("", 3, "∅  "),
        ("ab", 3, "ab "),
        (" representation", 6, "·repr…"),
        ("\x00", 2, "\\x"),  # control characters as escapes (text_safety.visible), cut
        ("\x1b[2J", 8, "\\x1b[2J "),
    ],
)
def test_token_labels_make_whitespace_visible_and_fit_the_cell(text, width, shown):
    assert token_label(text, width) == shown


def test_label_row_marks_generated_tokens_and_the_cursor():
    labels = ["The", " cap", " is", " Paris", "."]
    strip = label_strip(labels, 3, 0, 15, 3, STYLES, cursor_col=1)
    assert strip.text == "The·ca·is·Pa.  "
    got = cells(strip)
    assert got[0][1] == STYLES.prompt
    assert got[3][1] == STYLES.cursor_label
    assert got[9][1] == STYLES.generated and got[12][1] == STYLES.generated
    # scrolled by 4 characters, the first label is cut mid-cell
    assert label_strip(labels, 3, 4, 6, 3, STYLES).text == "ca·is·"


def test_tick_row_numbers_positions_and_spells_the_cursor_token():
    strip = tick_strip(40, 0, 60, 3, STYLES)
    assert strip.text.startswith("╵0")
    assert "╵5" in strip.text and "╵10" in strip.text
    assert strip.text.index("╵5") == 15  # token 5 starts at character 15
    with_cursor = tick_strip(40, 0, 60, 3, STYLES, cursor_col=2, cursor_text=" Paris")
    assert "▼·Paris #2" in with_cursor.text
    # a cursor near the right edge is shifted left to stay visible
    edge = tick_strip(40, 0, 30, 3, STYLES, cursor_col=9, cursor_text=" Paris")
    assert edge.text.endswith("▼·Paris #9")
    assert edge.cell_length == 30


def test_format_value_keeps_three_significant_digits():
    assert format_value(1234.5) == "1.23e+03"
    assert format_value(0.01234) == "0.0123"
    assert format_value(float("nan")) == "–"


def test_colorbar_shows_metric_range_and_gradient_ends():
    text = colorbar_text(80, "residual norm", "||x||", 0.5, 123.4, "global")
    plain = text.plain
    assert plain.startswith("residual norm [||x||] · global")
    assert "0.5 " in plain and plain.rstrip().endswith("123")
    assert len(plain) <= 80
    styles = [s.style for s in text.render(__import__("rich.console").console.Console())]
    colours = [bg(s) for s in styles if bg(s) is not None]
    assert colours[0] == PALETTE.colours[0] and colours[-1] == PALETTE.colours[-1]


def test_colorbar_names_per_group_ends_when_not_global():
    plain = colorbar_text(100, "MLP-output norm", "||mlp||", 1.0, 9.0, "per layer").plain
    assert plain.startswith("MLP-output norm [||mlp||] · per layer (all: 1…9)  min ")
    assert plain.endswith(" max")
    narrow = colorbar_text(50, "MLP-output norm", "||mlp||", 1.0, 9.0, "per token").plain
    assert narrow.startswith("MLP-output norm · per token  min ") and len(narrow) == 50


def test_colorbar_gives_way_to_the_gradient_when_narrow():
    for width in (80, 50, 36, 30, 24):
        plain = colorbar_text(width, "residual norm", "||x||", 4.08, 31.7, "global").plain
        assert len(plain) == width
        gradient = len(plain) - len(plain.rstrip("0123456789. ").rstrip())
        assert plain.startswith("r")
        assert gradient > 0
    assert colorbar_text(36, "residual norm", "||x||", 4.08, 31.7, "global").plain.startswith(
        "residual norm  4.08 "
    )


def test_cursor_on_an_empty_cell_is_drawn_in_the_empty_cursor_style():
    row = np.array([EMPTY, EMPTY, 3], dtype=np.int16)
    strip = heatmap_strip(row, 0, 9, 3, PALETTE, cursor_col=1)
    assert strip.text == " · [■]   "
    assert cells(strip)[4][1] == PALETTE.empty_cursor


@pytest.mark.parametrize(
    ("start", "stop", "offset", "visible", "expected"),
    [
        (30, 33, 0, 60, 0),  # already shown: no move
        (60, 63, 0, 60, 3),  # just past the right edge: move by one cell
        (3, 6, 30, 60, 3),  # left of the window: bring it to the left edge
        (5, 6, 0, 4, 2),  # rows: the last visible row
    ],
)
def test_scroll_to_show_moves_as_little_as_possible(start, stop, offset, visible, expected):
    from neuroscope_tui.tui.widgets.heatmap_render import scroll_to_show

    assert scroll_to_show(start, stop, offset, visible) == expected


def test_colorbar_says_when_outliers_are_clipped():
    plain = colorbar_text(100, "residual norm", "||x||", 30.2, 1113.0, "global", clipped=True).plain
    assert plain.startswith("residual norm [||x||] · global, outliers clipped  ≤30.2 ")
    assert plain.endswith(" ≥1.11e+03")
    per_layer = colorbar_text(80, "MLP-output norm", "||mlp||", 1, 9, "per layer", clipped=True)
    assert per_layer.plain.rstrip().endswith(" high") and " low " in per_layer.plain
