"""`LayerHeatmap`: the layer x token grid, one coloured cell per (layer, token), with a cursor.

Rows are layers (layer 0 at the top, numbered in a left gutter that stays put when scrolling
sideways), columns are tokens (prompt, then generated ones in the accent colour), and two axis
rows on top stay put when scrolling down: token positions with the cursor's full token, and
each token's first characters. Drawn with the Line API: `render_line` builds only the visible
part of one row (heatmap_render.py does the drawing), strips are cached per row, scroll offset
and data version, and a cursor move repaints only the cells it leaves and enters.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from neuroscope_tui.tui.widgets.heatmap_render import (
    AxisStyles,
    build_palette,
    gutter_segment,
    heatmap_strip,
    label_strip,
    scroll_to_show,
    tick_strip,
    to_buckets,
    token_label,
)

AXIS_ROWS = 2  # token positions + cursor token, then token labels
CELL_WIDTHS = (2, 3, 5)  # what `z` cycles through: more tokens on screen, or more of each label


class LayerHeatmap(ScrollView, can_focus=True):
    """A scrollable layer x token heatmap with a keyboard and mouse cursor.

    Give it data with `set_data`; read and move the cursor through the `cursor` reactive
    (layer row, token column); it posts `CursorMoved` whenever the cursor changes. With
    `follow` on, new tokens scroll into view as they arrive, unless the user has scrolled away
    from the end.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left,h", "move(0, -1)", "token ←", show=False),
        Binding("right,l", "move(0, 1)", "token →", show=False),
        Binding("up,k", "move(-1, 0)", "layer ↑", show=False),
        Binding("down,j", "move(1, 0)", "layer ↓", show=False),
        Binding("pageup", "page(-1)", "page of tokens ←", show=False),
        Binding("pagedown", "page(1)", "page of tokens →", show=False),
        Binding("home", "first_token", "first token", show=False),
        Binding("end", "last_token", "last token", show=False),
        Binding("g", "first_layer", "first layer", show=False),
        Binding("G", "last_layer", "last layer", show=False),
        Binding("z", "zoom", "wider/narrower token columns", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "layer-heatmap--tick",
        "layer-heatmap--prompt",
        "layer-heatmap--generated",
        "layer-heatmap--cursor-label",
        "layer-heatmap--gutter",
        "layer-heatmap--gutter-cursor",
    }
    """
    | Class | Description |
    | :- | :- |
    | `layer-heatmap--tick` | Token positions on the top axis. |
    | `layer-heatmap--prompt` | Labels of prompt tokens. |
    | `layer-heatmap--generated` | Labels of generated tokens. |
    | `layer-heatmap--cursor-label` | The cursor's token on the axis. |
    | `layer-heatmap--gutter` | Layer numbers. |
    | `layer-heatmap--gutter-cursor` | The cursor's layer number. |
    """

    DEFAULT_CSS = """
    LayerHeatmap {
        scrollbar-size: 1 1;
        & > .layer-heatmap--tick { color: $text-muted; }
        & > .layer-heatmap--prompt { color: $text; }
        & > .layer-heatmap--generated { color: $accent; text-style: bold underline; }
        & > .layer-heatmap--cursor-label { color: $text; background: $primary; text-style: bold; }
        & > .layer-heatmap--gutter { color: $text-muted; }
        & > .layer-heatmap--gutter-cursor { color: $text; background: $primary; text-style: bold; }
    }
    """

    cursor: reactive[tuple[int, int]] = reactive((0, 0), init=False, always_update=False)
    """(layer row, token column) under the cursor."""

    class CursorMoved(Message):
        """The heatmap's cursor moved to (layer row, token column)."""

        def __init__(self, heatmap: LayerHeatmap, layer: int, token: int) -> None:
            super().__init__()
            self.heatmap = heatmap
            self.layer = layer
            self.token = token

        @property
        def control(self) -> LayerHeatmap:
            return self.heatmap

    def __init__(
        self,
        cell_width: int = 3,
        follow: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.cell_width = max(1, int(cell_width))
        self.follow = follow
        self._buckets = np.zeros((0, 0), dtype=np.int16)  # [layer, token] colour buckets
        self._raw = np.zeros((0, 0), dtype=np.float32)  # [layer, token] metric values
        self._labels: list[str] = []
        self._n_prompt = 0
        self._layer_ids: list[int] = []
        self._version = 0
        self._strips: LRUCache[tuple, Strip] = LRUCache(4096)
        self._palette = build_palette()
        self._styles: AxisStyles | None = None
        self._value_name = "value"
        self._hover: tuple[int | None, int | None] | None = None  # cell under the mouse
        self._scroll_pending = False  # bring the cursor into view once laid out

    # ---- data ------------------------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        return int(self._buckets.shape[0])

    @property
    def n_tokens(self) -> int:
        return int(self._buckets.shape[1])

    @property
    def gutter_width(self) -> int:
        """Characters of the layer-number gutter: the widest number plus one blank."""
        widest = max(self._layer_ids, default=0)
        return len(str(widest)) + 1

    def set_data(
        self,
        values_norm: np.ndarray,
        raw: np.ndarray,
        token_labels: list[str],
        n_prompt: int,
        layer_ids: list[int] | None = None,
        value_name: str = "value",
    ) -> None:
        """Show new data: `values_norm` [layer, token] in [0, 1] (NaN = empty), `raw` the values
        behind them (same shape), one label per token, and how many tokens are the prompt.

        `layer_ids` are the layer numbers in the gutter (default 0..L-1); `value_name` names
        the raw values in the mouse-hover tooltip (e.g. "residual norm"). The cursor is kept
        (clamped to the new shape); with `follow` on and the view at the right end, the view
        scrolls to keep the newest token in sight.
        """
        values_norm = np.asarray(values_norm)
        if values_norm.ndim != 2 or np.shape(raw) != values_norm.shape:
            raise ValueError(
                f"set_data needs values_norm and raw of one [layer, token] shape, got "
                f"{values_norm.shape} and {np.shape(raw)}"
            )
        if len(token_labels) != values_norm.shape[1]:
            raise ValueError(
                f"{len(token_labels)} token labels for {values_norm.shape[1]} token columns"
            )
        if layer_ids is not None and len(layer_ids) != values_norm.shape[0]:
            raise ValueError(f"{len(layer_ids)} layer ids for {values_norm.shape[0]} layer rows")
        at_end = self.scroll_x >= self.max_scroll_x - 0.5
        was_empty = self.n_tokens == 0
        self._buckets = to_buckets(values_norm)
        self._raw = np.asarray(raw, dtype=np.float32)
        self._labels = list(token_labels)
        self._n_prompt = int(n_prompt)
        n_layers = values_norm.shape[0]
        self._layer_ids = list(layer_ids) if layer_ids is not None else list(range(n_layers))
        self._value_name = value_name
        self._hover = None
        self._version += 1
        self._strips.clear()
        self._set_virtual_size(
            Size(self.gutter_width + self.n_tokens * self.cell_width, AXIS_ROWS + self.n_layers)
        )
        layer, token = self.cursor
        clamped = (min(layer, max(0, n_layers - 1)), min(token, max(0, self.n_tokens - 1)))
        if clamped != self.cursor:
            self.cursor = clamped
        if was_empty:
            # First data (a snapshot opened, a view switched to): show where the cursor is;
            # jumping to the end would hide a cursor at token 0 when the tokens overflow.
            self._scroll_to_cursor()
        elif self.follow and at_end:
            self.scroll_to(x=self.max_scroll_x, animate=False, immediate=True, force=True)
        self.refresh()

    def _set_virtual_size(self, size: Size) -> None:
        """Set the scrollable size; lay out the screen again only when a scrollbar comes or
        goes. `virtual_size` is a layout reactive: set plainly, every new token's column
        re-laid out the whole screen, the costliest part of a live frame."""
        if size == self.virtual_size:
            return
        if not self.is_mounted or not self.container_size.area:
            self.virtual_size = size
            return
        bars = (self.show_horizontal_scrollbar, self.show_vertical_scrollbar)
        self.set_reactive(LayerHeatmap.virtual_size, size)
        self._scroll_update(size)  # Textual's own update of the scrollbars' extent
        if (self.show_horizontal_scrollbar, self.show_vertical_scrollbar) != bars:
            self.refresh(layout=True)

    def value_at(self, layer: int, token: int) -> float:
        """The raw metric value of a cell (NaN when empty or outside the data)."""
        if 0 <= layer < self.n_layers and 0 <= token < self.n_tokens:
            return float(self._raw[layer, token])
        return float("nan")

    # ---- cursor ----------------------------------------------------------------------------

    def validate_cursor(self, cursor: tuple[int, int]) -> tuple[int, int]:
        layer, token = cursor
        return (
            max(0, min(int(layer), self.n_layers - 1)),
            max(0, min(int(token), self.n_tokens - 1)),
        )

    def watch_cursor(self, old: tuple[int, int], new: tuple[int, int]) -> None:
        self._refresh_cells(old, new)
        self._scroll_to_cursor()
        self.post_message(self.CursorMoved(self, new[0], new[1]))

    def _cell_region(self, layer: int, token: int) -> Region:
        """Where cell (layer, token) is on the widget now (may lie outside it)."""
        sx, sy = self.scroll_offset
        x = self.gutter_width + token * self.cell_width - sx
        return Region(x, AXIS_ROWS + layer - sy, self.cell_width, 1)

    def _refresh_cells(self, old: tuple[int, int], new: tuple[int, int]) -> None:
        """Repaint only what a cursor move changes: two cells, two gutter numbers, the axis."""
        width = self.size.width
        sy = self.scroll_offset.y
        regions = [Region(0, 0, width, AXIS_ROWS)]
        for layer, token in (old, new):
            regions.append(self._cell_region(layer, token))
            regions.append(Region(0, AXIS_ROWS + layer - sy, self.gutter_width, 1))
        self.refresh(*regions)

    def _data_size(self) -> Size:
        """Width and height of the data area (the widget less gutter, axis and scrollbars)."""
        region = self.scrollable_content_region
        return Size(max(1, region.width - self.gutter_width), max(1, region.height - AXIS_ROWS))

    def _scroll_to_cursor(self) -> None:
        if not self.scrollable_content_region.area:
            # Not laid out yet (data set before the first layout): a 0-wide window would
            # scroll past the cursor; `on_resize` does it once the widget has its size.
            self._scroll_pending = True
            return
        self._scroll_pending = False
        layer, token = self.cursor
        data = self._data_size()
        sx, sy = self.scroll_offset
        cw = self.cell_width
        x = scroll_to_show(token * cw, (token + 1) * cw, sx, data.width)
        y = scroll_to_show(layer, layer + 1, sy, data.height)
        if (x, y) != (sx, sy):
            self.scroll_to(x=x, y=y, animate=False, immediate=True, force=True)

    def on_resize(self, event: events.Resize) -> None:
        if self._scroll_pending:
            self._scroll_to_cursor()

    def _move_to(self, layer: int, token: int) -> None:
        """Put the cursor on (layer, token), clamped, and bring it into view even if unmoved."""
        self.cursor = (layer, token)
        self._scroll_to_cursor()

    def action_move(self, d_layer: int, d_token: int) -> None:
        """Move the cursor by rows and columns."""
        layer, token = self.cursor
        self._move_to(layer + d_layer, token + d_token)

    def action_page(self, direction: int) -> None:
        """Move the cursor by one screen of tokens."""
        page = max(1, self._data_size().width // self.cell_width)
        self.action_move(0, direction * page)

    def action_zoom(self) -> None:
        """Cycle the token column width (2, 3, 5 characters), keeping the cursor in view."""
        widths = CELL_WIDTHS
        self.cell_width = next((w for w in widths if w > self.cell_width), widths[0])
        self._strips.clear()
        self.virtual_size = Size(
            self.gutter_width + self.n_tokens * self.cell_width, AXIS_ROWS + self.n_layers
        )
        self._scroll_to_cursor()
        self.refresh()

    def action_first_token(self) -> None:
        self._move_to(self.cursor[0], 0)

    def action_last_token(self) -> None:
        self._move_to(self.cursor[0], self.n_tokens - 1)

    def action_first_layer(self) -> None:
        self._move_to(0, self.cursor[1])

    def action_last_layer(self) -> None:
        self._move_to(self.n_layers - 1, self.cursor[1])

    def cell_at(self, x: int, y: int) -> tuple[int | None, int | None]:
        """The (layer, token) under widget offset (x, y); None for an axis that was missed."""
        sx, sy = self.scroll_offset
        layer = y - AXIS_ROWS + sy if y >= AXIS_ROWS else None
        token = (x - self.gutter_width + sx) // self.cell_width if x >= self.gutter_width else None
        if layer is not None and not 0 <= layer < self.n_layers:
            layer = None
        if token is not None and not 0 <= token < self.n_tokens:
            token = None
        return layer, token

    def on_click(self, event: events.Click) -> None:
        """A click on a cell selects it; on the axis, a token; on the gutter, a layer."""
        offset = event.get_content_offset(self)
        if offset is None or self.n_layers == 0 or self.n_tokens == 0:
            return
        layer, token = self.cell_at(offset.x, offset.y)
        if layer is None and token is None:
            return
        event.stop()
        self.focus()
        self.cursor = (
            self.cursor[0] if layer is None else layer,
            self.cursor[1] if token is None else token,
        )

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """Name the cell under the mouse in a tooltip: layer, token and its raw value."""
        offset = event.get_content_offset(self)
        cell = self.cell_at(offset.x, offset.y) if offset is not None else (None, None)
        if cell == self._hover:
            return
        self._hover = cell
        words = self.describe_cell(*cell)
        # Text, not str: a token such as "[b]" must not be read as markup
        self.tooltip = None if words is None else Text(words)

    def describe_cell(self, layer: int | None, token: int | None) -> str | None:
        """One line about a cell (None outside the cells), e.g. "layer 3 · token 7 '·Paris'"."""
        if layer is None or token is None:
            return None
        text = token_label(self._labels[token], 24).rstrip()
        kind = "generated" if token >= self._n_prompt else "prompt"
        value = self.value_at(layer, token)
        shown = "not recorded" if np.isnan(value) else f"{value:.4g}"
        return (
            f"layer {self._layer_ids[layer]} · token {token} {text!r} ({kind})\n"
            f"{self._value_name}: {shown}"
        )

    # ---- drawing ---------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
        self._styles = None

    def _axis_styles(self) -> AxisStyles:
        """The axis and gutter styles, looked up once per style change (not once per row)."""
        if self._styles is None:
            self._styles = self._lookup_styles()
        return self._styles

    def _lookup_styles(self) -> AxisStyles:
        base = self.rich_style
        get = self.get_component_rich_style
        return AxisStyles(
            base=base,
            tick=base + get("layer-heatmap--tick", partial=True),
            prompt=base + get("layer-heatmap--prompt", partial=True),
            generated=base + get("layer-heatmap--generated", partial=True),
            cursor_label=base + get("layer-heatmap--cursor-label", partial=True),
            gutter=base + get("layer-heatmap--gutter", partial=True),
            gutter_cursor=base + get("layer-heatmap--gutter-cursor", partial=True),
        )

    def render_line(self, y: int) -> Strip:
        """Row `y` of the widget: an axis row, or the visible cells of one layer."""
        sx, sy = self.scroll_offset
        width = self.size.width
        layer_cur, token_cur = self.cursor
        if y < AXIS_ROWS:
            key: tuple = ("axis", y, sx, width, self._version, token_cur)
        else:
            layer = y - AXIS_ROWS + sy
            on_cursor = layer == layer_cur
            key = ("row", layer, sx, width, self._version, token_cur if on_cursor else -1)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._render_row(y, sx, sy, width)
            self._strips[key] = strip
        return strip

    def _render_row(self, y: int, sx: int, sy: int, width: int) -> Strip:
        """Build row `y`: gutter + the visible part of the axis row or of one layer's cells."""
        styles = self._axis_styles()
        gutter = self.gutter_width
        data_width = max(0, width - gutter)
        layer_cur, token_cur = self.cursor
        has_cursor = self.n_tokens > 0 and self.n_layers > 0
        cursor_col = token_cur if has_cursor else None
        if y == 0:
            text = self._labels[token_cur] if has_cursor else ""
            # the cursor's token text must end left of a vertical scrollbar, not under it
            shown = max(0, min(data_width, self.scrollable_content_region.width - gutter))
            body = tick_strip(self.n_tokens, sx, shown, self.cell_width, styles, cursor_col, text)
            body = Strip(list(body), shown).adjust_cell_length(data_width, styles.base)
        elif y == 1:
            body = label_strip(
                self._labels, self._n_prompt, sx, data_width, self.cell_width, styles, cursor_col
            )
        else:
            layer = y - AXIS_ROWS + sy
            if not 0 <= layer < self.n_layers:
                return Strip.blank(width, styles.base)
            on_cursor = has_cursor and layer == layer_cur
            cursor = cursor_col if on_cursor else None
            body = heatmap_strip(
                self._buckets[layer], sx, data_width, self.cell_width, self._palette, cursor,
                pad_style=styles.base,
            )  # fmt: skip
            ids = self._layer_ids
            # a sampled capture skips layers: the marker shows where (see gutter_segment)
            gap = layer + 1 < len(ids) and ids[layer + 1] - ids[layer] > 1
            lead = gutter_segment(ids[layer], gutter, styles, on_cursor, gap_after=gap)
            return Strip([lead, *body], gutter + data_width).adjust_cell_length(width)
        lead = gutter_segment(None, gutter, styles, False)
        return Strip([lead, *body], gutter + data_width).adjust_cell_length(width)

    def frame_strips(self) -> list[Strip]:
        """Every strip of one frame as drawn now (for the benchmark and tests)."""
        return [self.render_line(y) for y in range(self.size.height)]
