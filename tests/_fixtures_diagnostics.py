"""Synthetic traces for the diagnostics detectors: clean random data with consistent arrays,
into which each test plants one defect with a known answer. No torch."""

from __future__ import annotations

import numpy as np

from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs
from neuroscope_tui.analysis.heads import query_scores_from_pattern
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

L, T, D, H, N = 4, 16, 32, 4, 64
WORDS = ["The", " cat", " sat", " on", " the", " mat", ".", " It", " was", " warm", ",", " and",
         " the", " dog", " slept", "\n"]  # fmt: skip


def random_patterns(rng: np.random.Generator, n_tokens: int, scale: float = 0.5) -> np.ndarray:
    """[H, T, T] causal softmax rows from random logits (diffuse, like an untrained head)."""
    logits = rng.normal(scale=scale, size=(H, n_tokens, n_tokens))
    mask = np.tri(n_tokens, dtype=bool)
    logits = np.where(mask, logits, -np.inf)
    p = np.exp(logits - logits.max(axis=2, keepdims=True))
    return p / p.sum(axis=2, keepdims=True)


def head_arrays(patterns: dict[tuple[int, int], np.ndarray], ids: list[int]) -> dict:
    """heads.* [L, T, H] from full patterns (layer, head) -> [T, T]."""
    out = {name: np.zeros((L, len(ids), H), np.float32) for name in
           ("entropy", "first", "prev", "self", "dup", "induction")}  # fmt: skip
    for (layer, head), pattern in patterns.items():
        for name, values in query_scores_from_pattern(pattern, ids).items():
            out[name][layer, :, head] = values
    return {f"heads.{k}": v for k, v in out.items()}


def stream_arrays(embed: np.ndarray, attn: np.ndarray, mlp: np.ndarray) -> dict:
    """Every per-token summary and resid.full from embeddings [T, D] and each block's
    attention and MLP outputs [L, T, D] (x_l = x_{l-1} + attn_l + mlp_l)."""
    xs = []
    x = embed
    for layer in range(attn.shape[0]):
        x = x + attn[layer] + mlp[layer]
        xs.append(x)
    resid = np.stack(xs)  # [L, T, D]
    x_in = np.concatenate([embed[None], resid[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.linalg.norm(resid - x_in, axis=2) / np.linalg.norm(x_in, axis=2)
        cos = (resid * x_in).sum(axis=2) / (
            np.linalg.norm(resid, axis=2) * np.linalg.norm(x_in, axis=2)
        )
    out = {
        "resid.full": resid.astype(np.float32),
        "resid.delta": delta.astype(np.float32),
        "resid.cos": cos.astype(np.float32),
        "embed.norm": np.linalg.norm(embed, axis=1).astype(np.float32),
    }
    for site, values in (("resid", resid), ("attn", attn), ("mlp", mlp)):
        out[f"{site}.norm"] = np.linalg.norm(values, axis=2).astype(np.float32)
        out[f"{site}.max_abs"] = np.abs(values).max(axis=2).astype(np.float32)
        out[f"{site}.mean"] = values.mean(axis=2).astype(np.float32)
    return out


def clean_trace(seed: int = 0, n_tokens: int = T, dtype: str = "float32", **plant) -> Trace:
    """A healthy random trace: Gaussian stream, diffuse heads with every pattern kept, GELU-ish
    neurons. `plant` overrides the raw parts before the arrays are derived: embed [T, D],
    attn / mlp [L, T, D], patterns {(l, h): [T, T]}, neurons [L, T, N]."""
    rng = np.random.default_rng(seed)
    ids = [int(v) for v in rng.integers(4, 200, size=n_tokens)]
    text = [WORDS[i % len(WORDS)] for i in range(n_tokens)]
    embed = plant.get("embed", rng.normal(size=(n_tokens, D)))
    attn = plant.get("attn", rng.normal(scale=0.5, size=(L, n_tokens, D)))
    mlp = plant.get("mlp", rng.normal(scale=0.5, size=(L, n_tokens, D)))
    patterns = {
        (layer, h): p for layer in range(L) for h, p in enumerate(random_patterns(rng, n_tokens))
    }
    patterns.update(plant.get("patterns", {}))
    pre = rng.normal(size=(L, n_tokens, N))
    neurons = plant.get("neurons", pre * 0.5 * (1 + np.tanh(pre)))  # GELU-like: rarely zero
    arrays = stream_arrays(embed, attn, mlp)
    arrays.update(head_arrays(patterns, ids))
    arrays.update({f"pattern.{a}.{b}": p.astype(np.float32) for (a, b), p in patterns.items()})
    arrays["neurons.full"] = np.asarray(neurons, dtype=np.float32)
    arrays["logits.top_probs"] = np.full((n_tokens, 3), 1 / 3, np.float32)
    arrays["logits.top_ids"] = np.zeros((n_tokens, 3), np.int32)
    model = ModelInfo(
        name="synthetic", dtype=dtype, n_layers=L, n_heads=H, d_model=D, d_mlp=N, d_head=D // H
    )
    return Trace(
        model=model,
        spec=CaptureSpec(full_layers=None),
        token_ids=ids,
        token_text=text,
        n_prompt=n_tokens,
        arrays=arrays,
    )


def inputs_of(*traces: Trace, **kw) -> DiagnosticInputs:
    return DiagnosticInputs(traces=list(traces), source="snapshot", **kw)


def clean_inputs(n: int = 3, **plant) -> DiagnosticInputs:
    """`n` clean traces of different seeds (the plant goes into every one)."""
    return inputs_of(*(clean_trace(seed, **plant) for seed in range(n)))
