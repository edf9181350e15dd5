"""The lens grid read from hand-made lens arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.analysis.lens import first_layer, lens_grid, token_text
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace


def lens_trace() -> Trace:
    """3 layers, 4 tokens (ids 10 11 12 13), top-2 per cell."""
    top_ids = np.array(
        [
            [[5, 6], [5, 12], [7, 1], [9, 2]],
            [[11, 6], [12, 5], [7, 1], [9, 2]],
            [[11, 6], [12, 5], [14, 13], [-1, -1]],
        ],
        dtype=np.int32,
    )
    top_probs = np.linspace(0.9, 0.1, 24).reshape(3, 4, 2).astype(np.float32)
    pred_rank = np.array([[3, 1, 2, 0], [0, 0, 1, 0], [0, 0, 0, -1]], dtype=np.int32)
    kl = np.array([[2.0, 1.0, 3.0, 1.0], [0.5, 0.2, 1.0, 1.0], [0, 0, 0, np.nan]])
    trace = Trace(model=ModelInfo(name="toy", n_layers=3), spec=CaptureSpec())
    trace.append(
        [10, 11, 12, 13],
        ["a", "b", "c", "d"],
        {
            "lens.top_ids": top_ids,
            "lens.top_probs": top_probs,
            "lens.kl": kl.astype(np.float32),
            "lens.pred_rank": pred_rank,
            "lens.pred_prob": np.full((3, 4), 0.5, dtype=np.float32),
        },
    )
    trace.notes["id_text"] = {"14": " Paris"}
    return trace


def test_top1_actual_next_and_first_layers():
    g = lens_grid(lens_trace())
    assert g.top1_ids[1].tolist() == [11, 12, 7, 9]
    assert g.top1_probs[0, 0] == pytest.approx(0.9)
    assert g.actual_next.tolist() == [11, 12, 13, -1]
    # token 0's next is 11: top-1 from layer 1 on; token 1's next is 12: from layer 1
    assert g.hits[:, 0].tolist() == [False, True, True]
    assert g.hits[:, 2].tolist() == [False, False, False]
    assert g.first_actual_top1.tolist() == [1, 1, -1, -1]
    assert g.first_pred_top1.tolist() == [1, 1, 2, 0]
    assert g.final_pred.tolist() == [11, 12, 14, -1]
    assert np.allclose(g.kl_per_layer(), [1.75, 0.675, 0.0])


def test_first_layer_uses_model_layer_numbers():
    mask = np.array([[False, True], [True, True], [False, False]])
    assert first_layer(mask, [4, 7, 9]).tolist() == [7, 4]
    assert first_layer(np.zeros((2, 3), bool), [0, 1]).tolist() == [-1, -1, -1]


def test_token_text_sources():
    trace = lens_trace()
    assert token_text(trace, 14) == " Paris"
    assert token_text(trace, 12) == "c"
    assert token_text(trace, 99) == "#99"
    assert token_text(trace, -1) == ""


def test_no_lens_says_how_to_get_it():
    with pytest.raises(SnapshotError, match="--no-lens"):
        lens_grid(Trace(model=ModelInfo(name="toy", n_layers=2)))
