"""The logit lens on the real SmolLM2-135M, against a direct readout of output_hidden_states."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from _fixtures_connect import make_host
from neuroscope_tui.analysis.connect_tables import lens_table
from neuroscope_tui.analysis.lens import lens_grid, token_text
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.trace import CaptureSpec
from neuroscope_tui.tui.views.lens import LensView

pytestmark = pytest.mark.smollm2

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def paris(smollm2):
    """The run, and every layer's logits at every position read directly from a model copy."""
    trace = run(smollm2, PROMPT, CaptureSpec(full_layers=()), GenerationOptions(max_new_tokens=1))
    model = copy.deepcopy(smollm2.model)  # output_hidden_states leaves hooks: use a copy
    with torch.no_grad():
        out = model(input_ids=torch.tensor([trace.token_ids]), output_hidden_states=True)
        hs = out.hidden_states  # [embeddings, after block 0, ..., final-normed last block]
        n_layers = len(hs) - 1
        # blocks before the last still need the final norm; hs[-1] already has it
        layer_logits = [model.lm_head(model.model.norm(hs[i + 1]))[0] for i in range(n_layers - 1)]
        layer_logits.append(model.lm_head(hs[-1])[0])
    logits = torch.stack(layer_logits).float()  # [L, T, vocab]
    paris_id = smollm2.tokenizer.encode(" Paris", add_special_tokens=False)
    assert len(paris_id) == 1
    return trace, logits, out.logits[0].float(), paris_id[0]


def test_last_layer_lens_is_the_models_own_prediction(paris):
    trace, _, final_logits, _ = paris
    g = lens_grid(trace)
    np.testing.assert_array_equal(g.top1_ids[-1], final_logits.argmax(-1).numpy())
    np.testing.assert_array_equal(g.pred_rank[-1], 0)
    np.testing.assert_allclose(g.kl[-1], 0, atol=1e-4)


def test_rank_of_paris_per_layer_and_first_top1_layer(paris):
    trace, logits, _, paris_id = paris
    t = trace.n_prompt - 1  # the position after "is"
    assert trace.token_ids[trace.n_prompt] == paris_id  # greedy decoding says " Paris"
    direct_rank = (logits[:, t] > logits[:, t, paris_id : paris_id + 1]).sum(-1).numpy()
    g = lens_grid(trace)
    assert g.final_pred[t] == paris_id
    np.testing.assert_array_equal(g.pred_rank[:, t], direct_rank)
    direct_first = int(np.argmax(direct_rank == 0))
    assert g.first_pred_top1[t] == direct_first
    assert g.first_actual_top1[t] == direct_first  # the actual next token is " Paris" too
    # the shape the issue describes: far down in the middle, top 10 only in the last layers
    n = len(direct_rank)
    assert direct_rank[n // 2] > 100
    assert direct_rank[-1] == 0 and direct_first >= n - 6
    # the export reports the same figures
    table = lens_table(trace)
    col = {c: i for i, c in enumerate(table.columns)}
    rows = [r for r in table.rows if r[col["token_index"]] == t]
    assert [r[col["pred_rank"]] for r in rows] == direct_rank.tolist()
    assert {r[col["first_pred_top1_layer"]] for r in rows} == {direct_first}
    assert token_text(trace, paris_id) == " Paris"


@pytest.mark.anyio
async def test_lens_view_reports_the_rank_of_paris_at_every_layer(paris):
    trace, logits, _, paris_id = paris
    t = trace.n_prompt - 1
    direct_rank = (logits[:, t] > logits[:, t, paris_id : paris_id + 1]).sum(-1).numpy()
    first = int(np.argmax(direct_rank == 0))
    app = make_host(LensView, trace)
    async with app.run_test(size=(140, 45)) as pilot:
        view = app.query_one("#view")
        await pilot.press(*["right"] * t)
        for layer in range(len(direct_rank)):
            view.select(layer=layer, token=t)
            await pilot.pause()
            side = str(view.query_one(".grid-side").render())
            assert "final prediction ' Paris'" in side
            assert f"rank here {direct_rank[layer]}," in side
            assert f"top-1 from layer {first}" in side
        assert view.heatmap.cell_text[first][t] == "★·Paris"
