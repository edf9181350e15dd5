"""`ColorBar`: the heatmap's colour scale: metric, normalisation, and the values at both ends."""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from neuroscope_tui.tui.widgets.heatmap_render import build_palette


def format_value(value: float) -> str:
    """A metric value in at most ~7 characters: 3 significant digits, '–' when unknown."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value + 0.0:.3g}"  # + 0.0 turns -0.0 into 0.0: no "-0" on screen


def scale_ends(lo: float, hi: float, normalisation: str, clipped: bool = False) -> tuple[str, str]:
    """What the two ends of the bar say: raw values for a global scale, else "min" and "max",
    each layer's (or token's) own, as the title's "per layer" ("per token") tells. With
    outliers clipped the ends are "≤lo" and "≥hi" (or "low" and "high"): cells beyond the
    fences share the end colours."""
    if normalisation != "global":
        return ("low", "high") if clipped else ("min", "max")
    left, right = format_value(lo), format_value(hi)
    return (f"≤{left}", f"≥{right}") if clipped else (left, right)


MIN_BAR = 8  # the gradient keeps at least this many cells; the words give way first


def colorbar_text(
    width: int,
    label: str,
    unit: str,
    lo: float,
    hi: float,
    normalisation: str,
    clipped: bool = False,
) -> Text:
    """One line: "label [unit] · normalisation  LO ▕gradient▏ HI" fitted into `width` cells.

    The gradient samples the same viridis buckets as the heatmap, left = 0, right = 1, and
    takes what the words leave. When space is short the words shrink in steps (the overall
    range, then the unit, then the normalisation) before the label itself is cut. `clipped`
    says the scale ends at outlier fences (see analysis.metrics.normalise).
    """
    if not label:
        return Text(no_wrap=True)  # no metric yet (empty run, view still computing): no bar
    palette = build_palette()
    left, right = scale_ends(lo, hi, normalisation, clipped)
    mode = f"{normalisation}, outliers clipped" if clipped else normalisation
    titles = [f"{label} [{unit}] · {mode}", f"{label} · {mode}", label]
    if not unit:
        titles.pop(0)
    if clipped:  # "≤lo" and "≥hi" (or low/high) already say the scale is clipped
        titles.insert(-1, f"{label} · {normalisation}")
    if normalisation != "global":
        titles.insert(0, f"{titles[0]} (all: {format_value(lo)}…{format_value(hi)})")
    ends = 2 + len(left) + 1 + 1 + len(right)  # "  LO " + gradient + " HI"
    title = next((t for t in titles if len(t) + ends + MIN_BAR <= width), None)
    if title is None:
        room = max(0, width - ends - MIN_BAR)
        title = label[: max(0, room - 1)] + "…" if room > 1 else ""
    bar = max(1, width - len(title) - ends)
    text = Text(no_wrap=True, overflow="crop")
    text.append(title, Style(bold=True))
    text.append("  ")
    text.append(left + " ")
    n = len(palette.cells)
    for i in range(bar):
        bucket = min(n - 1, (i * n) // max(1, bar - 1)) if bar > 1 else 0
        text.append(" ", palette.cells[bucket])
    text.append(" " + right)
    return text


class ColorBar(Widget):
    """The colour scale under the heatmap; call `set_scale` when the metric or data change."""

    DEFAULT_CSS = """
    ColorBar {
        height: 1;
        width: 1fr;
    }
    """

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.label = ""
        self.unit = ""
        self.lo = float("nan")
        self.hi = float("nan")
        self.normalisation = "global"
        self.clipped = False

    def set_scale(
        self,
        label: str,
        unit: str,
        lo: float,
        hi: float,
        normalisation: str,
        clipped: bool = False,
    ) -> None:
        """Show the scale of metric `label` [`unit`], raw range lo..hi, under `normalisation`
        (with `clipped`, lo and hi are the outlier fences: `metrics.scale_bounds`)."""
        before = self._words()
        self.label, self.unit = label, unit
        self.lo, self.hi = float(lo), float(hi)
        self.normalisation = normalisation
        self.clipped = clipped
        # a live run sets the scale at every frame, and its ends rarely change in their three
        # digits: redraw only when the words on the bar change
        if self._words() != before:
            self.refresh()

    def _words(self) -> tuple:
        """Everything the bar shows besides its width (the values as printed)."""
        lo, hi = format_value(self.lo), format_value(self.hi)
        return (self.label, self.unit, lo, hi, self.normalisation, self.clipped)

    def render(self) -> Text:
        return colorbar_text(
            self.size.width,
            self.label,
            self.unit,
            self.lo,
            self.hi,
            self.normalisation,
            self.clipped,
        )
