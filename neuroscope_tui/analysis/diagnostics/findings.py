"""What a detector reports: findings with a severity, the cells they concern, the figures.

A `Cell` is where the app's cursor goes when the user selects a finding: a view (a name in
`tui/views/registry.py`) and the layer / token / head it concerns. Everything here is JSON-able
through `to_dict` / `from_dict`, so the report's `--json`, the HTML report and the app read
the same record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Most serious first. "error": the model computes something broken (NaN, inf, overflow in its
# own dtype); "warning": likely a problem (dead neurons, vanishing gradients, a layer that does
# nothing, float16 overflow if converted); "info": unusual but a known property of trained
# models (massive activations, attention sinks), worth knowing before intervening or quantizing.
SEVERITIES = ("error", "warning", "info")


class DetectorSkipped(Exception):
    """A detector cannot run on these inputs; the message is one sentence saying why."""


@dataclass(frozen=True)
class Cell:
    """One place a finding concerns. Indices are None where the finding does not name one.

    `view` is the registry name of the view that shows it best ("scan", "heads", "residual",
    ...). `prompt` is the index of the prompt (trace) in the inputs; `token` a position in
    that trace; `dimension` a residual dimension or MLP neuron index.
    """

    view: str
    layer: int | None = None
    token: int | None = None
    head: int | None = None
    prompt: int = 0
    dimension: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        def opt(key: str) -> int | None:
            v = d.get(key)
            return None if v is None else int(v)

        return cls(
            view=str(d["view"]),
            layer=opt("layer"),
            token=opt("token"),
            head=opt("head"),
            prompt=int(d.get("prompt", 0)),
            dimension=opt("dimension"),
        )


@dataclass
class Finding:
    """One thing a detector found.

    `title` is one line in the user's words with the key figure ("Residual dimension 394
    reaches 3,412 at the first token, 1,800x the layer's median"); `meaning` says what it
    usually means and what to do (a few sentences, the same for every finding of a kind);
    `figures` holds the numbers behind it (JSON-able scalars or short lists) and `series`
    optional per-layer (or per-anything) curves the report draws as a plot
    ({"name": [floats...]}, NaN allowed).
    """

    detector: str
    severity: str
    title: str
    meaning: str
    cells: list[Cell] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "severity": self.severity,
            "title": self.title,
            "meaning": self.meaning,
            "cells": [c.to_dict() for c in self.cells],
            "figures": dict(self.figures),
            "series": {k: list(v) for k, v in self.series.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            detector=str(d["detector"]),
            severity=str(d["severity"]),
            title=str(d["title"]),
            meaning=str(d.get("meaning", "")),
            cells=[Cell.from_dict(c) for c in d.get("cells", [])],
            figures=dict(d.get("figures", {})),
            # JSON has no NaN: the report's --json writes a missing point as null
            series={
                str(k): [float("nan") if x is None else float(x) for x in v]
                for k, v in d.get("series", {}).items()
            },
        )


@dataclass
class Skipped:
    """A detector that did not run, and why (one sentence)."""

    detector: str
    reason: str


@dataclass
class DiagnosticReport:
    """Every detector's findings over one model (or snapshot) and prompt set.

    `findings` are sorted most severe first; `ran` names the detectors that ran; `timings`
    holds seconds per detector (and per capture stage, keys like "capture.traces").
    """

    source: str  # the model or snapshot name as the user gave it
    n_prompts: int
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # ModelInfo.to_dict()

    def counts(self) -> dict[str, int]:
        """Findings per severity, every severity present (0 where none)."""
        out = dict.fromkeys(SEVERITIES, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "n_prompts": self.n_prompts,
            "model": dict(self.model),
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "skipped": [asdict(s) for s in self.skipped],
            "ran": list(self.ran),
            "timings": dict(self.timings),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiagnosticReport:
        return cls(
            source=str(d["source"]),
            n_prompts=int(d["n_prompts"]),
            findings=[Finding.from_dict(f) for f in d.get("findings", [])],
            skipped=[Skipped(str(s["detector"]), str(s["reason"])) for s in d.get("skipped", [])],
            ran=[str(x) for x in d.get("ran", [])],
            timings={str(k): float(v) for k, v in d.get("timings", {}).items()},
            model=dict(d.get("model", {})),
        )
