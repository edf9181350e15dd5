"""Heads: redundant pairs and near-uniform heads, reusing the heads analysis.

Redundant pairs come from `analysis.heads.redundant_pairs` (cosine of two heads' patterns
after subtracting uniform attention) on the `pattern.{l}.{h}` rows each trace kept, pooled
over the prompt set: a pair counts when it is redundant in at least `REDUNDANT_SHARE` of
the prompts holding both patterns. Pairs of first-token sink heads are left out: two sink
heads have the same pattern (all weight on key 0) by construction, which the sinks finding
already reports; a trained model has thousands of such pairs.

Near-uniform heads: normalised attention entropy (`analysis.heads.normalised_entropy` of
`heads.entropy`) above `UNIFORM_ENTROPY` averaged over queries t >= `UNIFORM_MIN_QUERY`
(on short prefixes every head looks diffuse).
"""

from __future__ import annotations

import numpy as np

from neuroscope_tui.analysis.diagnostics.common import (
    fmt,
    layer_list,
    n_model_layers,
    plural,
    row_mean,
    series,
    traces_with,
)
from neuroscope_tui.analysis.diagnostics.findings import Cell, DetectorSkipped, Finding
from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs
from neuroscope_tui.analysis.diagnostics.sinks import SINK_WEIGHT
from neuroscope_tui.analysis.heads import (
    DEFAULT_THRESHOLDS,
    normalised_entropy,
    redundant_pairs,
    trace_patterns,
)

NAME = "heads"
INFO = (
    "redundant head pairs (nearly the same pattern) and near-uniform heads",
    "full attention patterns (pattern.l.h) for redundancy; head scores (heads.entropy) for "
    "near-uniform heads",
)

# The heads analysis's own threshold for a redundant pair (cosine of uniform-subtracted
# patterns), so the diagnostics and the heads view agree.
REDUNDANT_COSINE = DEFAULT_THRESHOLDS.redundant
# Two heads whose patterns agree this closely on every prompt are copies of each other.
IDENTICAL_COSINE = 0.999
# A pair must be redundant on at least this share of the prompts holding both patterns: on a
# single short prompt two unrelated heads can agree by chance (SmolLM2's non-sink pairs agree
# on at most 2 of the 12 default prompts).
REDUNDANT_SHARE = 0.5
# Redundancy is a warning when it involves more than this share of the heads with patterns.
REDUNDANT_MANY = 0.25
# A head is near-uniform when its normalised entropy (1 = uniform over visible keys) exceeds
# this; SmolLM2's most diffuse head reaches ~0.88, a random head ~1.0.
UNIFORM_ENTROPY = 0.95
# Only queries this far into a prompt count: with a handful of visible keys every head's
# entropy is close to its maximum.
UNIFORM_MIN_QUERY = 8
# Pairs and heads the finding points at.
MAX_CELLS = 6

REDUNDANT_MEANING = (
    "These heads attend in nearly the same way (cosine of their patterns, beyond uniform "
    "attention, at least 0.95) on most prompts. Redundant heads are common in trained models "
    "and are what head pruning removes first; identical ones (cosine ~1 on every prompt) are "
    "unusual and mean copied weights: a bad initialisation, a merge or a conversion that "
    "duplicated a head. Pairs of first-token sink heads are not listed (see attention sinks)."
)
UNIFORM_MEANING = (
    "These heads spread their attention almost evenly over the tokens they can see: they "
    "average the context rather than pick anything out. A few such heads are normal in "
    "trained models (they gather a summary of the context); if most heads are like this the "
    "model is likely untrained or barely trained (an untrained model's heads are all "
    "uniform), or its queries and keys have collapsed (check the query/key weights' norms)."
)


def detect(inputs: DiagnosticInputs) -> list[Finding]:
    with_patterns = [(p, t) for p, t in enumerate(inputs.traces) if trace_patterns(t)]
    with_entropy = traces_with(inputs, "heads.entropy")
    if not with_patterns and not with_entropy:
        raise DetectorSkipped(
            "no trace holds attention patterns or head scores; capture with head scores on "
            "and patterns kept."
        )
    findings = []
    if with_patterns:
        found = _redundant(with_patterns)
        if found is not None:
            findings.append(found)
    if with_entropy:
        found = _near_uniform(with_entropy, n_model_layers(inputs))
        if found is not None:
            findings.append(found)
    return findings


def _first_weight(trace) -> dict[tuple[int, int], float]:
    """(layer, head) -> mean weight on key 0 over queries t >= 1 in this trace ({} if unknown)."""
    if not trace.has("heads.first") or trace.get("heads.first").shape[1] < 2:
        return {}
    first = np.asarray(trace.get("heads.first"), dtype=np.float64)[:, 1:, :]
    mean = first.mean(axis=1)  # [L', H]
    return {
        (layer, h): float(mean[row, h])
        for row, layer in enumerate(trace.layers())
        for h in range(mean.shape[1])
    }


def _redundant(with_patterns) -> Finding | None:
    hits: dict[tuple, list[float]] = {}
    kept: list[set[tuple[int, int]]] = []  # per prompt, the heads whose patterns it holds
    sink_pairs = 0
    for _, trace in with_patterns:
        patterns = trace_patterns(trace)
        kept.append(set(patterns))
        first = _first_weight(trace)
        for a, b, cos in redundant_pairs(patterns, REDUNDANT_COSINE):
            if first.get(a, 0.0) > SINK_WEIGHT and first.get(b, 0.0) > SINK_WEIGHT:
                sink_pairs += 1
                continue
            hits.setdefault((a, b), []).append(cos)
    heads_seen = set().union(*kept)
    held = {pair: sum(pair[0] in k and pair[1] in k for k in kept) for pair in hits}
    pairs = [
        (a, b, float(np.mean(c)), len(c), held[(a, b)])
        for (a, b), c in hits.items()
        if len(c) >= REDUNDANT_SHARE * held[(a, b)]
    ]
    if not pairs:
        return None
    pairs.sort(key=lambda p: -p[2])
    identical = [p for p in pairs if p[2] >= IDENTICAL_COSINE and p[3] == p[4]]
    involved = {h for a, b, *_ in pairs for h in (a, b)}
    many = len(involved) > REDUNDANT_MANY * max(len(heads_seen), 1)
    severity = "warning" if identical or many else "info"
    a, b, cos, n_hit, n_held = pairs[0]
    kind = "identical" if len(identical) == len(pairs) else "redundant"
    title = (
        f"{plural(len(pairs), 'pair')} of attention heads are {kind}"
        f" ({len(involved)} of {len(heads_seen)} heads); closest: L{a[0]}.H{a[1]} and "
        f"L{b[0]}.H{b[1]}, pattern cosine {fmt(cos)} on {n_hit} of {plural(n_held, 'prompt')}"
    )
    if identical and len(identical) < len(pairs):
        title += f"; {len(identical)} identical"
    cells = []
    for a, b, *_ in pairs[: MAX_CELLS // 2]:
        cells += [Cell("heads", layer=a[0], head=a[1]), Cell("heads", layer=b[0], head=b[1])]
    return Finding(
        detector=NAME,
        severity=severity,
        title=title,
        meaning=REDUNDANT_MEANING,
        cells=cells,
        figures={
            "pairs": [[list(a), list(b), c, n, m] for a, b, c, n, m in pairs[:50]],
            "n_pairs": len(pairs),
            "n_identical": len(identical),
            "heads_involved": len(involved),
            "heads_with_patterns": len(heads_seen),
            "sink_pairs_left_out": sink_pairs,
            "threshold": REDUNDANT_COSINE,
        },
    )


def _near_uniform(with_entropy, n_layers: int) -> Finding | None:
    n_heads = max(t.get("heads.entropy").shape[2] for _, t in with_entropy)
    total = np.zeros((n_layers, n_heads))
    count = np.zeros((n_layers, n_heads))
    for _, trace in with_entropy:
        ent = trace.get("heads.entropy")  # [L', T, H] nats
        if ent.shape[1] <= UNIFORM_MIN_QUERY:
            continue
        norm = normalised_entropy(ent, token_axis=1)[:, UNIFORM_MIN_QUERY:, :]
        for row, layer in enumerate(trace.layers()):
            if layer < n_layers:
                ok = np.isfinite(norm[row])
                total[layer, : ok.shape[1]] += np.where(ok, norm[row], 0).sum(axis=0)
                count[layer, : ok.shape[1]] += ok.sum(axis=0)
    if not count.any():
        return None  # every prompt too short to judge
    held = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(held, total / count, np.nan)
    uniform = held & (np.nan_to_num(mean, nan=0) > UNIFORM_ENTROPY)
    if not uniform.any():
        return None
    layers = [int(v) for v in np.flatnonzero(uniform.any(axis=1))]
    order = np.argsort(-np.where(uniform, mean, -1.0), axis=None)[: int(uniform.sum())]
    heads = [tuple(int(v) for v in np.unravel_index(i, mean.shape)) for i in order]
    per_layer = uniform.sum(axis=1).astype(float)
    per_layer[~held.any(axis=1)] = np.nan
    return Finding(
        detector=NAME,
        # info even when most heads are uniform: an untrained model's heads all are, and that
        # is a fact about training, not a defect the report should alarm about
        severity="info",
        title=(
            f"{int(uniform.sum())} of {int(held.sum())} heads are near-uniform (normalised "
            f"entropy over {fmt(UNIFORM_ENTROPY)}) in {plural(len(layers), 'layer')} "
            f"({layer_list(layers)})"
        ),
        meaning=UNIFORM_MEANING,
        cells=[Cell("heads", layer=h[0], head=h[1]) for h in heads[:MAX_CELLS]],
        figures={
            "heads": [[h[0], h[1], float(mean[h])] for h in heads[:50]],
            "n_uniform": int(uniform.sum()),
            "n_heads": int(held.sum()),
            "share": float(uniform.sum() / held.sum()),
            "threshold": UNIFORM_ENTROPY,
            "min_query": UNIFORM_MIN_QUERY,
        },
        series={
            "near-uniform heads per layer": series(per_layer),
            "mean normalised entropy": series(row_mean(mean)),
        },
    )
