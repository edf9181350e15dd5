"""A run with interventions against the same prompt without them: texts, logit difference,
heatmap difference. Torch-free: both traces and the logit difference come from the model
worker (`capture/side_by_side.py: intervened_logit_difference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.analysis.metrics import METRICS, metric_values
from neuroscope_tui.capture.interventions import describe, intervention_from_dict
from neuroscope_tui.trace import Trace

LOGIT_DIFF = "interventions.logit_diff"  # [positions] in a trace's extras, when saved


@dataclass
class SideBySide:
    """Both runs of one prompt, and where they part."""

    prompt: str
    clean_text: str  # the clean run's generated text
    intervened_text: str
    clean_tokens: list[str]  # every token of each run (prompt, then generated)
    intervened_tokens: list[str]
    n_prompt: int
    logit_diff: np.ndarray  # [positions of the clean run]: logit(target) intervened - clean
    interventions: list[str]  # one line each (describe)
    first_divergence: int | None  # the first position whose token differs (None: none does)


def common_positions(clean: Trace, intervened: Trace) -> int:
    """How many positions both traces hold (the prompt, and generated tokens up to the shorter)."""
    return min(clean.n_tokens, intervened.n_tokens)


def side_by_side(clean: Trace, intervened: Trace, logit_diff: np.ndarray | None) -> SideBySide:
    """The two runs of one prompt side by side; `logit_diff` may be None (not computed)."""
    n = common_positions(clean, intervened)
    diverge = next(
        (t for t in range(n) if clean.token_ids[t] != intervened.token_ids[t]),
        None if clean.n_tokens == intervened.n_tokens else n,
    )
    lines = [describe(intervention_from_dict(d)) for d in intervened.interventions]
    diff = np.full(clean.n_tokens, np.nan, np.float32)
    if logit_diff is not None:
        got = np.asarray(logit_diff, np.float32)[: clean.n_tokens]
        diff[: got.shape[0]] = got
    return SideBySide(
        prompt=clean.prompt,
        clean_text=clean.generated_text,
        intervened_text=intervened.generated_text,
        clean_tokens=list(clean.token_text),
        intervened_tokens=list(intervened.token_text),
        n_prompt=clean.n_prompt,
        logit_diff=diff,
        interventions=lines,
        first_divergence=diverge,
    )


def metric_difference(
    clean: Trace, intervened: Trace, metric: str, site: str | None = None
) -> np.ndarray:
    """Intervened minus clean of a heatmap metric, [layer, common positions] float32.

    `metric` is a METRICS name ("resid.norm") or, with `site`, a statistic of that site
    ("norm" at "mlp" -> "mlp.norm"). NaN where either run did not record it. Both traces
    must come from the same model with the same layers (ValueError otherwise).
    """
    name = f"{site}.{metric}" if site else metric
    if clean.layers() != intervened.layers():
        raise ValueError("the two runs recorded different layers; capture them alike")
    n = common_positions(clean, intervened)

    def values(trace: Trace) -> np.ndarray:
        if name in METRICS:
            return metric_values(trace, name)
        if trace.has(name):
            return np.asarray(trace.get(name), np.float32)
        return np.full((len(trace.layers()), trace.n_tokens), np.nan, np.float32)

    return (values(intervened)[:, :n] - values(clean)[:, :n]).astype(np.float32)


def side_by_side_table(view: SideBySide) -> Table:
    """Long format: one row per position of the clean run (both tokens, the logit difference)."""
    rows = []
    for t, token in enumerate(view.clean_tokens):
        other = view.intervened_tokens[t] if t < len(view.intervened_tokens) else None
        rows.append(
            [t, token, other, t >= view.n_prompt, other == token, float(view.logit_diff[t])]
        )
    columns = ["position", "clean_token", "intervened_token", "is_generated", "same", "logit_diff"]
    return Table(columns, rows)


def interventions_table(trace: Trace) -> Table:
    """The export table of a run captured with interventions and compared with its clean run
    (`capture --ablate ...` saves the clean run's tokens and the logit difference)."""
    note = trace.notes.get("clean_run")
    if not isinstance(note, dict) or LOGIT_DIFF not in trace.extras:
        raise KeyError("a side by side: capture with --ablate or --steer and --side-by-side")
    clean_tokens = [str(t) for t in note.get("token_text", [])]
    n = len(clean_tokens)
    lines = [describe(intervention_from_dict(d)) for d in trace.interventions]
    diff = np.full(n, np.nan, np.float32)
    got = np.asarray(trace.extras[LOGIT_DIFF], np.float32)[:n]
    diff[: got.shape[0]] = got
    view = SideBySide(
        prompt=trace.prompt,
        clean_text="".join(clean_tokens[trace.n_prompt :]),
        intervened_text=trace.generated_text,
        clean_tokens=clean_tokens,
        intervened_tokens=list(trace.token_text),
        n_prompt=trace.n_prompt,
        logit_diff=diff,
        interventions=lines,
        first_divergence=None,
    )
    return side_by_side_table(view)
