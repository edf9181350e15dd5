"""Run the detectors over one set of inputs and gather a `DiagnosticReport`.

`DETECTORS` maps each detector's name to its function, in the order the report lists them;
`DETECTOR_INFO` maps it to (one-line description, what it needs) for the report's skipped
list and the app. A detector that cannot run raises `DetectorSkipped`, which becomes a
`Skipped` entry with its sentence; any other exception is a bug and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from neuroscope_tui.analysis.diagnostics import (
    collapse,
    gradients,
    head_checks,
    massive,
    neurons,
    numerics,
    sinks,
)
from neuroscope_tui.analysis.diagnostics.findings import (
    SEVERITIES,
    DetectorSkipped,
    DiagnosticReport,
    Finding,
    Skipped,
)
from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs

# numerics first: a NaN makes every other detector's numbers meaningless, and it is an error
_MODULES = (numerics, massive, sinks, neurons, gradients, collapse, head_checks)

DETECTORS: dict[str, Callable[[DiagnosticInputs], list[Finding]]] = {
    m.NAME: m.detect for m in _MODULES
}
DETECTOR_INFO: dict[str, tuple[str, str]] = {m.NAME: m.INFO for m in _MODULES}


def run_detectors(
    inputs: DiagnosticInputs, *, source: str, only: Sequence[str] | None = None
) -> DiagnosticReport:
    """Every detector (or those named in `only`, in DETECTORS order) over `inputs`.

    Findings are sorted most severe first (stable: within a severity, in detector order);
    `timings[name]` is each detector's wall time in seconds, skipped ones included.
    Raises ValueError naming the known detectors when `only` names an unknown one.
    """
    if only is not None:
        unknown = [name for name in only if name not in DETECTORS]
        if unknown:
            known = ", ".join(DETECTORS)
            raise ValueError(f"unknown detector {unknown[0]!r}; choose from {known}.")
    names = [name for name in DETECTORS if only is None or name in only]
    report = DiagnosticReport(
        source=source,
        n_prompts=len(inputs.traces),
        model=inputs.traces[0].model.to_dict() if inputs.traces else {},
    )
    for name in names:
        start = time.perf_counter()
        try:
            found = DETECTORS[name](inputs)
        except DetectorSkipped as why:
            report.skipped.append(Skipped(name, str(why)))
        else:
            report.ran.append(name)
            report.findings.extend(found)
        report.timings[name] = time.perf_counter() - start
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    report.findings.sort(key=lambda f: rank[f.severity])
    return report
