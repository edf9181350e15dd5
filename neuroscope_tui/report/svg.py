"""Small inline SVG figures for the report, written by hand: no plotting library, no script.

Each function returns one `<svg>` element of a fixed size (so a report of many findings lays
out the same in every browser) with a `<title>` for screen readers. Every text inside comes
from a model, a prompt file or a snapshot, so it passes through `visible` (control characters
shown as escapes) and `html.escape`; no figure refers to anything outside itself.

- `line_plot`: one or more per-layer curves, an optional dashed threshold line; a log scale
  when the values are positive and span more than two orders of magnitude (a massive
  activation next to the median would otherwise flatten every other layer to zero).
- `bar_chart`: labelled horizontal bars (the report's timings, counts).
- `layer_strip`: one box per layer, the layers a finding concerns filled in.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from neuroscope_tui.text_safety import visible

WIDTH = 560
PLOT_HEIGHT = 220
STRIP_HEIGHT = 46
# Colour-blind-safe (Okabe-Ito) series colours; the threshold is always the dashed grey-red.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000")
THRESHOLD_COLOUR = "#c0392b"
MAX_SERIES = len(PALETTE)
MAX_LABEL_CHARS = 28


def esc(text: object) -> str:
    """Text from anywhere, safe inside SVG/HTML text or a quoted attribute."""
    return html.escape(visible(str(text)), quote=True)


def short(text: object, limit: int = MAX_LABEL_CHARS) -> str:
    """`text` cut to `limit` characters (an ellipsis says so), before escaping."""
    s = visible(str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def fmt(value: float) -> str:
    """A number in at most about 4 significant digits: 22,013 / 3.61 / 0.0042 / 1.2e-09."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    a = abs(value)
    if a == 0:
        return "0"
    if a >= 1e7 or a < 1e-3:
        return f"{value:.2e}"
    if a >= 100:
        return f"{value:,.0f}"
    if a >= 1:
        if float(value).is_integer():
            return str(int(value))
        return f"{value:.3g}" if a < 10 else f"{value:.1f}"
    return f"{value:.3g}"


def _open(width: int, height: int, title: str) -> list[str]:
    return [
        # No xmlns: inside HTML5 the parser puts <svg> in the SVG namespace itself, and the
        # report then holds no URL at all.
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
    ]


def _is_finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _is_nan(values: Sequence[float], i: int) -> bool:
    return i < len(values) and (values[i] is None or math.isnan(values[i]))


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About `n` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def line_plot(
    series: dict[str, Sequence[float]],
    *,
    title: str,
    threshold: float | None = None,
    threshold_label: str = "threshold",
    x_label: str = "layer",
    x_start: int = 0,
) -> str:
    """Curves over layers (index i is layer x_start + i) as one fixed-size SVG.

    NaN and infinite values leave a gap in their curve (the caption of the report says how
    many); at most MAX_SERIES curves are drawn, the rest named in the title.
    """
    names = list(series)[:MAX_SERIES]
    n = max((len(series[k]) for k in names), default=0)
    values = [v for k in names for v in _finite(series[k])]
    if threshold is not None and math.isfinite(threshold):
        values.append(float(threshold))
    else:
        threshold = None
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 100
    tf = math.log10 if log else (lambda v: v)
    lo, hi = (min(map(tf, values)), max(map(tf, values))) if values else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.06
    lo, hi = lo - pad, hi + pad
    # a single curve is named by the figure's caption: the legend is for several, and the
    # threshold line
    shown_names = names if len(names) > 1 else []
    n_legend = len(shown_names) + (threshold is not None)
    left, right, top, bottom = 58, 12, 14, 36 + 16 * ((n_legend + 1) // 2)
    height = PLOT_HEIGHT + bottom - 36
    pw, ph = WIDTH - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return top + ph * (1 - (tf(v) - lo) / (hi - lo))

    out = _open(WIDTH, height, title)
    out.append(
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>'
    )
    for t in _ticks(lo, hi):  # y grid and labels (in the plotted scale)
        py = top + ph * (1 - (t - lo) / (hi - lo))
        label = fmt(10**t) if log else fmt(t)
        out.append(
            f'<line x1="{left}" y1="{py:.1f}" x2="{left + pw}" y2="{py:.1f}" stroke="#e4e4e4"/>'
        )
        out.append(
            f'<text x="{left - 4}" y="{py + 4:.1f}" font-size="10" text-anchor="end">'
            f"{esc(label)}</text>"
        )
    step = max(1, math.ceil(n / 12))
    for i in range(0, n, step):  # x labels
        out.append(
            f'<text x="{x(i):.1f}" y="{top + ph + 13}" font-size="10" text-anchor="middle">'
            f"{x_start + i}</text>"
        )
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{top + ph + 27}" font-size="11" '
        f'text-anchor="middle">{esc(x_label)}</text>'
    )
    if log:
        out.append(
            f'<text x="{left + 4}" y="{top + 11}" font-size="10" fill="#777">log scale</text>'
        )
    if threshold is not None:
        ty = y(threshold)
        out.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{left + pw}" y2="{ty:.1f}" '
            f'stroke="{THRESHOLD_COLOUR}" stroke-dasharray="5 3"/>'
        )
    for k, name in enumerate(names):
        colour = PALETTE[k]
        path, pen_down = [], False
        for i, v in enumerate(series[name]):
            if v is None or not math.isfinite(v):
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{x(i):.1f} {y(v):.1f}")
            pen_down = True
        if path:
            d = " ".join(path)
            out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, v in enumerate(series[name]):  # dots show isolated points between gaps
            if v is not None and math.isfinite(v) and n <= 64:
                out.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2" fill="{colour}"/>')
    bad = sorted({i for k in names for i, v in enumerate(series[k]) if not _is_finite(v)})
    for i in bad:  # a NaN or inf is a finding in itself: say so where it sits
        word = "NaN" if any(_is_nan(series[k], i) for k in names) else "inf"
        out.append(
            f'<text x="{x(i):.1f}" y="{top + ph - 4}" font-size="10" text-anchor="middle" '
            f'fill="{THRESHOLD_COLOUR}">{word}</text>'
        )
    legend = [(PALETTE[k], name, False) for k, name in enumerate(shown_names)]
    if threshold is not None:
        legend.append((THRESHOLD_COLOUR, f"{threshold_label} = {fmt(threshold)}", True))
    cols = 3 if all(len(visible(name)) <= 24 for _, name, _ in legend) else 2
    for k, (colour, name, dashed) in enumerate(legend):
        lx, ly = left + (k % cols) * (pw / cols), top + ph + 44 + 16 * (k // cols)
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        out.append(
            f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 16:.1f}" y2="{ly - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
        )
        label = esc(short(name, 40 if cols == 2 else MAX_LABEL_CHARS))
        out.append(f'<text x="{lx + 20:.1f}" y="{ly}" font-size="11">{label}</text>')
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, unit: str = "") -> str:
    """Labelled horizontal bars, longest first as given; negative or non-finite values as 0."""
    bars = list(bars)[:40]
    row, left, right, top = 18, 190, 80, 8
    height = top * 2 + row * max(1, len(bars))
    top_value = max((v for _, v in bars if math.isfinite(v) and v > 0), default=1.0)
    out = _open(WIDTH, height, title)
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        v = value if math.isfinite(value) and value > 0 else 0.0
        w = (WIDTH - left - right) * v / top_value
        out.append(
            f'<text x="{left - 6}" y="{y + 13}" font-size="11" text-anchor="end">'
            f"{esc(short(label))}</text>"
        )
        out.append(
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="#0072b2"/>'
        )
        out.append(
            f'<text x="{left + w + 4:.1f}" y="{y + 13}" font-size="11">'
            f"{esc(fmt(value))}{esc(unit)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


def layer_strip(n_layers: int, marked: Sequence[int], *, title: str) -> str:
    """One box per layer (0 at the left), the `marked` layers filled: where in the stack."""
    n = max(1, n_layers)
    left, right = 8, 8
    cw = (WIDTH - left - right) / n
    hit = {int(m) for m in marked if 0 <= int(m) < n}
    out = _open(WIDTH, STRIP_HEIGHT, title)
    for i in range(n):
        fill = "#d55e00" if i in hit else "#eeeeee"
        out.append(
            f'<rect x="{left + i * cw:.1f}" y="4" width="{max(cw - 1, 0.5):.1f}" height="18" '
            f'fill="{fill}" stroke="#bbb" stroke-width="0.5"/>'
        )
    step = max(1, math.ceil(n / 15))
    for i in range(0, n, step):
        out.append(
            f'<text x="{left + (i + 0.5) * cw:.1f}" y="36" font-size="10" '
            f'text-anchor="middle">{i}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
