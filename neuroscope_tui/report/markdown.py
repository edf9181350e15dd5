"""The diagnostics report as plain Markdown: the HTML report's content, figures as tables.

No SVG and no images (a Markdown file is read as text as often as rendered); each finding's
curves become a table with one row per layer. Every text from the model, the prompt file or a
snapshot goes through `md` (control characters made visible, HTML special characters as
entities so a renderer shows them as text, and the characters Markdown reads as markup
backslash-escaped), so a token like `<script>` or `|` cannot change the document's shape.
Torch-free.
"""

from __future__ import annotations

import math

from neuroscope_tui import __version__
from neuroscope_tui.analysis.diagnostics.findings import SEVERITIES, DiagnosticReport
from neuroscope_tui.report import content
from neuroscope_tui.report.svg import fmt
from neuroscope_tui.text_safety import visible

_MARKUP = "\\`*_[]|~#"  # characters Markdown (GFM tables included) reads as syntax mid-line
MAX_SERIES_ROWS = 200


def md(text: object) -> str:
    """Text from anywhere, shown literally by a Markdown renderer and on one line."""
    s = visible(str(text))
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join("\\" + ch if ch in _MARKUP else ch for ch in s)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def render_markdown(
    report: DiagnosticReport,
    *,
    prompts: list[str] | None = None,
    tokens: list[list[str]] | None = None,
    plugin_sections: list[content.PluginSection] | None = None,
) -> str:
    """The whole report as Markdown text (the caller writes it atomically)."""
    found = content.numbered(report)
    out = [f"# Diagnostics: {md(report.source)}", ""]
    if content.model_line(report):
        out += [md(content.model_line(report)), ""]
    out += [f"**{md(content.summary_sentence(report))}**", "", "## Summary", ""]
    counts = report.counts()
    out += _table(list(SEVERITIES), [[str(counts[s]) for s in SEVERITIES]])
    if found:
        rows = [
            [
                str(i.number),
                i.finding.severity,
                md(i.finding.detector),
                f"[{md(i.finding.title)}](#{i.anchor})",
            ]
            for i in found
        ]
        out += _table(["#", "severity", "detector", "finding"], rows)
    out += ["## Findings", ""]
    if not found:
        out += ["No detector found anything unusual on these prompts.", ""]
    for item in found:
        out += _finding(item, tokens, int(report.model.get("n_layers") or 0))
    out += _skipped(report)
    out += _plugins(plugin_sections or [])
    if prompts:
        out += [f"## Prompts ({len(prompts)})", ""]
        out += [f"{i}. {md(p)}" for i, p in enumerate(prompts, 1)] + [""]
    rows = content.timing_rows(report)
    if rows:
        out += ["## Timings", ""]
        table = [[md(k), content.duration(v)] for k, v in rows]
        table.append(["**total**", content.duration(content.timing_total(report))])
        out += _table(["stage or detector", "time"], table)
    out += [f"Written by neuroscope-tui {md(__version__)}.", ""]
    return "\n".join(out)


def _finding(
    item: content.NumberedFinding, tokens: list[list[str]] | None, n_layers: int
) -> list[str]:
    f = item.finding
    # the explicit anchor keeps the summary's links working whatever the title holds
    out = [
        f'<a id="{item.anchor}"></a>',
        "",
        f"### {item.number}. {f.severity}: {md(f.title)}",
        "",
        f"detector: {md(f.detector)}",
        "",
    ]
    rows = content.figure_rows(f)
    if rows:
        out += _table(["figure", "value"], [[md(k), md(v)] for k, v in rows])
    series = content.plotted_series(f)
    if series:
        names = list(series)
        n = max(len(v) for v in series.values())
        line = content.threshold(f) if len(series) == 1 else None
        axis = content.axis_name(series[names[0]], n_layers)
        caption = f"Per {axis}"
        if line:
            caption += f" ({md(line[0])}: {fmt(line[1])})"
        out += [caption + ":", ""]
        table = []
        for i in range(min(n, MAX_SERIES_ROWS)):
            cells = [str(i)]
            for k in names:
                v = series[k][i] if i < len(series[k]) else math.nan
                cells.append(fmt(v))
            table.append(cells)
        out += _table([axis, *(md(k) for k in names)], table)
    if f.meaning:
        out += [f"> {md(f.meaning)}", ""]
    cells = content.cell_text(f, tokens)
    if cells:
        out += ["Where: " + "; ".join(md(c) for c in cells), ""]
    return out


def _plugins(sections: list[content.PluginSection]) -> list[str]:
    """One section per plugin analysis: its table, or the note saying why it has none."""
    out = []
    for s in sections:
        out += [f"## Plugin analysis: {md(s.name)}", ""]
        about = f"{s.description} ({s.distribution})" if s.description else s.distribution
        out += [md(about), ""]
        if s.note:
            out += [md(s.note), ""]
        if s.columns:
            out += _table([md(c) for c in s.columns], [[md(v) for v in r] for r in s.rows])
            if s.more:
                out += [f"… and {s.more} more rows (`neuroscope-tui export` gives all).", ""]
    return out


def _skipped(report: DiagnosticReport) -> list[str]:
    out = ["## Skipped detectors", ""]
    if not report.skipped:
        out += ["Every detector ran.", ""]
    else:
        info = content.detector_descriptions()
        rows = [
            [md(s.detector), md(s.reason), md(info.get(s.detector, ("", ""))[1])]
            for s in report.skipped
        ]
        out += _table(["detector", "why it did not run", "needs"], rows)
    if report.ran:
        out += [f"Ran: {md(', '.join(report.ran))}.", ""]
    return out
