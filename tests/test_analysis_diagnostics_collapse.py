"""analysis/diagnostics/collapse.py: prunable blocks, silent and outsized sub-blocks,
representation collapse."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_diagnostics import D, L, T, clean_inputs, clean_trace, inputs_of
from neuroscope_tui.analysis.connectivity import linear_cka
from neuroscope_tui.analysis.diagnostics import collapse
from neuroscope_tui.analysis.diagnostics.findings import DetectorSkipped


def parts(seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(T, D)),
        rng.normal(scale=0.5, size=(L, T, D)),
        rng.normal(scale=0.5, size=(L, T, D)),
    )


def planted(transform, n=3):
    traces = []
    for seed in range(n):
        embed, attn, mlp = parts(seed)
        transform(attn, mlp)
        traces.append(clean_trace(seed, embed=embed, attn=attn, mlp=mlp))
    return inputs_of(*traces)


def titles(found):
    return [f.title for f in found]


def test_clean_blocks_give_nothing():
    assert collapse.detect(clean_inputs(3)) == []


def test_a_zeroed_mlp_contributes_nothing():
    def zero(attn, mlp):
        mlp[2] = 0.0

    found = collapse.detect(planted(zero))
    (f,) = [f for f in found if f.figures.get("site") == "mlp"]
    assert f.title.startswith("The MLP of block 2 contributes nothing")
    assert f.figures["layers"] == [2] and f.severity == "warning"
    assert f.cells[0].view == "residual" and f.cells[0].layer == 2


def test_an_mlp_scaled_up_100x_writes_far_more_than_the_rest():
    def scale(attn, mlp):
        mlp[1] *= 100

    found = collapse.detect(planted(scale))
    (loud,) = [f for f in found if "more than the other blocks" in f.title]
    assert loud.figures["layers"] == [1]
    assert loud.figures["ratio_to_median"][0] == pytest.approx(100, rel=0.2)
    # the blocks after it now barely move the (100x larger) stream
    (prunable,) = [f for f in found if "barely change" in f.title]
    assert prunable.figures["layers"] == [2, 3]


def test_a_block_that_barely_writes_is_prunable_with_its_delta_and_cka():
    def quiet(attn, mlp):
        attn[3] *= 3e-3
        mlp[3] *= 3e-3

    inputs = planted(quiet)
    (f,) = collapse.detect(inputs)
    assert f.title.startswith("Block 3 barely changes the stream")
    deltas = [t.arrays["resid.delta"][3, 1:].mean() for t in inputs.traces]
    assert f.figures["delta"][0] == pytest.approx(np.mean(deltas), rel=1e-5)
    ckas = [
        linear_cka(t.arrays["resid.full"][2, 1:], t.arrays["resid.full"][3, 1:])
        for t in inputs.traces
    ]
    assert f.figures["cka"][0] == pytest.approx(np.mean(ckas), rel=1e-4)
    # NaN at block 0: its input (the embeddings) is not kept in full
    assert np.isnan(f.series["CKA between block input and output"][0])


def test_tokens_pointing_the_same_way_are_one_finding_listing_the_layers():
    direction = np.random.default_rng(9).normal(size=D)

    def common(attn, mlp):
        mlp[2] += 40 * direction  # the same large vector added to every token

    inputs = planted(common)
    found = collapse.detect(inputs)
    (f,) = [f for f in found if "point the same way" in f.title]
    assert f.figures["layers"] == [2, 3]
    # mean pairwise cosine over tokens t >= 1, brute force
    x = inputs.traces[0].arrays["resid.full"][2, 1:].astype(np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = u @ u.T
    brute = cos[~np.eye(len(u), dtype=bool)].mean()
    per_prompt = []
    for t in inputs.traces:
        x = t.arrays["resid.full"][2, 1:].astype(np.float64)
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        c = u @ u.T
        per_prompt.append(c[~np.eye(len(u), dtype=bool)].mean())
    assert per_prompt[0] == pytest.approx(brute)
    assert f.figures["cosine"][0] == pytest.approx(np.mean(per_prompt), rel=1e-6)


def test_without_any_stream_arrays_it_is_skipped():
    trace = clean_trace(0)
    for name in ("resid.delta", "resid.full", "resid.norm"):
        del trace.arrays[name]
    with pytest.raises(DetectorSkipped, match=r"resid\.delta"):
        collapse.detect(inputs_of(trace))
