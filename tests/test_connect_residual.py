"""Residual ratios checked against a direct computation on full vectors."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.analysis.residual import ATTN, MLP, SKIP, UNKNOWN, analyse_residual
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

RNG = np.random.default_rng(1)


def norms(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=-1)


def synthetic_run(n_layers: int = 4, n_tokens: int = 9, d: int = 16):
    """Full vectors of a pre-norm stream x_out = x_in + attn + mlp and the trace's summaries."""
    embed = RNG.normal(size=(n_tokens, d))
    attn = RNG.normal(size=(n_layers, n_tokens, d)) * RNG.uniform(0.01, 2, size=(n_layers, 1, 1))
    mlp = RNG.normal(size=(n_layers, n_tokens, d)) * RNG.uniform(0.01, 2, size=(n_layers, 1, 1))
    attn[1] *= 0.001  # layer 1: both blocks nearly silent, the skip path carries the stream
    mlp[1] *= 0.001
    attn[2] *= 10  # layer 2: attention dominates
    xs, x = [], embed
    for layer in range(n_layers):
        x = x + attn[layer] + mlp[layer]
        xs.append(x)
    resid = np.stack(xs)  # [L, T, D]
    x_in = np.concatenate([embed[None], resid[:-1]])  # [L, T, D]
    cos = np.sum(x_in * resid, axis=-1) / norms(x_in) / norms(resid)
    trace = Trace(model=ModelInfo(name="toy", n_layers=n_layers), spec=CaptureSpec())
    trace.append(
        list(range(n_tokens)),
        [str(i) for i in range(n_tokens)],
        {
            "embed.norm": norms(embed).astype(np.float32),
            "resid.norm": norms(resid).astype(np.float32),
            "resid.cos": cos.astype(np.float32),
            "resid.delta": (norms(resid - x_in) / norms(x_in)).astype(np.float32),
            "attn.norm": norms(attn).astype(np.float32),
            "mlp.norm": norms(mlp).astype(np.float32),
        },
    )
    return trace, x_in, resid, attn, mlp


def test_ratios_match_direct_computation_on_full_vectors():
    trace, x_in, resid, attn, mlp = synthetic_run()
    r = analyse_residual(trace)
    assert np.allclose(r.x_in_norm, norms(x_in), rtol=1e-5)
    assert np.allclose(r.attn_ratio, norms(attn) / norms(x_in), rtol=1e-4)
    assert np.allclose(r.mlp_ratio, norms(mlp) / norms(x_in), rtol=1e-4)
    direct_cos = np.sum(x_in * resid, -1) / norms(x_in) / norms(resid)
    assert np.allclose(r.cos, direct_cos, atol=1e-5)
    # the change reconstructed from norms and cosine equals ||x_out - x_in|| / ||x_in||
    assert np.allclose(r.change, norms(resid - x_in) / norms(x_in), rtol=1e-3, atol=1e-4)


def test_dominant_block_and_skip_path():
    trace, _, _, attn, mlp = synthetic_run()
    r = analyse_residual(trace)
    assert (r.dominant[1] == SKIP).all()
    assert (r.dominant[2] == ATTN).all()
    bigger = np.where(norms(mlp) > norms(attn), MLP, ATTN)
    moving = r.dominant != SKIP
    assert (r.dominant[moving] == bigger[moving]).all()
    summary = r.layer_summary()
    assert summary[1]["dominant"] == "skip" and summary[1]["skip_share"] == 1.0
    assert summary[2]["dominant"] == "attn"
    assert summary[0]["attn_ratio"] == pytest.approx(np.mean(r.attn_ratio[0]))


def test_missing_previous_layer_is_unknown():
    trace, *_ = synthetic_run()
    trace.spec = CaptureSpec(layers=(0, 2, 3))
    for name in ("resid.norm", "resid.cos", "attn.norm", "mlp.norm", "resid.delta"):
        trace.arrays[name] = trace.arrays[name][[0, 2, 3]]
    r = analyse_residual(trace)
    assert np.isnan(r.attn_ratio[1]).all() and (r.dominant[1] == UNKNOWN).all()
    assert np.isfinite(r.attn_ratio[2]).all()


def test_missing_arrays_say_what_to_capture():
    trace = Trace(model=ModelInfo(name="toy", n_layers=2))
    with pytest.raises(SnapshotError, match="resid, attn and mlp"):
        analyse_residual(trace)
