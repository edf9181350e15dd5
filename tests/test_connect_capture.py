"""This area's analyses on a real capture of a tiny llama, against transformers and hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _fixtures_connect import N_LAYERS, tiny_bundle, tiny_trace
from neuroscope_tui.analysis.connect_tables import (
    connectivity_table,
    flow_table,
    lens_table,
    residual_table,
)
from neuroscope_tui.analysis.connectivity import connectivity, linear_cka
from neuroscope_tui.analysis.flow import head_averaged_patterns, rollout
from neuroscope_tui.analysis.lens import lens_grid
from neuroscope_tui.analysis.residual import analyse_residual


@pytest.fixture(scope="module")
def captured():
    """The trace and, from a separate eager forward with our own hooks, the full vectors."""
    trace = tiny_trace()
    bundle = tiny_bundle()
    anatomy = bundle.anatomy
    outs: dict[str, list[torch.Tensor]] = {"attn": [], "mlp": [], "block": []}

    def keep(kind):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            outs[kind].append(out[0].detach().clone())

        return hook

    handles = [m.register_forward_hook(keep("attn")) for m in anatomy.attention]
    handles += [m.register_forward_hook(keep("mlp")) for m in anatomy.mlp]
    handles += [m.register_forward_hook(keep("block")) for m in anatomy.blocks]
    try:
        with torch.no_grad():
            ref = bundle.model(
                input_ids=torch.tensor([trace.token_ids]),
                output_hidden_states=True,
                output_attentions=False,
            )
    finally:
        for h in handles:
            h.remove()
    embed = ref.hidden_states[0][0].numpy()  # [T, D]
    blocks = torch.stack(outs["block"]).numpy()  # [L, T, D] stream after each block
    return {
        "trace": trace,
        "embed": embed,
        "x_in": np.concatenate([embed[None], blocks[:-1]]),
        "x_out": blocks,
        "attn": torch.stack(outs["attn"]).numpy(),
        "mlp": torch.stack(outs["mlp"]).numpy(),
    }


def norms(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=-1)


def test_residual_ratios_match_the_captured_vectors(captured):
    r = analyse_residual(captured["trace"])
    x_in, x_out = captured["x_in"], captured["x_out"]
    np.testing.assert_allclose(r.attn_ratio, norms(captured["attn"]) / norms(x_in), rtol=1e-3)
    np.testing.assert_allclose(r.mlp_ratio, norms(captured["mlp"]) / norms(x_in), rtol=1e-3)
    cos = np.sum(x_in * x_out, -1) / norms(x_in) / norms(x_out)
    np.testing.assert_allclose(r.cos, cos, atol=1e-4)
    np.testing.assert_allclose(r.change, norms(x_out - x_in) / norms(x_in), rtol=1e-2, atol=1e-3)


def test_cka_of_the_trace_matches_the_captured_vectors(captured):
    cka, layers = connectivity(captured["trace"], "cka")
    assert layers == list(range(N_LAYERS))
    x_out = captured["x_out"]
    for a in range(N_LAYERS):
        for b in range(N_LAYERS):
            assert cka[a, b] == pytest.approx(linear_cka(x_out[a], x_out[b]), abs=1e-4)


def test_rollout_from_trace_patterns_matches_output_attentions(captured):
    import copy

    trace = captured["trace"]
    ref_model = copy.deepcopy(tiny_bundle().model)
    ref_model.set_attn_implementation("eager")
    with torch.no_grad():
        att = ref_model(input_ids=torch.tensor([trace.token_ids]), output_attentions=True)
    means = np.stack([a[0].mean(0).numpy() for a in att.attentions])  # [L, T, T]
    pats = head_averaged_patterns(trace)
    last = trace.n_tokens - 1
    np.testing.assert_allclose(rollout(pats, last), rollout(means, last), atol=1e-5)


def test_lens_last_layer_is_the_models_prediction(captured):
    trace = captured["trace"]
    g = lens_grid(trace)
    with torch.no_grad():
        logits = tiny_bundle().model(input_ids=torch.tensor([trace.token_ids])).logits[0]
    np.testing.assert_array_equal(g.top1_ids[-1], logits.argmax(-1).numpy())
    # greedy generation: every generated token is the model's top-1 at the position before it
    gen = slice(trace.n_prompt - 1, trace.n_tokens - 1)
    assert g.hits[-1, gen].all()


def test_every_export_table_is_complete(captured):
    trace = captured["trace"]
    n, n_layers = trace.n_tokens, N_LAYERS
    conn = connectivity_table(trace)
    assert len(conn.rows) == 5 * n_layers * n_layers
    res = residual_table(trace)
    assert len(res.rows) == n_layers * n
    flow = flow_table(trace)
    assert {r[0] for r in flow.rows} == {"rollout", "flow"}
    assert len(flow.rows) == 2 * n_layers * n
    lens = lens_table(trace)
    assert len(lens.rows) == n_layers * n
    for table in (conn, res, flow, lens):
        assert all(len(row) == len(table.columns) for row in table.rows)
