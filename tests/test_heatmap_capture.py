"""The heatmap's numbers from a real capture of a tiny llama, against transformers and hooks.

The capture runs the prompt then generates with the KV cache; the reference is one plain
forward over all the tokens (causal, so every position sees the same context) with
`output_hidden_states` and forward hooks of our own on a second pass.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neuroscope_tui.analysis.metrics import METRICS, heatmap_table, metric_values  # noqa: E402

N_LAYERS = 3
PROMPT = "The capital of France is Paris. The cat sat on the mat"


@pytest.fixture(scope="module")
def captured():
    """(trace, reference arrays [layer, token]) for a 3-layer tiny llama."""
    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.trace import CaptureSpec
    from tiny_models import tiny_bundle

    bundle = tiny_bundle("llama", seed=3, num_hidden_layers=N_LAYERS)
    model = bundle.model
    options = GenerationOptions(max_new_tokens=4, stop_at_eos=False)
    trace = run(bundle, PROMPT, CaptureSpec(), options)
    ids = torch.tensor([trace.token_ids])
    near_zero = trace.spec.near_zero

    layers = model.model.layers
    seen: dict[str, list[torch.Tensor]] = {"block": [], "attn": [], "mlp": [], "neurons": []}

    def out_hook(kind):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            seen[kind].append(out[0].detach().clone())  # [token, d]

        return hook

    def neuron_hook(_module, inputs):
        seen["neurons"].append(inputs[0][0].detach().clone())  # [token, d_mlp]

    handles = [layer.register_forward_hook(out_hook("block")) for layer in layers]
    handles += [layer.self_attn.register_forward_hook(out_hook("attn")) for layer in layers]
    handles += [layer.mlp.register_forward_hook(out_hook("mlp")) for layer in layers]
    handles += [layer.mlp.down_proj.register_forward_pre_hook(neuron_hook) for layer in layers]
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states  # L+1 x [1, T, D]

    block = torch.stack(seen["block"]).numpy()  # [layer, token, d_model]
    x_in = torch.stack([hidden[0][0], *seen["block"][:-1]]).numpy()  # stream entering block l
    ref = {
        "resid.norm": np.linalg.norm(block, axis=-1),
        "resid.max_abs": np.abs(block).max(-1),
        "resid.delta": np.linalg.norm(block - x_in, axis=-1) / np.linalg.norm(x_in, axis=-1),
        "attn.norm": np.linalg.norm(torch.stack(seen["attn"]).numpy(), axis=-1),
        "mlp.norm": np.linalg.norm(torch.stack(seen["mlp"]).numpy(), axis=-1),
        "neurons.zero_frac": (np.abs(torch.stack(seen["neurons"]).numpy()) < near_zero).mean(-1),
    }
    # transformers' own hidden states agree with our block hooks below the final norm
    for layer in range(N_LAYERS - 1):
        np.testing.assert_allclose(block[layer], hidden[layer + 1][0].numpy(), atol=1e-5)
    return trace, ref


def test_capture_produced_prompt_and_generated_tokens(captured):
    trace, _ = captured
    assert trace.n_generated == 4 and trace.n_prompt > 5
    for name in METRICS:
        assert metric_values(trace, name).shape == (N_LAYERS, trace.n_tokens)


@pytest.mark.parametrize("name", list(METRICS))
def test_every_heatmap_metric_matches_an_independent_forward(captured, name):
    trace, ref = captured
    got = metric_values(trace, name)
    if name == "neurons.zero_frac":
        # a neuron right at the threshold may fall either side between the cached and the
        # plain pass: allow one neuron's worth of difference per cell
        d_mlp = trace.model.d_mlp or 64
        assert ref[name].max() > 2.0 / d_mlp, "no near-zero neurons: the check would be empty"
        np.testing.assert_allclose(got, ref[name], atol=1.0 / d_mlp + 1e-6)
    else:
        np.testing.assert_allclose(got, ref[name], rtol=2e-4, atol=1e-5)


def test_exported_table_carries_the_same_numbers(captured):
    trace, ref = captured
    table = heatmap_table(trace)
    col = table.columns.index("resid.delta")
    for row in table.rows:
        layer, t = row[0], row[1]
        assert row[col] == pytest.approx(float(ref["resid.delta"][layer, t]), rel=2e-4, abs=1e-5)
