"""One run as a shareable, self-contained HTML page (`neuroscope-tui export FILE html`).

What the app shows first, readable on any machine without the model, a GPU or a server: the
tokens (prompt and generated), the layer x token heatmap for every metric the run recorded,
the heads overview (one score per tab, the head types as letters) and the logit lens (each
layer's top-1 guess at the last positions, and the KL to the final distribution per layer).

Like the diagnostics report (report/html.py): inline CSS, inline SVG, no script and no URL.
Tabs are radio buttons and CSS, so switching metric or score needs no JavaScript and the page
works behind a strict content policy. Every cell carries a `<title>` (the hover text) with
its exact value. Every text from the model or the snapshot goes through `esc`. Torch-free.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neuroscope_tui import __version__
from neuroscope_tui.analysis.heads import HEAD_TYPES, SCORES, head_scores, type_letters
from neuroscope_tui.analysis.lens import lens_grid, token_text
from neuroscope_tui.analysis.metrics import METRICS, metric_values, normalise, viridis
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.report.html import CSS as REPORT_CSS
from neuroscope_tui.report.html import document_start
from neuroscope_tui.report.svg import esc, fmt, line_plot, short
from neuroscope_tui.trace import Trace

# A heatmap wider than this many token columns shows bins of consecutive tokens (each bin's
# largest value, so a spike is never averaged away) and says so: a page stays a few MB.
MAX_COLUMNS = 160
LENS_POSITIONS = 24  # the lens table shows the run's last positions, as the lens view does
CELL_W, CELL_H = 9, 10  # heatmap cell in SVG units; the SVG scales to the page's width
HEAD_CELL = 22
LEFT = 44  # room for the layer labels
N_COLOURS = 64  # CSS classes c0..c63: a cell is `class="c17"`, not a colour string each

PAGE_CSS = """
.tabs > input { position: absolute; opacity: 0; }
.tabs > label { display: inline-block; padding: .2em .7em; margin: 0 .2em .3em 0;
  border: 1px solid #ccc; border-radius: 4px; cursor: pointer; font-size: .9em; }
.tabs > input:checked + label { background: #2f5f98; color: #fff; border-color: #2f5f98; }
.tabs > input:focus-visible + label { outline: 2px solid #e69f00; }
.tabs > .panel { display: none; }
svg.grid { width: 100%; height: auto; max-width: 100%; }
.tokens span { display: inline-block; margin: 1px; padding: 0 .25em; border-radius: 3px;
  background: #eef2f7; font-family: ui-monospace, Menlo, monospace; font-size: .85em;
  white-space: pre; }
.tokens span.gen { background: #fdf1d8; }
table.lens td { font-family: ui-monospace, Menlo, monospace; font-size: .8em;
  white-space: pre; padding: .1em .3em; }
table.lens td.hit { font-weight: 700; }
.note { color: #555; font-size: .9em; }
"""


@dataclass(frozen=True)
class Tab:
    """One tab: its label on the button and the HTML of its panel."""

    label: str
    body: str


def render_page(trace: Trace, *, source: str = "") -> str:
    """The whole page for `trace` as an HTML5 document (the caller writes it atomically).

    `source` names the snapshot it came from (shown, escaped). A part the run did not record
    (no head scores, no lens) says so in its place; the rest of the page is unaffected.
    """
    model = trace.model
    title = f"neuroscope-tui run: {model.name}"
    parts = [
        *document_start(title, REPORT_CSS + PAGE_CSS + _colour_classes()),
        f"<h1>{esc(model.name)}</h1>",
        f'<p class="meta">{esc(_meta_line(trace, source))}</p>',
    ]
    parts += _notes(trace)
    parts += _tokens(trace)
    parts += _heatmap_section(trace)
    parts += _heads_section(trace)
    parts += _lens_section(trace)
    parts += [
        f'<p class="meta">Written by neuroscope-tui {esc(__version__)} from a snapshot. This '
        "file is self-contained: it loads nothing from the network and runs no script.</p>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


# ---- header -----------------------------------------------------------------------------------


def _meta_line(trace: Trace, source: str) -> str:
    m = trace.model
    bits = [
        f"{m.n_layers} layers",
        f"{m.n_heads} heads",
        f"d_model {m.d_model}",
        f"{trace.n_prompt} prompt tokens",
        f"{trace.n_generated} generated",
    ]
    if trace.stop_reason:
        bits.append(f"stopped: {trace.stop_reason}")
    if source:
        bits.append(f"from {source}")
    return " · ".join(bits)


def _notes(trace: Trace) -> list[str]:
    """What the run left out or changed: sampling, interventions."""
    notes = list(trace.spec.sampling_notes(trace.n_layers, trace.model.d_mlp))
    for iv in trace.interventions:
        notes.append(f"intervention: {iv.get('kind', '?')} {_compact(iv)}")
    if not notes:
        return []
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return [f'<ul class="note">{items}</ul>']


def _compact(iv: dict) -> str:
    shown = {k: v for k, v in iv.items() if k not in ("kind", "direction") and v is not None}
    return ", ".join(f"{k}={short(v, 24)}" for k, v in shown.items())


def _tokens(trace: Trace) -> list[str]:
    spans = []
    for t, (tid, text) in enumerate(zip(trace.token_ids, trace.token_text, strict=False)):
        cls = ' class="gen"' if t >= trace.n_prompt else ""
        spans.append(f'<span{cls} title="position {t} · id {tid}">{esc(text)}</span>')
    return [
        '<section id="tokens">',
        "<h2>Tokens</h2>",
        '<p class="note">Prompt tokens in blue, generated tokens in amber; hover for the '
        "position and id.</p>",
        f'<div class="tokens">{"".join(spans)}</div>',
        "</section>",
    ]


# ---- shared pieces ----------------------------------------------------------------------------


def _colour_classes() -> str:
    """`.c0`..`.c63` fill colours along viridis, and `.nan` for cells with nothing recorded."""
    rules = [
        f".c{i}{{fill:#{r:02x}{g:02x}{b:02x}}}" for i, (r, g, b) in enumerate(viridis(N_COLOURS))
    ]
    return "\n" + "".join(rules) + ".nan{fill:#e6e6e6}\n"


def _bucket(scaled: float) -> int | None:
    """The colour bucket of a value scaled to [0, 1]; None for NaN (nothing recorded)."""
    if not math.isfinite(scaled):
        return None
    return min(N_COLOURS - 1, max(0, int(scaled * N_COLOURS)))


def _colour_class(scaled: float) -> str:
    bucket = _bucket(scaled)
    return "nan" if bucket is None else f"c{bucket}"


def _tabs(group: str, tabs: Sequence[Tab]) -> list[str]:
    """Radio-button tabs: the first is checked; CSS shows the checked one's panel."""
    out = [f'<div class="tabs" id="{group}">']
    css = []
    for i, tab in enumerate(tabs):
        tid = f"{group}-{i}"
        checked = " checked" if i == 0 else ""
        out.append(f'<input type="radio" name="{group}" id="{tid}"{checked}>')
        out.append(f'<label for="{tid}">{esc(tab.label)}</label>')
        css.append(f"#{tid}:checked ~ #{tid}-panel{{display:block}}")
    out += [f'<div class="panel" id="{group}-{i}-panel">{tab.body}</div>' for i, tab in
            enumerate(tabs)]  # fmt: skip
    out.append("</div>")
    return [f"<style>{''.join(css)}</style>", *out]


def _token_bins(n_tokens: int) -> list[tuple[int, int]]:
    """(start, stop) token ranges, one per heatmap column: single tokens, or equal bins."""
    if n_tokens <= MAX_COLUMNS:
        return [(t, t + 1) for t in range(n_tokens)]
    edges = np.linspace(0, n_tokens, MAX_COLUMNS + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _binned(values: np.ndarray, bins: list[tuple[int, int]]) -> np.ndarray:
    """[layer, token] -> [layer, column]: each bin's largest finite value (NaN if none)."""
    if all(b - a == 1 for a, b in bins):
        return np.asarray(values, dtype=np.float64)
    out = np.full((values.shape[0], len(bins)), np.nan)
    for c, (a, b) in enumerate(bins):
        block = np.asarray(values[:, a:b], dtype=np.float64)
        finite = np.where(np.isfinite(block), block, -np.inf)
        best = finite.max(axis=1)
        out[:, c] = np.where(np.isfinite(best), best, np.nan)
    return out


# ---- heatmap ----------------------------------------------------------------------------------


def _heatmap_section(trace: Trace) -> list[str]:
    out = ['<section id="heatmap">', "<h2>Layer x token heatmap</h2>"]
    bins = _token_bins(trace.n_tokens)
    tabs = []
    for name, metric in METRICS.items():
        raw = metric_values(trace, name)
        if raw.size == 0 or not np.isfinite(raw).any():
            continue  # not recorded in this run
        values = _binned(raw, bins)
        tabs.append(Tab(f"{metric.label} ({metric.unit})", _heatmap_svg(trace, values, bins,
                                                                        metric.label)))  # fmt: skip
    if not tabs:
        out.append("<p>This run recorded none of the heatmap's metrics.</p>")
    else:
        binned = any(b - a > 1 for a, b in bins)
        out.append(
            '<p class="note">Rows are layers (top: the first), columns are tokens; each row is '
            "scaled to its own range (the app's per-layer normalisation), dark purple its "
            "minimum and yellow its maximum; grey: not recorded. Hover a cell for its value."
            + (
                f" The run's {trace.n_tokens} tokens are shown in {len(bins)} columns, each the "
                "largest value of its bin."
                if binned
                else ""
            )
            + "</p>"
        )
        out += _tabs("metric", tabs)
    out.append("</section>")
    return out


def _heatmap_svg(trace: Trace, values: np.ndarray, bins: list[tuple[int, int]], label: str) -> str:
    layers = trace.layers()[: values.shape[0]]
    scaled = normalise(values, "per layer")
    width = LEFT + CELL_W * len(bins) + 4
    height = CELL_H * len(layers) + 22
    out = [
        f'<svg class="grid" viewBox="0 0 {width} {height}" role="img" '
        f'style="max-width:{max(480, width * 3)}px">'
        f"<title>{esc(label)} per layer and token</title>"
    ]
    label_every = max(1, math.ceil(len(layers) / 16))
    for row, layer in enumerate(layers):
        y = row * CELL_H
        if row % label_every == 0:
            out.append(f'<text x="{LEFT - 4}" y="{y + CELL_H - 2}" font-size="8" '
                       f'text-anchor="end">L{layer}</text>')  # fmt: skip
        for col, (a, b) in enumerate(bins):
            v = values[row, col]
            where = f"t{a}" if b - a == 1 else f"t{a}-{b - 1}"
            text = trace.token_text[a] if b - a == 1 else ""
            hover = f"L{layer} {where} {short(text, 16)!r}: {fmt(float(v))}" if text else (
                f"L{layer} {where}: {fmt(float(v))}")  # fmt: skip
            out.append(
                f'<rect x="{LEFT + col * CELL_W}" y="{y}" width="{CELL_W}" height="{CELL_H}" '
                f'class="{_colour_class(float(scaled[row, col]))}"><title>{esc(hover)}</title>'
                "</rect>"
            )
    # the boundary between prompt and generated tokens
    if 0 < trace.n_prompt < trace.n_tokens:
        col = next((c for c, (a, b) in enumerate(bins) if a <= trace.n_prompt < b), len(bins))
        x = LEFT + col * CELL_W
        out.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{CELL_H * len(layers)}" '
                   'stroke="#e69f00" stroke-width="1.5"/>')  # fmt: skip
        # "prompt | generated" centred on the boundary, kept inside the figure
        at = min(max(x, LEFT + 40), width - 44)
        out.append(f'<text x="{at}" y="{height - 6}" font-size="8" text-anchor="middle">'
                   "prompt | generated</text>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


# ---- heads ------------------------------------------------------------------------------------


def _heads_section(trace: Trace) -> list[str]:
    out = ['<section id="heads">', "<h2>Attention heads</h2>"]
    try:
        scores = head_scores(trace)
    except KeyError:
        out += ["<p>This run kept no head scores (captured without them).</p>", "</section>"]
        return out
    legend = ", ".join(f"{letter} {name}" for name, (letter, _) in HEAD_TYPES.items())
    out.append(
        '<p class="note">Rows are layers, columns heads; the colour is the head\'s mean score '
        f"over the run (0 to 1), the letters its types: {esc(legend)}.</p>"
    )
    tabs = [Tab(name, _heads_svg(trace, scores, name, meaning)) for name, meaning in SCORES.items()]
    out += _tabs("score", tabs)
    out.append("</section>")
    return out


def _heads_svg(trace: Trace, scores, name: str, meaning: str) -> str:
    values = np.asarray(scores.values[name], dtype=np.float64)  # [L, H]
    n_layers, n_heads = values.shape
    width = LEFT + HEAD_CELL * n_heads + 4
    height = HEAD_CELL * n_layers + 16
    out = [
        f'<svg class="grid" viewBox="0 0 {width} {height}" role="img" '
        f'style="max-width:{max(320, width * 2)}px">'
        f"<title>{esc(meaning)}</title>"
    ]
    for h in range(n_heads):
        out.append(f'<text x="{LEFT + h * HEAD_CELL + HEAD_CELL / 2}" y="{height - 4}" '
                   f'font-size="8" text-anchor="middle">H{h}</text>')  # fmt: skip
    for row, layer in enumerate(scores.layers):
        y = row * HEAD_CELL
        out.append(f'<text x="{LEFT - 4}" y="{y + HEAD_CELL / 2 + 3}" font-size="8" '
                   f'text-anchor="end">L{layer}</text>')  # fmt: skip
        for h in range(n_heads):
            v = float(values[row, h])
            types = scores.types.get((layer, h), [])
            letters = type_letters(types)
            hover = f"L{layer}.H{h} {name} {fmt(v)}" + (f" · {', '.join(types)}" if types else "")
            x = LEFT + h * HEAD_CELL
            colour = _colour_class(min(1.0, max(0.0, v)) if math.isfinite(v) else v)
            out.append(
                f'<g><title>{esc(hover)}</title><rect x="{x}" y="{y}" width="{HEAD_CELL - 1}" '
                f'height="{HEAD_CELL - 1}" class="{colour}"/>'
            )
            if letters:
                ink = "#000" if math.isfinite(v) and v > 0.6 else "#fff"
                out.append(f'<text x="{x + (HEAD_CELL - 1) / 2}" y="{y + HEAD_CELL / 2 + 3}" '
                           f'font-size="8" text-anchor="middle" fill="{ink}">'
                           f"{esc(letters)}</text>")  # fmt: skip
            out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# ---- lens -------------------------------------------------------------------------------------


def _lens_section(trace: Trace) -> list[str]:
    out = ['<section id="lens">', "<h2>Logit lens</h2>"]
    try:
        grid = lens_grid(trace)
    except SnapshotError as err:
        out += [f"<p>{esc(err)}</p>", "</section>"]
        return out
    n = grid.top1_ids.shape[1]
    start = max(0, n - LENS_POSITIONS)
    texts = {int(k): v for k, v in (trace.notes.get("id_text") or {}).items()}
    texts.update(zip(trace.token_ids, trace.token_text, strict=False))
    out.append(
        '<p class="note">Each layer\'s top-1 guess for the next token, read through the '
        "model's final norm and unembedding, with its probability; bold where it is the token "
        "that actually came next. "
        + (f"The last {n - start} of {n} positions." if start else "")
        + "</p>"
    )
    head = "".join(
        f'<th title="position {t}">{esc(short(trace.token_text[t], 10))}</th>'
        for t in range(start, n)
    )
    rows = [f'<table class="lens"><thead><tr><th>layer</th>{head}</tr></thead><tbody>']
    for li, layer in enumerate(grid.layers):
        cells = []
        for t in range(start, n):
            tid = int(grid.top1_ids[li, t])
            if tid < 0:
                cells.append("<td></td>")
                continue
            p = float(grid.top1_probs[li, t])
            bucket = _bucket(p)
            shade = "" if bucket is None else f"bg{bucket}"
            hit = " hit" if grid.hits[li, t] else ""
            word = token_text(trace, tid, texts)
            cells.append(
                f'<td class="{shade}{hit}" title="L{layer} position {t}: '
                f'{esc(word)} p={fmt(p)}">{esc(short(word, 10))}</td>'
            )
        rows.append(f"<tr><th>L{layer}</th>{''.join(cells)}</tr>")
    rows.append("</tbody></table>")
    out.append(f'<div style="overflow-x:auto">{"".join(rows)}</div>')
    out.append(f"<style>{_lens_backgrounds()}</style>")
    kl = grid.kl_per_layer()
    out.append(
        "<figure>"
        + line_plot(
            {"KL(final || layer)": [float(v) for v in kl]},
            title="mean KL of each layer's lens to the final distribution",
            x_start=grid.layers[0] if grid.layers else 0,
        )
        + "<figcaption>Mean KL(final ‖ layer) over the positions, per layer: where the "
        "model's answer takes shape.</figcaption></figure>"
    )
    out.append("</section>")
    return out


def _lens_backgrounds() -> str:
    """`.bg0`..`.bg63`: light-to-strong backgrounds by probability (text stays readable)."""
    rules = []
    for i in range(N_COLOURS):
        alpha = 0.08 + 0.6 * i / (N_COLOURS - 1)
        rules.append(f".bg{i}{{background:rgba(47,95,152,{alpha:.2f})}}")
    return "".join(rules)
