"""A deterministic synthetic DriftResult for the drift view's tests (numpy only, no model).

A base and 3 checkpoints (trainer steps 100, 200, 300) of the 6-layer synthetic model of
_fixtures_app: nothing moves before layer PLANTED_LAYER; from there on the residual stream
drifts more with each checkpoint (CKA falls), block PLANTED_LAYER's weights change, neuron
PLANTED_NEURON's mean activation moves most at every layer from PLANTED_LAYER on, and head
PLANTED_HEAD of layer PLANTED_LAYER gains induction score (and the type letter "I").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from _fixtures_app import D_MLP, N_HEADS, N_LAYERS, synthetic_trace
from neuroscope_tui.analysis.drift_record import HEAD_SCORE_NAMES, Checkpoint, DriftResult

PLANTED_LAYER, PLANTED_NEURON, PLANTED_HEAD = 2, 7, 1
STEPS = (100, 200, 300)
N_PROMPTS = 4
MODULES = [f"model.layers.{i}.mlp.up_proj.weight" for i in range(N_LAYERS)] + ["lm_head.weight"]


def synthetic_drift(*, skip_weights: bool = False) -> DriftResult:
    """The result described in the module docstring; `skip_weights`: as for snapshot inputs,
    the weight measures are absent and named in `skipped`."""
    rng = np.random.default_rng(7)
    n_c, n_m, n_l = len(STEPS), len(STEPS) + 1, N_LAYERS
    moved = (np.arange(n_l) >= PLANTED_LAYER).astype(np.float64)  # [L]
    depth = np.maximum(0, np.arange(n_l) - PLANTED_LAYER + 1)  # 0 before, 1, 2, ... from it
    amount = np.arange(1, n_m, dtype=np.float64)[:, None]  # [C, 1] grows with the steps
    arrays: dict[str, np.ndarray] = {}
    arrays["cka.base"] = 1.0 - 0.04 * amount * depth
    arrays["cka.prev"] = 1.0 - 0.04 * depth * np.ones_like(amount)
    arrays["cos.base"] = 1.0 - 0.02 * amount * depth
    arrays["cos.prev"] = 1.0 - 0.02 * depth * np.ones_like(amount)
    block = (np.arange(n_l) == PLANTED_LAYER).astype(np.float64)
    arrays["weights.base"] = 0.01 * amount * block
    arrays["weights.prev"] = 0.01 * np.ones_like(amount) * block
    mod = np.array([m.startswith(f"model.layers.{PLANTED_LAYER}.") for m in MODULES], float)
    arrays["weights.module.base"] = 0.01 * amount * mod
    arrays["weights.module.prev"] = 0.01 * np.ones_like(amount) * mod
    base_heads = rng.random((n_l, N_HEADS))
    for name in HEAD_SCORE_NAMES:
        scores = np.repeat(rng.random((1, n_l, N_HEADS)), n_m, axis=0)
        if name == "induction":
            scores[:] = base_heads * 0.1
            scores[:, PLANTED_LAYER, PLANTED_HEAD] += 0.2 * np.arange(n_m)
        arrays[f"heads.{name}"] = scores
    means = np.repeat(rng.normal(size=(1, n_l, D_MLP)), n_m, axis=0)
    for m in range(1, n_m):
        means[m] += 0.01 * m * moved[:, None] * rng.normal(size=(n_l, D_MLP))
        means[m, :, PLANTED_NEURON] += 0.5 * m * moved
    arrays["neurons.mean"] = means
    arrays["kl.base"] = 0.05 * amount * np.linspace(1, 2, N_PROMPTS)
    arrays["kl.prev"] = 0.05 * np.ones_like(amount) * np.linspace(1, 2, N_PROMPTS)
    arrays["lens.agree.base"] = np.clip(1.0 - 0.2 * amount * depth, 0, 1)
    agree = arrays["lens.agree.base"]
    arrays["lens.split.base"] = np.array(
        [next((i for i in range(n_l) if (agree[c, i:] < 0.5).all()), -1) for c in range(n_c)],
        np.int32,
    )
    skipped = {}
    if skip_weights:
        for name in [n for n in arrays if n.startswith("weights.")]:
            del arrays[name]
        skipped["weights"] = "a snapshot input has no weights to compare"
    arrays = {
        k: v.astype(np.int32 if v.dtype == np.int32 else np.float32) for k, v in arrays.items()
    }
    head_types = [{f"{PLANTED_LAYER}.{PLANTED_HEAD}": "P"} for _ in range(n_m)]
    for m in range(2, n_m):
        head_types[m][f"{PLANTED_LAYER}.{PLANTED_HEAD}"] = "PI"
    traces = []
    for m in range(n_m):
        trace = synthetic_trace(seed=m)
        name = "base" if m == 0 else f"run/checkpoint-{STEPS[m - 1]}"
        traces.append(dataclasses.replace(trace, model=dataclasses.replace(trace.model, name=name)))
    return DriftResult(
        base=Checkpoint("./base", "base"),
        checkpoints=[Checkpoint(f"./run/checkpoint-{s}", f"checkpoint-{s}", step=s) for s in STEPS],
        prompts=[f"prompt {p}" for p in range(N_PROMPTS)],
        n_layers=n_l,
        n_heads=N_HEADS,
        d_mlp=D_MLP,
        arrays=arrays,
        modules=list(MODULES),
        head_types=head_types,
        traces=traces,
        skipped=skipped,
    )
