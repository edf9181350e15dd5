"""What the connectivity, residual, flow and lens views share: a grid, its scale and a side panel.

A `GridView` shows one `LayerHeatmap` (rows are layers) over a `ColorBar`, a side panel for
the cell under the cursor, a title line saying what is shown and which keys change it, and an
optional bottom area. Subclasses say what the grid holds (`build_grid`) and what the side
panel says (`describe_cell`); this class keeps the heatmap cursor and the app-wide selection
in step: the cursor row is a layer, and on grids whose columns are tokens the column is the
selected token. The heatmap's own keys move the cursor (arrows/hjkl, PageUp/PageDown,
Home/End, g/G, click).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Static

from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.text_safety import visible, visible_text
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.views.base import Selection, TraceView
from neuroscope_tui.tui.widgets.colorbar import ColorBar
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap

# A grid that took MIN_COSTLY seconds or more to build (CKA over hundreds of tokens) is rebuilt
# at most once per BUSY_FACTOR x its cost while a run adds tokens.
MIN_COSTLY = 0.02
BUSY_FACTOR = 4.0


@dataclass
class Grid:
    """What a GridView draws: colours in [0, 1] and the raw values [rows, columns], labels."""

    values_norm: np.ndarray
    raw: np.ndarray
    column_labels: list[str]
    n_prompt: int  # columns before this one are drawn as prompt tokens
    layer_ids: list[int]
    label: str
    unit: str
    lo: float
    hi: float
    columns_are_tokens: bool = True


def unit_range(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map `values` from [lo, hi] onto [0, 1] (NaN stays NaN; a flat range maps to 0.5)."""
    values = np.asarray(values, dtype=np.float64)
    if not hi > lo:
        return np.where(np.isnan(values), np.nan, 0.5)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values, (nan, nan) when there are none."""
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.min()), float(finite.max())


class GridView(TraceView):
    """A heatmap view of one analysis; see the module docstring."""

    DEFAULT_CSS = """
    GridView { layout: vertical; }
    GridView .grid-title { height: 1; background: $boost; padding: 0 1; }
    GridView .grid-top { height: 1fr; }
    GridView .grid-left { width: 1fr; }
    GridView LayerHeatmap { height: 1fr; }
    GridView .grid-side { width: 42; padding: 0 1; border-left: vkey $foreground 20%; }
    GridView .grid-bottom { height: auto; max-height: 12; }
    """

    cell_width = 3
    heatmap_class: type[LayerHeatmap] = LayerHeatmap

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.grid: Grid | None = None
        self.problem: str | None = None  # why nothing can be drawn, said in the side panel
        self._drawn: tuple | None = None
        self._ready = False  # children composed (is_mounted is still False inside on_mount)
        self._built_at = 0.0  # when the grid was last built, and how long that took (s)
        self._build_cost = 0.0
        self._timer: Timer | None = None

    # ---- for subclasses ----------------------------------------------------------------------

    def build_grid(self, trace: Trace) -> Grid:
        """The grid of `trace`; raise NeuroscopeError to say why there is none."""
        raise NotImplementedError

    def grid_key(self, trace: Trace) -> tuple:
        """What the grid depends on, as (id(trace), n_tokens, *settings): rebuilt when it
        changes (while a run only adds tokens, a costly grid is rebuilt less often)."""
        return (id(trace), trace.n_tokens)

    def title_text(self) -> str:
        """The title line: what the grid shows and the keys that change it."""
        return ""

    def describe_cell(self, row: int, column: int) -> Text | str:
        """The side panel for the cell under the cursor."""
        return ""

    def nothing_to_draw(self, trace: Trace | None) -> str | None:
        """Why there is nothing to draw yet, said in the side panel (None: build the grid)."""
        if trace is None or trace.n_tokens == 0:
            return "no run yet: type a prompt, or open a snapshot."
        return None

    def compose_bottom(self) -> ComposeResult:
        """Widgets under the grid (none by default)."""
        yield from ()

    def draw_bottom(self, row: int, column: int) -> None:
        """Redraw the bottom area for the cell under the cursor."""

    # ---- layout and drawing ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(classes="grid-title")
        with Horizontal(classes="grid-top"):
            with Vertical(classes="grid-left"):
                yield self.heatmap_class(cell_width=self.cell_width, classes="grid-heatmap")
                yield ColorBar()
            yield Static(classes="grid-side")
        with Horizontal(classes="grid-bottom"):
            yield from self.compose_bottom()

    def on_mount(self) -> None:
        # the app may hand over its trace and selection before this view finished mounting
        self._ready = True
        self.refresh_view()
        self.heatmap.focus()

    @property
    def heatmap(self) -> LayerHeatmap:
        return self.query_one(".grid-heatmap", LayerHeatmap)

    def invalidate(self) -> None:
        """Rebuild the grid on the next redraw (after a setting changed)."""
        self._drawn = None
        self.refresh_view()

    def refresh_view(self) -> None:
        if not self._ready:
            return
        self._draw_title()
        trace = self.trace
        empty = self.nothing_to_draw(trace)
        if empty is not None:
            self._show_problem(empty)
            return
        key = self.grid_key(trace)
        if key != self._drawn and self._defer(key):
            pass  # a costly grid during a run: redrawn by a timer, the old one stays meanwhile
        elif key != self._drawn:
            self._drawn = key
            started = time.perf_counter()
            try:
                self.grid = self.build_grid(trace)
                self.problem = None
            except NeuroscopeError as err:
                self._show_problem(str(err))
                return
            finally:
                self._built_at = time.perf_counter()
                self._build_cost = self._built_at - started
            g = self.grid
            self.heatmap.set_data(g.values_norm, g.raw, g.column_labels, g.n_prompt, g.layer_ids)
            self.query_one(ColorBar).set_scale(g.label, g.unit, g.lo, g.hi, "global")
        if self.grid is None:
            return
        self._draw_title()  # as built
        self._follow_selection()
        self._draw_cell()

    def _draw_title(self) -> None:
        # Text, not a markup string: a title may quote a token such as "[/]"
        self.query_one(".grid-title", Static).update(Text(visible(self.title_text())))

    def _defer(self, key: tuple) -> bool:
        """Whether to put off rebuilding for `key`: only when just the token count moved on
        and the last build was costly and recent (so a live run never spends more than about
        1 / (1 + BUSY_FACTOR) of the UI thread on this grid); a timer rebuilds later."""
        if self.grid is None or self._drawn is None or key[2:] != self._drawn[2:]:
            return False
        wait = BUSY_FACTOR * self._build_cost - (time.perf_counter() - self._built_at)
        if self._build_cost < MIN_COSTLY or wait <= 0:
            return False
        if self._timer is None:
            self._timer = self.set_timer(wait, self._deferred_refresh)
        return True

    def _deferred_refresh(self) -> None:
        self._timer = None
        self.refresh_view()

    def _show_problem(self, text: str) -> None:
        self.grid = None
        self.problem = text
        self.heatmap.set_data(np.zeros((0, 0)), np.zeros((0, 0)), [], 0, [])
        self.query_one(".grid-side", Static).update(Text(visible(text, newlines=True), "italic"))

    def show_selection(self, selection: Selection) -> None:
        self.selection = selection
        if self._ready and self.grid is not None:
            self._follow_selection()
            self._draw_cell()

    def _follow_selection(self) -> None:
        """Put the heatmap cursor on the app-wide selection (its layer number -> row)."""
        g = self.grid
        row, column = self.heatmap.cursor
        if self.selection.layer in g.layer_ids:
            row = g.layer_ids.index(self.selection.layer)
        if g.columns_are_tokens:
            column = self.selection.token
        self.heatmap.cursor = (row, column)

    def on_layer_heatmap_cursor_moved(self, event: LayerHeatmap.CursorMoved) -> None:
        event.stop()
        if (event.layer, event.token) != tuple(event.heatmap.cursor):
            # old news: the cursor moved on before this message arrived (a live frame moves
            # it to each new token); acting on it would pull the selection back
            return
        g = self.grid
        if g is None or not g.layer_ids:
            return
        layer = g.layer_ids[min(event.layer, len(g.layer_ids) - 1)]
        changes = {"layer": layer}
        if g.columns_are_tokens:
            changes["token"] = event.token
        if any(getattr(self.selection, k) != v for k, v in changes.items()):
            self.select(**changes)
        self._draw_cell()

    def _draw_cell(self) -> None:
        row, column = self.heatmap.cursor
        side = self.describe_cell(row, column)
        side = visible_text(side) if isinstance(side, Text) else Text(visible(side, newlines=True))
        self.query_one(".grid-side", Static).update(side)
        self.draw_bottom(row, column)
