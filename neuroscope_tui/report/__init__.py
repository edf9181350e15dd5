"""The diagnostics report written as a file: HTML (inline SVG figures) or Markdown.

`render(report, suffix, prompts=..., tokens=...)` picks the writer from the output file's
suffix; `FORMATS` lists the suffixes `report -o` takes. JSON is `DiagnosticReport.to_dict()`.
Nothing here imports torch.
"""

from __future__ import annotations

from neuroscope_tui.analysis.diagnostics.findings import DiagnosticReport

FORMATS = {".html": "html", ".htm": "html", ".md": "markdown"}


def render(
    report: DiagnosticReport,
    suffix: str,
    *,
    prompts: list[str] | None = None,
    tokens: list[list[str]] | None = None,
    plugin_sections: list | None = None,
) -> str:
    """The report as the text of a `suffix` file (".html", ".htm" or ".md"); `plugin_sections`
    (report.content.plugin_sections) add one section per plugin analysis."""
    kind = FORMATS[suffix.lower()]
    extra = {"prompts": prompts, "tokens": tokens, "plugin_sections": plugin_sections}
    if kind == "html":
        from neuroscope_tui.report.html import render_html

        return render_html(report, **extra)
    from neuroscope_tui.report.markdown import render_markdown

    return render_markdown(report, **extra)
