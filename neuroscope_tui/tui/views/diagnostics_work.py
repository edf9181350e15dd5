"""The diagnostics view's work and words: the quick check (this run's trace, numpy only, in a
thread), the full check (the default prompt set, neuron health and gradients, in the model
worker), where a finding's cell sends the app's cursor, and the texts the view draws.

No widget here and no torch at module level: the full check imports the capture code inside
the worker function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

from neuroscope_tui.analysis.diagnostics.findings import Cell, DiagnosticReport, Finding
from neuroscope_tui.text_safety import visible
from neuroscope_tui.trace import Trace

SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}
SEVERITY_MARK = {"error": "✖", "warning": "▲", "info": "●"}

# The detectors that need the live model beyond one trace, and why the quick check skips them.
NEEDS_MODEL = {
    "neurons": "the quick check reads only the run on screen; r runs the full check "
    "(neuron health over the prompt set needs the live model)",
    "gradients": "the quick check reads only the run on screen; r runs the full check "
    "(gradients need the live model and a backward pass)",
}
SNAPSHOT_MISSING = {
    "neurons": "a snapshot holds no neuron statistics over a prompt set; the full check "
    "needs the live model",
    "gradients": "a snapshot holds no gradients; the full check needs the live model",
}


@dataclass
class Checked:
    """A report and what it was run on: the prompts of its traces (index = Cell.prompt)."""

    report: DiagnosticReport
    prompts: list[str] = field(default_factory=list)
    full: bool = False  # the full check over the prompt set (else: the run on screen)
    seconds: float = 0.0


def quick_check(trace: Trace, *, live: bool) -> Checked:
    """The detectors that need only a trace, on the run on screen (pure numpy)."""
    import time

    from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs
    from neuroscope_tui.analysis.diagnostics.runner import run_detectors

    start = time.perf_counter()
    inputs = DiagnosticInputs(
        traces=[trace],
        source="model" if live else "snapshot",
        prompts=[trace.prompt],
        missing=dict(NEEDS_MODEL if live else SNAPSHOT_MISSING),
    )
    report = run_detectors(inputs, source=trace.model.name)
    return Checked(report, [trace.prompt], full=False, seconds=time.perf_counter() - start)


def full_check(bundle: Any, progress: Any = None) -> Checked:
    """In the model worker: capture the default prompt set (traces, neuron health,
    gradients) and run every detector. `progress(fraction, text)` raises TaskCancelled
    once the user pressed Esc, so the capture stops at its next prompt."""
    import time

    from neuroscope_tui.analysis.diagnostics.runner import run_detectors
    from neuroscope_tui.capture.diagnostics import diagnostic_inputs
    from neuroscope_tui.prompt_sets import default_prompts

    start = time.perf_counter()
    prompts = default_prompts()
    capture_progress = None
    if progress is not None:
        capture_progress = lambda f, text: progress(0.95 * f, text)  # noqa: E731
    inputs = diagnostic_inputs(bundle, prompts, progress=capture_progress)
    if progress is not None:
        progress(0.95, "running the detectors")
    report = run_detectors(inputs, source=bundle.name)
    report.timings.update(getattr(inputs, "timings", {}))  # the capture stages' seconds
    kept = list(inputs.prompts) or prompts
    return Checked(report, kept, full=True, seconds=time.perf_counter() - start)


# ---- where a finding sends the cursor -------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """Where Enter on a finding goes: a view, the selection's changes, and a notice (or "")."""

    view: str
    changes: dict[str, int]
    notice: str = ""


def destination(finding: Finding, checked: Checked, trace: Trace | None) -> Destination | None:
    """The view and cell of a finding's first cell; None when it names no view to show.

    A cell of a prompt other than the run on screen (the full check's prompt set) moves only
    the layer and head, and the notice says so: its token positions belong to another text.
    """
    cell = next((c for c in finding.cells if c.view and c.view != "diagnostics"), None)
    if cell is None:
        return None
    changes: dict[str, int] = {}
    if cell.layer is not None:
        changes["layer"] = int(cell.layer)
    if cell.head is not None:
        changes["head"] = int(cell.head)
    notice = ""
    if cell.token is not None:
        if on_screen(cell, checked, trace):
            assert trace is not None
            changes["token"] = int(min(max(cell.token, 0), max(trace.n_tokens - 1, 0)))
        else:
            notice = other_prompt_notice(cell, checked)
    return Destination(cell.view, changes, notice)


def on_screen(cell: Cell, checked: Checked, trace: Trace | None) -> bool:
    """Whether the cell's prompt is the run on screen (same prompt text)."""
    if trace is None or trace.n_tokens == 0:
        return False
    if not checked.full:
        return cell.prompt == 0
    if 0 <= cell.prompt < len(checked.prompts):
        return checked.prompts[cell.prompt] == trace.prompt and cell.token < trace.n_tokens
    return False


def other_prompt_notice(cell: Cell, checked: Checked) -> str:
    prompt = ""
    if 0 <= cell.prompt < len(checked.prompts):
        prompt = f" ({short(checked.prompts[cell.prompt], 40)!r})"
    return (
        f"this finding is at token {cell.token} of prompt {cell.prompt + 1} of the prompt "
        f"set{prompt}, not the run on screen: only the layer and head moved"
    )


# ---- texts ------------------------------------------------------------------------------------


def short(text: str, width: int) -> str:
    """`text` escaped and cut to `width` characters (an ellipsis where cut)."""
    text = visible(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def list_item(finding: Finding) -> Text:
    """One line of the list: the severity's mark and colour, the title (escaped, plain)."""
    style = SEVERITY_STYLE.get(finding.severity, "")
    text = Text()  # styles on the parts only: Text(..., style=) would colour the whole line
    text.append(f"{SEVERITY_MARK.get(finding.severity, '?')} {finding.severity:<7} ", style=style)
    text.append(visible(finding.title))
    return text


def figure_value(value: Any) -> str:
    """A figure as a short string: floats to 4 significant digits, lists cut to 8 items."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if 1e4 <= abs(value) < 1e12:  # 22,552 reads better than 2.255e+04
            return f"{value:,.0f}"
        return f"{value:,.4g}" if abs(value) < 1e12 else f"{value:.3e}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        items = [figure_value(v) for v in value[:8]]
        more = f", … ({len(value)} in all)" if len(value) > 8 else ""
        return "[" + ", ".join(items) + more + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {figure_value(v)}" for k, v in list(value.items())[:8]) + "}"
    return str(value)


def detail_text(finding: Finding, checked: Checked) -> Text:
    """The detail pane: title, detector, cells, the figures behind it, what it means."""
    style = SEVERITY_STYLE.get(finding.severity, "")
    text = Text()
    text.append(f"{finding.severity.upper()}  ", style=style)
    text.append(visible(finding.title), style="bold")
    text.append(f"\ndetector: {finding.detector}", style="dim")
    if finding.cells:
        text.append("\nwhere: ", style="bold")
        text.append("; ".join(cell_text(c, checked) for c in finding.cells[:4]))
        if len(finding.cells) > 4:
            text.append(f" (+{len(finding.cells) - 4} more)")
        text.append("  (Enter goes there)", style="dim")
    if finding.figures:
        text.append("\nfigures:", style="bold")
        for key, value in finding.figures.items():
            text.append(f"\n  {visible(str(key))}: ", style="cyan")
            text.append(visible(figure_value(value)))
    if finding.meaning:
        text.append("\nwhat it means: ", style="bold")
        text.append(visible(finding.meaning, newlines=True))
    return text


def cell_text(cell: Cell, checked: Checked) -> str:
    parts = [f"{cell.view} view"]
    for name in ("layer", "token", "head", "dimension"):
        value = getattr(cell, name)
        if value is not None:
            parts.append(f"{name} {value}")
    if checked.full and len(checked.prompts) > 1:
        parts.append(f"prompt {cell.prompt + 1}")
    return " ".join(parts)


def skipped_text(report: DiagnosticReport) -> Text:
    """The detectors that did not run, each with its one-sentence reason."""
    text = Text()
    for i, s in enumerate(report.skipped):
        text.append("\n" if i else "")
        text.append(f"skipped {s.detector}: ", style="dim bold")
        text.append(visible(s.reason), style="dim")
    return text


def counts_text(report: DiagnosticReport) -> Text:
    text = Text()
    for severity, n in report.counts().items():
        text.append(f"{n} {severity}{'s' if n != 1 else ''}  ", style=SEVERITY_STYLE[severity])
    return text


def plot_points(values: list[float]) -> tuple[list[int], list[float]]:
    """The finite points of a series (NaN where a layer was not held)."""
    xs, ys = [], []
    for i, v in enumerate(values):
        if v is not None and math.isfinite(float(v)):
            xs.append(i)
            ys.append(float(v))
    return xs, ys
