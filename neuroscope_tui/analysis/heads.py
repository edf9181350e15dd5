"""What each attention head does: per-head scores, head types and redundant head pairs.

Pure numpy. Two ways in, which give the same numbers:

- from a Trace's per-query arrays `heads.*` [layer, token, head] that the attention tap
  records for every head (`head_scores`), and
- from one head's full pattern [query, key] plus the token ids (`query_scores_from_pattern`,
  `scores_from_pattern`), which tests use on hand-built patterns and to cross-check the tap.

Per-query scores (what the tap records for query t; keys j <= t):

    entropy    -sum_j p_j log p_j (nats)
    first      p_0, the weight on the first token (an attention sink)
    prev       p_{t-1}
    self       p_t
    dup        sum of p_j over earlier keys j < t with token[j] == token[t]
    induction  sum of p_j over earlier keys 1 <= j < t with token[j-1] == token[t]
               (the token that followed an earlier copy of the current token)

A head's score is the mean of its per-query scores over the queries where the score says
something: t >= 1 for every score (at t = 0 the only visible key is the query itself, so
first = self = 1 and entropy = 0 tell nothing), and for dup and induction only the queries
whose token occurred before. Entropy is normalised by log(t + 1), the entropy of uniform
attention over the t + 1 visible keys, so 1 means "looks everywhere equally".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# score name -> what it means on screen
SCORES: dict[str, str] = {
    "entropy": "normalised entropy (1 = uniform over visible keys)",
    "first": "weight on the first token (sink)",
    "prev": "weight on the previous token",
    "self": "weight on the query's own token",
    "dup": "weight on earlier copies of the query's token",
    "induction": "weight on the token after an earlier copy of the query's token",
}
SCORE_NAMES: tuple[str, ...] = tuple(SCORES)

# head type -> (letter marked in the overview, description)
HEAD_TYPES: dict[str, tuple[str, str]] = {
    "previous-token": ("P", "attends to the token just before the query"),
    "induction": ("I", "attends to what followed an earlier copy of the current token"),
    "duplicate-token": ("D", "attends to earlier copies of the current token"),
    "sink": ("S", "puts most of its weight on the first token"),
    "near-uniform": ("U", "spreads its weight evenly: no clear specialisation"),
    "redundant": ("R", "its pattern nearly equals another head's"),
}


@dataclass(frozen=True)
class Thresholds:
    """Where a head score becomes a head type (documented in docs and `heads --help`).

    A head is of a type when its mean score is at least the threshold: previous-token
    `prev`, induction `induction`, duplicate-token `dup`, sink `first`, near-uniform
    normalised entropy `entropy`. Two heads are a redundant pair when the cosine similarity
    of their full patterns is at least `redundant`. Induction and previous-token heads are
    judged on the repeated random-token probe, where a head with no such skill scores about
    1 / (number of visible keys).
    """

    prev: float = 0.4
    induction: float = 0.4
    dup: float = 0.3
    first: float = 0.6
    entropy: float = 0.85
    redundant: float = 0.95


DEFAULT_THRESHOLDS = Thresholds()


# ---- per-query scores from one full pattern -------------------------------------------------


def _earlier_same_token(token_ids: np.ndarray) -> np.ndarray:
    """[T, T] bool: key j < query t holds the same token id as t."""
    same = token_ids[:, None] == token_ids[None, :]
    return same & np.tri(len(token_ids), k=-1, dtype=bool)


def _induction_keys(token_ids: np.ndarray) -> np.ndarray:
    """[T, T] bool: earlier key j (1 <= j < t) follows a token equal to query t's token."""
    n = len(token_ids)
    keys = np.zeros((n, n), dtype=bool)
    # column j compares token[j - 1] with every query's token
    keys[:, 1:] = token_ids[:, None] == token_ids[None, :-1]
    return keys & np.tri(n, k=-1, dtype=bool)


def query_scores_from_pattern(pattern: np.ndarray, token_ids: Any) -> dict[str, np.ndarray]:
    """Per-query scores [T] of one head from its full pattern [query, key] (rows sum to 1).

    Same definitions as the attention tap's `heads.*` rows (see the module docstring);
    entropy is in nats, not normalised. Raises ValueError if the shapes disagree.
    """
    p = np.asarray(pattern, dtype=np.float64)
    ids = np.asarray(token_ids)
    n = len(ids)
    if p.shape != (n, n):
        raise ValueError(f"pattern shape {p.shape} does not match {n} tokens")
    p = np.tril(p)  # a causal head never looks ahead; ignore anything stored above
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    idx = np.arange(n)
    prev = np.zeros(n)
    prev[1:] = p[idx[1:], idx[1:] - 1]
    return {
        "entropy": -plogp.sum(axis=1),
        "first": p[:, 0].copy(),
        "prev": prev,
        "self": p[idx, idx].copy(),
        "dup": (p * _earlier_same_token(ids)).sum(axis=1),
        "induction": (p * _induction_keys(ids)).sum(axis=1),
    }


def seen_before(token_ids: Any) -> np.ndarray:
    """[T] bool: the token at t occurred at some earlier position."""
    ids = np.asarray(token_ids)
    return _earlier_same_token(ids).any(axis=1)


def query_masks(token_ids: Any) -> dict[str, np.ndarray]:
    """[T] bool per score: the queries a head's mean score is taken over."""
    ids = np.asarray(token_ids)
    after_first = np.arange(len(ids)) >= 1
    repeated = seen_before(ids)
    return {name: repeated if name in ("dup", "induction") else after_first for name in SCORE_NAMES}


def normalised_entropy(entropy: np.ndarray, token_axis: int = 0) -> np.ndarray:
    """Entropy (nats) divided by log(t + 1) along `token_axis`; NaN at t = 0."""
    ent = np.asarray(entropy, dtype=np.float64)
    n = ent.shape[token_axis]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(np.arange(n) >= 1, 1.0 / np.log(np.arange(n) + 1.0), np.nan)
    shape = [1] * ent.ndim
    shape[token_axis] = n
    return ent * scale.reshape(shape)


def summarise(per_query: dict[str, np.ndarray], token_ids: Any) -> dict[str, np.ndarray]:
    """Mean per-query scores [L, T, H] (or [T]) over each score's queries -> [L, H] (or [])."""
    masks = query_masks(token_ids)
    out: dict[str, np.ndarray] = {}
    for name in SCORE_NAMES:
        values = np.asarray(per_query[name], dtype=np.float64)
        axis = 1 if values.ndim == 3 else 0
        if name == "entropy":
            values = normalised_entropy(values, axis)
        mask = masks[name]
        if not mask.any():
            shape = values.shape[:axis] + values.shape[axis + 1 :]
            out[name] = np.full(shape, np.nan)
            continue
        out[name] = np.take(values, np.flatnonzero(mask), axis=axis).mean(axis=axis)
    return out


def scores_from_pattern(pattern: np.ndarray, token_ids: Any) -> dict[str, float]:
    """One head's summary scores from its full pattern [T, T] (NaN where undefined)."""
    summary = summarise(query_scores_from_pattern(pattern, token_ids), token_ids)
    return {name: float(v) for name, v in summary.items()}


# ---- every head of a trace ------------------------------------------------------------------


@dataclass
class HeadScores:
    """Summary scores of every head: `values[name]` is [layer, head] for `layers`.

    `types[(layer, head)]` lists the head's types; `redundant_pairs` holds
    ((layer, head), (layer, head), cosine) with cosine >= the threshold.
    """

    layers: list[int]
    n_heads: int
    values: dict[str, np.ndarray]
    types: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    redundant_pairs: list[tuple[tuple[int, int], tuple[int, int], float]] = field(
        default_factory=list
    )

    def score(self, name: str, layer: int, head: int) -> float:
        """The summary score `name` of one head (`layer` is a model layer index)."""
        return float(self.values[name][self.layers.index(layer), head])

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-able dict per head: layer, head, every score (None where undefined),
        types, and redundant_with ([[layer, head], ...])."""
        partners: dict[tuple[int, int], list[list[int]]] = {}
        for a, b, _ in self.redundant_pairs:
            partners.setdefault(a, []).append(list(b))
            partners.setdefault(b, []).append(list(a))
        out = []
        for li, layer in enumerate(self.layers):
            for head in range(self.n_heads):
                row: dict[str, Any] = {"layer": layer, "head": head}
                for name in SCORE_NAMES:
                    v = float(self.values[name][li, head])
                    row[name] = None if np.isnan(v) else round(v, 6)
                row["types"] = list(self.types.get((layer, head), []))
                row["redundant_with"] = partners.get((layer, head), [])
                out.append(row)
        return out


def types_from_rows(rows: list[dict[str, Any]]) -> dict[tuple[int, int], list[str]]:
    """(layer, head) -> types, from `HeadScores.rows()` (as saved in a trace's notes)."""
    return {(int(r["layer"]), int(r["head"])): list(r["types"]) for r in rows}


def scores_from_rows(rows: list[dict[str, Any]], layers: list[int], n_heads: int) -> HeadScores:
    """HeadScores for `layers` x `n_heads` from `HeadScores.rows()` (e.g. the induction probe's,
    saved in a trace's notes): values NaN and types empty where the rows lack a head."""
    at = {layer: i for i, layer in enumerate(layers)}
    values = {name: np.full((len(layers), n_heads), np.nan) for name in SCORE_NAMES}
    types: dict[tuple[int, int], list[str]] = {}
    for row in rows:
        layer, head = int(row["layer"]), int(row["head"])
        if layer not in at or not 0 <= head < n_heads:
            continue
        for name in SCORE_NAMES:
            if row.get(name) is not None:
                values[name][at[layer], head] = float(row[name])
        types[(layer, head)] = list(row.get("types", []))
    return HeadScores(list(layers), n_heads, values, types)


def head_scores(
    trace: Any,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    patterns: dict[tuple[int, int], np.ndarray] | None = None,
) -> HeadScores:
    """Summary scores and types of every head from a Trace's `heads.*` arrays [L, T, H].

    Redundant pairs come from `patterns` ((layer, head) -> [T, T]) when given, else from the
    `pattern.l.h` arrays the trace holds (so only among heads whose patterns were kept).
    Raises KeyError (naming what the trace holds) when it has no head scores.
    """
    per_query = {name: trace.get(f"heads.{name}") for name in SCORE_NAMES}
    layers = trace.layers()
    n_heads = per_query["entropy"].shape[2]
    scores = HeadScores(layers, n_heads, summarise(per_query, trace.token_ids))
    if patterns is None:
        patterns = trace_patterns(trace)
    scores.redundant_pairs = redundant_pairs(patterns, thresholds.redundant)
    scores.types = classify(scores, thresholds)
    return scores


def trace_patterns(trace: Any) -> dict[tuple[int, int], np.ndarray]:
    """The single-head patterns a trace holds, keyed (layer, head) (head-mean ones left out)."""
    out = {}
    for name, arr in trace.arrays.items():
        if name.startswith("pattern."):
            _, layer, head = name.split(".")
            if int(head) >= 0:
                out[(int(layer), int(head))] = arr
    return out


def classify(
    scores: HeadScores, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> dict[tuple[int, int], list[str]]:
    """Each head's types from its summary scores and the redundant pairs."""
    rules = [
        ("previous-token", "prev", thresholds.prev),
        ("induction", "induction", thresholds.induction),
        ("duplicate-token", "dup", thresholds.dup),
        ("sink", "first", thresholds.first),
        ("near-uniform", "entropy", thresholds.entropy),
    ]
    redundant = {h for a, b, _ in scores.redundant_pairs for h in (a, b)}
    types: dict[tuple[int, int], list[str]] = {}
    for li, layer in enumerate(scores.layers):
        for head in range(scores.n_heads):
            found = []
            for type_name, score, limit in rules:
                v = scores.values[score][li, head]
                if not np.isnan(v) and v >= limit:
                    found.append(type_name)
            if (layer, head) in redundant:
                found.append("redundant")
            types[(layer, head)] = found
    return types


def type_letters(types: list[str]) -> str:
    """The overview's letters for a head's types, e.g. "PI"."""
    return "".join(HEAD_TYPES[t][0] for t in types)


def redundant_pairs(
    patterns: dict[tuple[int, int], np.ndarray], threshold: float = DEFAULT_THRESHOLDS.redundant
) -> list[tuple[tuple[int, int], tuple[int, int], float]]:
    """Pairs of heads whose patterns' cosine similarity is at least `threshold`, best first.

    Each pattern is compared after subtracting uniform attention (1 / (t + 1) on every
    visible key): what is left is what the head does beyond looking everywhere, so two
    near-uniform heads (already typed "near-uniform") are not called redundant for it, while
    two heads with the same specific pattern are. Row 0 is left out: every causal head puts
    all its weight on key 0 there.
    """
    keys = sorted(patterns)
    if len(keys) < 2:
        return []
    flat = np.stack([_pattern_vector(patterns[k]) for k in keys])  # [heads, T*(T+1)/2 - 1]
    norms = np.linalg.norm(flat, axis=1)
    norms[norms == 0] = 1.0
    unit = flat / norms[:, None]
    cos = unit @ unit.T  # [heads, heads]
    i, j = np.nonzero(np.triu(cos >= threshold, k=1))
    pairs = [(keys[a], keys[b], float(cos[a, b])) for a, b in zip(i, j, strict=True)]
    return sorted(pairs, key=lambda p: -p[2])


def _pattern_vector(pattern: np.ndarray) -> np.ndarray:
    """The lower triangle of (pattern - uniform) below row 0, as one float32 vector."""
    p = np.asarray(pattern, dtype=np.float32)
    rows, cols = np.tril_indices(p.shape[0])
    keep = rows >= 1
    rows, cols = rows[keep], cols[keep]
    return p[rows, cols] - 1.0 / (rows + 1.0).astype(np.float32)


def heads_table(trace: Any) -> Any:
    """Per-head scores and types as an export Table (one row per head)."""
    from neuroscope_tui.analysis.exports import Table
    from neuroscope_tui.errors import SnapshotError

    try:
        scores = head_scores(trace)
    except KeyError:
        raise SnapshotError(
            "this snapshot has no attention head scores; capture it with head scores on."
        ) from None
    rows = scores.rows()
    columns = ["layer", "head", *SCORE_NAMES, "types"]  # redundant_with is left to JSON
    table_rows = [[" ".join(r[c]) if c == "types" else r[c] for c in columns] for r in rows]
    return Table(columns, table_rows)
