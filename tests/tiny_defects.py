"""Tiny random llamas with exactly one planted defect each, and a healthy one.

`defect_bundle(name)` builds `tiny_bundle("llama", num_hidden_layers=LAYERS)` and plants the
defect named in DEFECTS (None for the healthy one) in its weights, in place:

- "mlp_x100": layer 1's MLP output scaled 100x (its down projection's weight);
- "mlp_zeroed": every weight of layer 2's MLP set to zero (its neurons never activate and
  the block's MLP writes nothing);
- "identical_heads": heads 0 and 1 of layer 1 made identical (they share a key/value head,
  so copying the query rows suffices);
- "nan": one weight of layer 2's down projection set to NaN.

`DEFECT_LAYER[name]` is the layer each defect sits in.
"""

from __future__ import annotations

from collections.abc import Callable

from tiny_models import tiny_bundle

LAYERS = 4


def _mlp_x100(anatomy) -> None:
    anatomy.down_proj[1].weight.mul_(100)


def _mlp_zeroed(anatomy) -> None:
    for p in anatomy.mlp[2].parameters():
        p.zero_()


def _identical_heads(anatomy) -> None:
    q = anatomy.attention[1].q_proj
    d = anatomy.d_head
    q.weight[d : 2 * d] = q.weight[:d]


def _nan(anatomy) -> None:
    anatomy.down_proj[2].weight[0, 0] = float("nan")


DEFECTS: dict[str, Callable | None] = {
    "healthy": None,
    "mlp_x100": _mlp_x100,
    "mlp_zeroed": _mlp_zeroed,
    "identical_heads": _identical_heads,
    "nan": _nan,
}
DEFECT_LAYER = {"mlp_x100": 1, "mlp_zeroed": 2, "identical_heads": 1, "nan": 2}


def defect_bundle(name: str, seed: int = 0):
    """A tiny llama (LAYERS layers, float32, cpu) with the defect `name` planted."""
    import torch

    bundle = tiny_bundle("llama", seed=seed, num_hidden_layers=LAYERS)
    plant = DEFECTS[name]
    if plant is not None:
        with torch.no_grad():
            plant(bundle.anatomy)
    return bundle
