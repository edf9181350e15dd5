"""Hand-made diagnostics reports for the report writers' tests: no model, no detectors.

`sample_report()` has one finding of each severity, curves with NaN and inf, a threshold,
a skipped detector and timings; `HOSTILE` is text a model or a prompt file could hold, put
into every field a writer shows.
"""

from __future__ import annotations

import math

import html5lib
import pytest

from neuroscope_tui.analysis.diagnostics.findings import Cell, DiagnosticReport, Finding, Skipped

# markup, a script, a URL, a table pipe, Markdown emphasis, an ESC and a bidi override
HOSTILE = '<script>alert(1)</script><img src="http://evil.example/x.png"> |*_[x](//e)\x1b[2J\u202e'
PROMPTS = ["The capital of France is", HOSTILE, "12 + 7 ="]
TOKENS = [["The", " capital", " of", " France", " is"], ["<", "script", ">", HOSTILE], ["12"]]


NS = {"h": "http://www.w3.org/1999/xhtml", "s": "http://www.w3.org/2000/svg"}


def parse(text: str):
    """The document tree of an HTML page we wrote; fails the test on any HTML5 parse error."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=True)
    try:
        return parser.parse(text)
    except html5lib.html5parser.ParseError as err:
        line = text.splitlines()[parser.errors[0][0][0] - 1] if parser.errors else ""
        pytest.fail(f"HTML5 parse error {err} at: {line[:200]}")


def sample_report(*, hostile: bool = True) -> DiagnosticReport:
    """Three findings (error, warning, info), one skipped detector, timings."""
    odd = HOSTILE if hostile else "plain"
    massive = Finding(
        detector="massive_activations",
        severity="info",
        title=f"Residual dimension 394 reaches 22,013 at the first token {odd}",
        meaning=f"A few dimensions carry huge values at the first token. {odd}",
        cells=[Cell("scan", layer=20, token=0, dimension=394), Cell("scan", layer=3, token=0)],
        figures={
            "dimension": 394,
            "peak": 22013.5,
            "median_abs": 3.61,
            "threshold_ratio": 100.0,
            "layers": list(range(3, 30)),
            odd: odd,
        },
        series={"peak |x| / layer median": [1.0 + 10 * i**2 for i in range(30)]},
    )
    nan = Finding(
        detector="numerics",
        severity="error",
        title="NaN in the residual stream from layer 2 on",
        meaning="The model computes NaN; every later layer inherits it.",
        cells=[Cell("scan", layer=2, token=4)],
        figures={"first_layer": 2, "nan_count": 128, "finite": False},
        series={"NaN count": [0.0, 0.0, math.nan, math.inf] + [128.0] * 26},
    )
    dead = Finding(
        detector="dead_neurons",
        severity="warning",
        title="Layer 1: 12% of MLP neurons never activate",
        meaning="Dead neurons waste capacity.",
        cells=[Cell("scan", layer=1)],
        figures={"dead_fraction": 0.12, "flat_fraction_threshold": 0.05},
        # two curves of different scales: each gets its own plot, and no threshold line
        series={
            "dead fraction": [0.0, 0.12, 0.01] + [0.0] * 27,
            "neurons per layer": [1536.0] * 30,
        },
    )
    return DiagnosticReport(
        source=f"tiny-model {odd}",
        n_prompts=3,
        findings=[nan, dead, massive],
        skipped=[Skipped("gradient_health", f"gradients were not computed (--no-gradients) {odd}")],
        ran=["massive_activations", "numerics", "dead_neurons"],
        timings={"capture": 1.5, "capture.traces": 1.0, "numerics": 0.01, odd: 0.2},
        model={"name": "tiny", "architecture": "LlamaForCausalLM", "n_layers": 30, "n_heads": 9},
    )


def empty_report() -> DiagnosticReport:
    """A report where every detector ran and found nothing."""
    return DiagnosticReport(
        source="healthy", n_prompts=1, ran=["numerics"], model={"n_layers": 2}, timings={}
    )
