"""capture/lens.py: the logit lens against a float64 recomputation written out in numpy.

The lens works on shifted logits and a matrix-vector product for the KL (no log-softmax of
every layer); here every figure is recomputed the textbook way, in float64, from the model's
own final norm and unembedding matrix: log p = z - logsumexp(z), KL(final || layer) =
sum p_final (log p_final - log p_layer), the top-k by sorting, the rank by counting.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tiny_models import tiny_bundle

torch = pytest.importorskip("torch")

from neuroscope_tui.capture import lens  # noqa: E402

TOP_K = 5


def log_softmax64(z: np.ndarray) -> np.ndarray:
    peak = z.max(-1, keepdims=True)
    return z - peak - np.log(np.exp(z - peak).sum(-1, keepdims=True))


def reference(anatomy, resid: list[torch.Tensor], softcap: float | None) -> dict[str, np.ndarray]:
    """The lens of every layer's rows, in float64 numpy; the last layer's row is the final."""
    norm = copy.deepcopy(anatomy.final_norm).double()
    weight = anatomy.unembed.weight.detach().double().numpy()  # [V, D]

    def log_probs(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            h = norm(x.double()).numpy()
        z = h @ weight.T
        if softcap:
            z = np.tanh(z / softcap) * softcap
        return log_softmax64(z)

    layers = np.stack([log_probs(x) for x in resid])  # [L, n, V]
    final = layers[-1]
    pred = final.argmax(-1)  # [n]
    own = np.take_along_axis(layers, pred[None, :, None], -1)  # [L, n, 1]
    top = np.argsort(-layers, axis=-1, kind="stable")[..., :TOP_K]
    return {
        "lens.top_ids": top,
        "lens.top_probs": np.exp(np.take_along_axis(layers, top, -1)),
        "lens.kl": (np.exp(final)[None] * (final[None] - layers)).sum(-1),
        "lens.pred_rank": (layers > own).sum(-1),
        "lens.pred_prob": np.exp(own[..., 0]),
    }


def model_rows(bundle, text: str, last: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The streams after every block but the last at the last `last` positions of a real
    forward pass (HF's final hidden state has the final norm applied already), and the
    readout of the last of them as the final logits: the reference's convention."""
    ids = bundle.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = bundle.model(ids, output_hidden_states=True)
        resid = [h[0, -last:] for h in out.hidden_states[1:-1]]
        return resid, lens._logits(bundle.anatomy, resid[-1], None)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma2"])
def test_the_lens_equals_a_float64_recomputation(arch):
    bundle = tiny_bundle(arch)
    anatomy = bundle.anatomy
    softcap = getattr(bundle.model.config, "final_logit_softcapping", None)
    gen = torch.Generator().manual_seed(1)
    n_layers, n, width = 4, 6, anatomy.d_model
    # streams of the scale a trained model's have, one row per layer and position
    resid = [3 * torch.randn(n, width, generator=gen) for _ in range(n_layers)]
    with torch.no_grad():
        final_logits = lens._logits(anatomy, resid[-1], softcap)
    got = lens.logit_lens(anatomy, resid, final_logits, TOP_K, softcap)
    want = reference(anatomy, resid, softcap)
    np.testing.assert_array_equal(got["lens.top_ids"], want["lens.top_ids"])
    np.testing.assert_array_equal(got["lens.pred_rank"], want["lens.pred_rank"])
    for name in ("lens.top_probs", "lens.pred_prob", "lens.kl"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=2e-6, err_msg=name)
    # the last layer is the final distribution itself
    np.testing.assert_array_equal(got["lens.pred_rank"][-1], 0)
    np.testing.assert_allclose(got["lens.kl"][-1], 0, atol=2e-6)


def test_the_lens_does_not_depend_on_how_rows_are_chunked(monkeypatch):
    bundle = tiny_bundle("llama")
    resid, final_logits = model_rows(bundle, "the cat sat on the mat and the dog sat", 9)
    whole = lens.logit_lens(bundle.anatomy, resid, final_logits, TOP_K)
    monkeypatch.setattr(lens, "ROWS_PER_PRODUCT", 1)  # one position per product
    one_by_one = lens.logit_lens(bundle.anatomy, resid, final_logits, TOP_K)
    for name, value in whole.items():
        np.testing.assert_allclose(one_by_one[name], value, rtol=1e-6, atol=2e-6, err_msg=name)


def test_a_trained_models_lens_is_the_float64_lens(smollm2):
    """SmolLM2's streams carry an outlier dimension near 22,000 and its vocabulary is 49k:
    the shifted-logit arithmetic still leaves only float32 noise."""
    resid, final_logits = model_rows(smollm2, "The capital of France is Paris. The capital of", 4)
    got = lens.logit_lens(smollm2.anatomy, resid, final_logits, TOP_K)
    want = reference(smollm2.anatomy, resid, None)
    np.testing.assert_array_equal(got["lens.top_ids"], want["lens.top_ids"])
    np.testing.assert_array_equal(got["lens.pred_rank"], want["lens.pred_rank"])
    for name in ("lens.top_probs", "lens.pred_prob", "lens.kl"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=2e-5, err_msg=name)
