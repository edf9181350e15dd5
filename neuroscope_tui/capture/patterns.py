"""Full attention patterns on demand: one forward pass keeping the rows of the heads asked.

The heads view, the flow view and `complete_for_save` ask for patterns a run did not keep;
the attention tap copies only those heads' rows (head -1: the mean over a layer's heads). A
model the tap cannot serve falls back to eager `output_attentions`.
"""

from __future__ import annotations

import numpy as np
import torch

from neuroscope_tui.capture.attention_tap import tapped
from neuroscope_tui.models.types import LoadedModel


class PatternSink:
    """Collects full rows of asked heads, for `compute_patterns`."""

    def __init__(self, heads: list[tuple[int, int]]):
        self.by_layer: dict[int, list[int]] = {}
        for layer, head in heads:
            self.by_layer.setdefault(layer, []).append(head)
        self.rows: dict[tuple[int, int], np.ndarray] = {}

    def wants_patterns(self, layer: int) -> list[int]:
        return self.by_layer.get(layer, [])

    def attention(self, layer: int, stats, rows) -> None:
        for head, val in rows.items():
            self.rows[(layer, head)] = val.float().cpu().numpy()


@torch.no_grad()
def compute_patterns(
    bundle: LoadedModel, token_ids: list[int], heads: list[tuple[int, int]]
) -> dict[tuple[int, int], np.ndarray]:
    """Full attention patterns [T, T] for the given (layer, head) pairs, by one forward pass.

    A head of -1 means the mean over that layer's heads. Used for patterns on demand.
    """
    sink = PatternSink(heads)
    inputs = torch.tensor([token_ids], device=torch.device(bundle.device))
    with tapped(bundle.model, bundle.anatomy.attention, sink, lambda: None) as ok:
        if ok:
            bundle.model(input_ids=inputs, use_cache=False)
            return sink.rows
    out = bundle.model(input_ids=inputs, use_cache=False, output_attentions=True)
    result = {}
    for layer, head in heads:
        att = out.attentions[layer][0].float()
        result[(layer, head)] = (att.mean(0) if head < 0 else att[head]).cpu().numpy()
    return result
