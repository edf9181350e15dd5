"""What the report says, independent of how it is written (HTML or Markdown).

Both writers read the same pieces from here, so the two formats cannot drift apart: the
findings numbered in report order (most severe first), each finding's figures as (name,
value) text rows, its curves and the threshold to draw with them, the layers it concerns,
and the skipped detectors with what each one needs. Text here is still raw (a model's or a
file's): each writer escapes it for its own format.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from neuroscope_tui.analysis.diagnostics.findings import SEVERITIES, DiagnosticReport, Finding
from neuroscope_tui.report.svg import fmt

MAX_PLOTS = 4  # curves drawn per finding (the Markdown table has them all)
MAX_LIST_ITEMS = 12  # a figure that is a long list shows its head and says how many more
SEVERITY_WORDS = {"error": "errors", "warning": "warnings", "info": "notes"}


@dataclass
class NumberedFinding:
    """A finding and its place in the report: `anchor` is its section's id (#finding-3)."""

    number: int
    finding: Finding

    @property
    def anchor(self) -> str:
        return f"finding-{self.number}"


def numbered(report: DiagnosticReport) -> list[NumberedFinding]:
    """The findings most severe first (stable within a severity), numbered from 1."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    ordered = sorted(report.findings, key=lambda f: rank.get(f.severity, len(SEVERITIES)))
    return [NumberedFinding(i + 1, f) for i, f in enumerate(ordered)]


def value_text(value: Any) -> str:
    """One figure's value as short text: numbers rounded, long lists cut."""
    if value is None:
        return "-"
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy scalars and arrays
        value = value.tolist()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, numbers.Real):
        return fmt(float(value))
    if isinstance(value, (list, tuple)):
        # a list of records ([prompt, position, text, count], ...) keeps each one together
        items = [
            f"({value_text(v)})" if isinstance(v, (list, tuple)) else value_text(v)
            for v in value[:MAX_LIST_ITEMS]
        ]
        more = len(value) - MAX_LIST_ITEMS
        return ", ".join(items) + (f", … ({more} more)" if more > 0 else "")
    if isinstance(value, dict):
        pairs = list(value.items())[:MAX_LIST_ITEMS]
        return ", ".join(f"{k}: {value_text(v)}" for k, v in pairs)
    return str(value)


def figure_rows(finding: Finding) -> list[tuple[str, str]]:
    """The finding's figures as (name in words, value) rows, in the detector's order."""
    return [(name.replace("_", " "), value_text(v)) for name, v in finding.figures.items()]


def threshold(finding: Finding) -> tuple[str, float] | None:
    """The scalar figure named like a threshold ("threshold", "median_x1000_threshold"...),
    drawn as a dashed line on the finding's plot; None where the detector gave none."""
    for name, v in finding.figures.items():
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if "threshold" in name.lower() and number and math.isfinite(float(v)):
            return name.replace("_", " "), float(v)
    return None


def plotted_series(finding: Finding) -> dict[str, list[float]]:
    """The curves worth drawing: those with at least two values."""
    return {k: list(v) for k, v in finding.series.items() if len(v) >= 2}


def axis_name(values: list[float], n_layers: int) -> str:
    """What a curve's index is: "layer" when it has one value per layer of the model."""
    return "layer" if n_layers == 0 or len(values) == n_layers else "index"


def non_finite_count(finding: Finding) -> int:
    """How many plotted values are NaN or infinite (left as gaps in the plot)."""
    return sum(1 for v in plotted_series(finding).values() for x in v if not math.isfinite(x))


def layers_concerned(finding: Finding) -> list[int]:
    """The distinct layers the finding's cells name, in order."""
    return sorted({c.layer for c in finding.cells if c.layer is not None})


def cell_text(finding: Finding, tokens: list[list[str]] | None = None) -> list[str]:
    """Where the finding points, one short line per cell (at most MAX_LIST_ITEMS)."""
    out = []
    for c in finding.cells[:MAX_LIST_ITEMS]:
        parts = [f"view {c.view}"]
        if c.layer is not None:
            parts.append(f"layer {c.layer}")
        if c.head is not None:
            parts.append(f"head {c.head}")
        if c.token is not None:
            word = ""
            if tokens is not None and 0 <= c.prompt < len(tokens):
                toks = tokens[c.prompt]
                if 0 <= c.token < len(toks):
                    word = f" {toks[c.token]!r}"
            parts.append(f"token {c.token}{word}")
        if c.dimension is not None:
            parts.append(f"dimension {c.dimension}")
        parts.append(f"prompt {c.prompt + 1}")
        out.append(", ".join(parts))
    more = len(finding.cells) - MAX_LIST_ITEMS
    if more > 0:
        out.append(f"… and {more} more")
    return out


def detector_descriptions() -> dict[str, tuple[str, str]]:
    """Each detector's (one-line description, what it needs), from the detectors' own table."""
    try:
        from neuroscope_tui.analysis.diagnostics.runner import DETECTOR_INFO
    except ImportError:  # built before the detectors' table existed: the reasons still show
        return {}
    return dict(DETECTOR_INFO)


def model_line(report: DiagnosticReport) -> str:
    """One line on the model: architecture, layers, heads, width, dtype, device."""
    m = report.model
    bits = []
    if m.get("architecture"):
        bits.append(str(m["architecture"]))
    for key, word in (("n_layers", "layers"), ("n_heads", "heads"), ("d_model", "wide")):
        if m.get(key):
            bits.append(f"{m[key]} {word}")
    if m.get("dtype"):
        bits.append(str(m["dtype"]))
    if m.get("device"):
        bits.append(f"on {m['device']}")
    return ", ".join(bits)


def summary_sentence(report: DiagnosticReport) -> str:
    """ "2 errors, 1 warning, 3 notes from 7 detectors over 12 prompts" (or that none)."""
    counts = report.counts()
    parts = [
        f"{n} {SEVERITY_WORDS[s] if n != 1 else SEVERITY_WORDS[s][:-1]}"
        for s, n in counts.items()
        if n
    ]
    found = ", ".join(parts) if parts else "nothing to report"
    ran = len(report.ran)
    prompts = f"{report.n_prompts} prompt{'s' if report.n_prompts != 1 else ''}"
    return f"{found}, from {ran} detector{'s' if ran != 1 else ''} over {prompts}."


def timing_rows(report: DiagnosticReport) -> list[tuple[str, float]]:
    """Seconds per stage and detector, capture stages first, then detectors in run order."""
    stages = [(k, v) for k, v in report.timings.items() if "." in k or k.startswith("capture")]
    rest = [(k, v) for k, v in report.timings.items() if (k, v) not in stages]
    return stages + rest


def timing_total(report: DiagnosticReport) -> float:
    """Seconds in all, a stage's parts ("capture.traces") not counted again beside the stage
    itself ("capture") when both are given."""
    keys = report.timings
    return sum(v for k, v in keys.items() if k.split(".")[0] == k or k.split(".")[0] not in keys)


def duration(seconds: float) -> str:
    """A time as a person reads it: "0.3 ms", "45 ms", "2.4 s", "3 min 05 s"."""
    if not math.isfinite(seconds):
        return "-"
    if seconds < 1e-4:
        return "<0.1 ms"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


# ---- plugin analyses (neuroscope_tui/plugins.py): one section each ---------------------------

MAX_PLUGIN_ROWS = 200  # rows shown per plugin table; the rest are counted


@dataclass
class PluginSection:
    """A plugin analysis in the report: its table over every trace, or why there is none."""

    name: str
    distribution: str
    description: str
    columns: list[str]
    rows: list[list[str]]  # cells as text, at most MAX_PLUGIN_ROWS
    more: int = 0  # rows not shown
    note: str = ""  # why it was skipped, or which traces it failed on

    @property
    def anchor(self) -> str:
        return "plugin-" + "".join(c if c.isalnum() else "-" for c in self.name)


def plugin_sections(traces: list[Any], model: Any = None) -> list[PluginSection]:
    """Every installed analysis plugin run over each trace (a "prompt" column first); one
    that is broken, needs the model when there is none, or raises is a section with a note,
    never an error. Empty when no analysis plugin is installed."""
    from neuroscope_tui import plugins

    out = []
    for plugin in plugins.plugins("analyses"):
        if not plugin.ok:
            note = f"skipped: {plugin.error}"
            out.append(PluginSection(plugin.name, plugin.where, "", [], [], note=note))
            continue
        section = PluginSection(plugin.name, plugin.where, plugins.description(plugin), [], [])
        failed: list[str] = []
        all_rows: list[list[str]] = []
        for i, trace in enumerate(traces, 1):
            try:
                table = plugins.analysis_table(plugin, trace, model)
            except Exception as err:  # a plugin's table may break anything: a note, not a crash
                failed.append(f"prompt {i}: {err}")
                continue
            if not section.columns:
                section.columns = ["prompt", *table.columns]
            all_rows += [[str(i), *(value_text(v) for v in row)] for row in table.rows]
        section.rows = all_rows[:MAX_PLUGIN_ROWS]
        section.more = max(0, len(all_rows) - MAX_PLUGIN_ROWS)
        if failed:
            shown = "; ".join(failed[:3]) + (f"; {len(failed) - 3} more" if len(failed) > 3 else "")
            section.note = f"skipped on {len(failed)} of {len(traces)} prompts ({shown})"
        out.append(section)
    return out
