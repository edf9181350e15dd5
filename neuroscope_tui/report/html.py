"""The diagnostics report as one self-contained HTML5 file.

Inline CSS, inline SVG figures, no script and no URL anywhere (not even a font or the SVG
namespace), so it opens offline, in a mail attachment or behind a strict content policy, the
way coverage.py's report does. Order: title and what was examined, a summary table of the
findings by severity (each row links to its section by #id), then one section per finding
(severity badge, title, plot of its curves, layer strip, the figures behind it as a table,
what it usually means, where it points), the detectors that were skipped and why, the
prompts, and the timings.

Every text from the model, the prompt file or a snapshot goes through `esc` (control
characters made visible, then HTML-escaped). Torch-free.
"""

from __future__ import annotations

import math

from neuroscope_tui import __version__
from neuroscope_tui.analysis.diagnostics.findings import SEVERITIES, DiagnosticReport
from neuroscope_tui.report import content
from neuroscope_tui.report.svg import bar_chart, esc, layer_strip, line_plot

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1d;
  max-width: 980px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
h3 { margin: 0 0 .4em; font-size: 1.15em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #555; }
.badge { display: inline-block; padding: 0 .5em; border-radius: .7em; font-size: .85em;
  font-weight: 600; color: #fff; }
.badge.error { background: #b3261e; } .badge.warning { background: #b35c00; }
.badge.info { background: #2f5f98; }
.finding { border: 1px solid #ddd; border-left: 6px solid #2f5f98; border-radius: 4px;
  padding: .8em 1em; margin: 1.2em 0; }
.finding.error { border-left-color: #b3261e; } .finding.warning { border-left-color: #b35c00; }
.meaning { background: #f7f7f2; padding: .5em .8em; border-radius: 4px; }
.cells { font-size: .9em; color: #444; }
figure { margin: .6em 0; } figcaption { font-size: .85em; color: #555; }
code, .prompt { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .9em; }
a { color: #1f5fa8; }
"""


def document_start(title: str, css: str) -> list[str]:
    """An HTML5 document up to its <body>: charset, viewport, the (escaped) title, inline CSS."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{css}</style>",
        "</head>",
        "<body>",
    ]


def render_html(
    report: DiagnosticReport,
    *,
    prompts: list[str] | None = None,
    tokens: list[list[str]] | None = None,
    plugin_sections: list[content.PluginSection] | None = None,
) -> str:
    """The whole report as an HTML5 document (a str; the caller writes it atomically).

    `prompts` are the prompt texts (shown in their own section); `tokens[p]` the token texts
    of prompt p, used to name the token a finding points at.
    """
    found = content.numbered(report)
    title = f"neuroscope-tui diagnostics: {report.source}"
    parts = [
        *document_start(title, CSS),
        f"<h1>Diagnostics: {esc(report.source)}</h1>",
        f'<p class="meta">{esc(content.model_line(report))}</p>',
        f"<p><strong>{esc(content.summary_sentence(report))}</strong></p>",
    ]
    parts += _summary(report, found)
    parts += ['<section id="findings">', "<h2>Findings</h2>"]
    if not found:
        parts.append("<p>No detector found anything unusual on these prompts.</p>")
    for item in found:
        parts += _finding(item, report, tokens)
    parts.append("</section>")
    parts += _skipped(report)
    parts += _plugins(plugin_sections or [])
    parts += _prompts(prompts)
    parts += _timings(report)
    parts += [
        f'<p class="meta">Written by neuroscope-tui {esc(__version__)}. This file is '
        "self-contained: it loads nothing from the network.</p>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _summary(report: DiagnosticReport, found: list[content.NumberedFinding]) -> list[str]:
    counts = report.counts()
    out = ['<section id="summary">', "<h2>Summary</h2>", '<table class="counts">', "<tr>"]
    out += [f'<th><span class="badge {s}">{s}</span></th>' for s in SEVERITIES]
    out += ["</tr>", "<tr>"]
    out += [f'<td class="num">{counts[s]}</td>' for s in SEVERITIES]
    out += ["</tr>", "</table>"]
    if found:
        out += [
            '<table class="summary">',
            "<thead><tr><th>#</th><th>severity</th><th>detector</th><th>finding</th></tr></thead>",
            "<tbody>",
        ]
        for item in found:
            f = item.finding
            out.append(
                f'<tr><td class="num">{item.number}</td>'
                f'<td><span class="badge {esc(f.severity)}">{esc(f.severity)}</span></td>'
                f"<td>{esc(f.detector)}</td>"
                f'<td><a href="#{item.anchor}">{esc(f.title)}</a></td></tr>'
            )
        out += ["</tbody>", "</table>"]
    out.append("</section>")
    return out


def _finding(
    item: content.NumberedFinding, report: DiagnosticReport, tokens: list[list[str]] | None
) -> list[str]:
    f = item.finding
    sev = esc(f.severity)
    out = [
        f'<article class="finding {sev}" id="{item.anchor}">',
        f'<h3>{item.number}. <span class="badge {sev}">{sev}</span> {esc(f.title)}</h3>',
        f'<p class="meta">detector <code>{esc(f.detector)}</code></p>',
    ]
    n_layers = int(report.model.get("n_layers") or 0)
    series = content.plotted_series(f)
    line = content.threshold(f) if len(series) == 1 else None
    for name, values in list(series.items())[: content.MAX_PLOTS]:
        # one plot per curve: a finding's curves often differ in scale (a count of heads
        # beside a mean weight), and a threshold belongs to one curve only, so it is drawn
        # where the finding has a single curve and stays in the figures table otherwise
        plot = line_plot(
            {name: values},
            title=f"{f.title}: {name}",
            threshold=line[1] if line else None,
            threshold_label=line[0] if line else "threshold",
            x_label=content.axis_name(values, n_layers),
        )
        gaps = sum(1 for v in values if not math.isfinite(v))
        axis = content.axis_name(values, n_layers)
        caption = name if f"per {axis}" in name else f"{name} per {axis}"
        if gaps:
            caption += f"; {gaps} value{'s' if gaps != 1 else ''} not finite (NaN or inf), "
            caption += "left as gaps"
        out += ["<figure>", plot, f"<figcaption>{esc(caption)}</figcaption>", "</figure>"]
    layers = content.layers_concerned(f)
    if layers and n_layers:
        strip = layer_strip(n_layers, layers, title=f"layers concerned: {layers}")
        shown = content.value_text(layers)
        out += [
            "<figure>",
            strip,
            f"<figcaption>layers concerned (filled): {esc(shown)}</figcaption>",
            "</figure>",
        ]
    rows = content.figure_rows(f)
    if rows:
        out += ['<table class="figures">', "<tr><th>figure</th><th>value</th></tr>"]
        out += [f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows]
        out.append("</table>")
    if f.meaning:
        out.append(f'<p class="meaning">{esc(f.meaning)}</p>')
    cells = content.cell_text(f, tokens)
    if cells:
        out.append(f'<p class="cells">Where: {"; ".join(esc(c) for c in cells)}</p>')
    out.append("</article>")
    return out


def _skipped(report: DiagnosticReport) -> list[str]:
    out = ['<section id="skipped">', "<h2>Skipped detectors</h2>"]
    if not report.skipped:
        out.append("<p>Every detector ran.</p>")
    else:
        info = content.detector_descriptions()
        out += ["<table>", "<tr><th>detector</th><th>why it did not run</th><th>needs</th></tr>"]
        for s in report.skipped:
            needs = info.get(s.detector, ("", ""))[1]
            out.append(
                f"<tr><td>{esc(s.detector)}</td><td>{esc(s.reason)}</td><td>{esc(needs)}</td></tr>"
            )
        out.append("</table>")
    if report.ran:
        out.append(f"<p>Ran: {esc(', '.join(report.ran))}.</p>")
    out.append("</section>")
    return out


def _plugins(sections: list[content.PluginSection]) -> list[str]:
    """One section per plugin analysis: its table, or the note saying why it has none."""
    out = []
    for s in sections:
        out += [f'<section id="{esc(s.anchor)}">', f"<h2>Plugin analysis: {esc(s.name)}</h2>"]
        about = f"{s.description} ({s.distribution})" if s.description else s.distribution
        out.append(f'<p class="meta">{esc(about)}</p>')
        if s.note:
            out.append(f"<p>{esc(s.note)}</p>")
        if s.columns:
            out += ["<table>", "<tr>" + "".join(f"<th>{esc(c)}</th>" for c in s.columns) + "</tr>"]
            out += ["<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>" for r in s.rows]
            out.append("</table>")
            if s.more:
                out.append(f"<p>… and {s.more} more rows (`neuroscope-tui export` gives all).</p>")
        out.append("</section>")
    return out


def _prompts(prompts: list[str] | None) -> list[str]:
    if not prompts:
        return []
    out = ['<section id="prompts">', f"<h2>Prompts ({len(prompts)})</h2>", "<ol>"]
    out += [f'<li class="prompt">{esc(p)}</li>' for p in prompts]
    out += ["</ol>", "</section>"]
    return out


def _timings(report: DiagnosticReport) -> list[str]:
    rows = content.timing_rows(report)
    if not rows:
        return []
    total = content.timing_total(report)
    out = ['<section id="timings">', "<h2>Timings</h2>"]
    out.append(bar_chart(rows, title="seconds per stage and detector", unit=" s"))
    out += ["<table>", "<tr><th>stage or detector</th><th>time</th></tr>"]
    out += [
        f'<tr><td>{esc(k)}</td><td class="num">{esc(content.duration(v))}</td></tr>'
        for k, v in rows
    ]
    out += [
        f'<tr><th>total</th><td class="num">{esc(content.duration(total))}</td></tr>',
        "</table>",
    ]
    out.append("</section>")
    return out
