"""Fixtures of the app's tests: a deterministic synthetic Trace and a tiny live Llama.

`synthetic_trace()` builds every array the scan view reads from one random residual stream,
with the same formulas as the capture (so its numbers are self-consistent), from a fixed seed:
SVG snapshot tests see the same screen every time. `python tests/_fixtures_app.py` rewrites
tests/data/app_scan.nscope from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

DATA = Path(__file__).parent / "data"
SCAN_FIXTURE = DATA / "app_scan.nscope"

TOKENS = ["The", " capital", " of", " France", " is", "\n", " Paris", ".", " It", " is", " big"]
N_PROMPT = 6
N_LAYERS, D_MODEL, D_MLP, N_HEADS, TOP_K, VOCAB = 6, 16, 32, 4, 10, 40
FULL_LAYERS = (1, 3)


def _stats(prefix: str, x: np.ndarray, near_zero: float) -> dict[str, np.ndarray]:
    """norm / max_abs / mean / zero_frac over the last axis of x [L, T, D]."""
    return {
        f"{prefix}.norm": np.linalg.norm(x, axis=-1).astype(np.float32),
        f"{prefix}.max_abs": np.abs(x).max(-1).astype(np.float32),
        f"{prefix}.mean": x.mean(-1).astype(np.float32),
        f"{prefix}.zero_frac": (np.abs(x) < near_zero).mean(-1).astype(np.float32),
    }


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def synthetic_trace(seed: int = 0) -> Trace:
    """A finished 6-layer, 11-token trace (6 prompt + 5 generated) with every scan array."""
    rng = np.random.default_rng(seed)
    n_tok = len(TOKENS)
    spec = CaptureSpec(full_layers=FULL_LAYERS, top_k=TOP_K, near_zero=0.05)
    x = rng.normal(size=(n_tok, D_MODEL))  # embeddings
    stream, attn, mlp, neurons, x_in = [], [], [], [], []
    for layer in range(N_LAYERS):
        a = rng.normal(scale=0.5 + 0.2 * layer, size=(n_tok, D_MODEL))
        h = np.maximum(rng.normal(size=(n_tok, D_MLP)) - 0.3, 0.0) * (1 + layer)  # relu-like
        m = h @ rng.normal(scale=0.2, size=(D_MLP, D_MODEL))
        x_in.append(x)
        x = x + a + m
        stream.append(x)
        attn.append(a)
        mlp.append(m)
        neurons.append(h)
    resid, attn_a, mlp_a, neu = (np.stack(v) for v in (stream, attn, mlp, neurons))
    xin = np.stack(x_in)
    arrays = {}
    arrays.update(_stats("resid", resid, spec.near_zero))
    arrays.update(_stats("attn", attn_a, spec.near_zero))
    arrays.update(_stats("mlp", mlp_a, spec.near_zero))
    in_norm = np.linalg.norm(xin, axis=-1)
    arrays["resid.delta"] = (np.linalg.norm(resid - xin, axis=-1) / in_norm).astype(np.float32)
    cos = (resid * xin).sum(-1) / (np.linalg.norm(resid, axis=-1) * in_norm)
    arrays["resid.cos"] = cos.astype(np.float32)
    arrays["embed.norm"] = in_norm[0].astype(np.float32)
    arrays["neurons.zero_frac"] = (np.abs(neu) < spec.near_zero).mean(-1).astype(np.float32)
    order = np.argsort(-np.abs(neu), axis=-1, kind="stable")[..., :TOP_K]
    arrays["neurons.top_idx"] = order.astype(np.int32)
    arrays["neurons.top_val"] = np.take_along_axis(neu, order, -1).astype(np.float32)
    arrays["neurons.full"] = neu[list(FULL_LAYERS)].astype(np.float32)
    for score in ("entropy", "first", "prev", "self", "dup", "induction"):
        arrays[f"heads.{score}"] = rng.random((N_LAYERS, n_tok, N_HEADS)).astype(np.float32)
    lens_logits = (
        rng.normal(size=(N_LAYERS, n_tok, VOCAB)) * np.linspace(1, 4, N_LAYERS)[:, None, None]
    )  # sharper with depth, like a real lens
    probs = _softmax(lens_logits)
    top = np.argsort(-probs, axis=-1, kind="stable")[..., :TOP_K]
    arrays["lens.top_ids"] = top.astype(np.int32)
    arrays["lens.top_probs"] = np.take_along_axis(probs, top, -1).astype(np.float32)
    final = probs[-1]
    kl = (final * (np.log(final) - np.log(probs))).sum(-1)
    arrays["lens.kl"] = kl.astype(np.float32)
    pred = final.argmax(-1)
    rank = (probs > np.take_along_axis(probs, pred[None, :, None], -1)).sum(-1)
    arrays["lens.pred_rank"] = rank.astype(np.int32)
    arrays["lens.pred_prob"] = np.take_along_axis(probs, pred[None, :, None], -1)[..., 0].astype(
        np.float32
    )
    arrays["logits.top_ids"] = arrays["lens.top_ids"][-1].copy()
    arrays["logits.top_probs"] = arrays["lens.top_probs"][-1].copy()
    id_text = {str(i): f" w{i}" if i % 3 else f"t{i}" for i in range(VOCAB)}
    model = ModelInfo(
        name="synthetic-6L", architecture="LlamaForCausalLM", dtype="float32", device="cpu",
        n_layers=N_LAYERS, n_heads=N_HEADS, n_kv_heads=2, d_model=D_MODEL, d_head=4,
        d_mlp=D_MLP, vocab_size=VOCAB, context_length=128,
    )  # fmt: skip
    return Trace(
        model=model,
        spec=spec,
        token_ids=[int(i) for i in rng.integers(0, VOCAB, n_tok)],
        token_text=list(TOKENS),
        n_prompt=N_PROMPT,
        arrays=arrays,
        notes={"id_text": id_text},
        prompt="".join(TOKENS[:N_PROMPT]),
        finished=True,
        stop_reason="length",
    )


def tiny_llama_bundle(folder: Path):
    """A tiny random Llama saved to `folder` and loaded back through the real loader."""
    from neuroscope_tui.models.loader import load_model
    from tiny_models import build_tiny

    build_tiny("llama", folder)
    return load_model(str(folder), device="cpu", dtype="float32")


if __name__ == "__main__":
    from neuroscope_tui.snapshot import save_snapshot

    DATA.mkdir(exist_ok=True)
    print(save_snapshot(synthetic_trace(), SCAN_FIXTURE, force=True))


async def wait_until(condition, timeout: float = 120.0) -> None:
    """Let the app run until `condition()` holds (the worker posts from another thread).

    Plain sleeps, not `pilot.pause`: a pause waits for an idle app, which a flood of tokens or
    a loading worker delays."""
    import asyncio
    import time

    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the app"
        await asyncio.sleep(0.02)
