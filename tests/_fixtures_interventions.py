"""Synthetic interventions for the app's tests: a side by side and a patching sweep on the
synthetic trace of `_fixtures_app`, shaped like the engine's (interv-contract.md), from fixed
numbers so SVG snapshots see the same screen every time."""

from __future__ import annotations

import math

import numpy as np

from _fixtures_app import N_LAYERS, N_PROMPT, TOKENS, synthetic_trace
from neuroscope_tui.analysis.intervention_store import store_side_by_side, store_sweep
from neuroscope_tui.analysis.patching import PatchSweep
from neuroscope_tui.capture.interventions import Ablation, Steering, intervention_to_dict
from neuroscope_tui.trace import Trace

INTERVENTIONS = [
    Ablation("head", 4, 2, mode="mean"),
    Ablation("neuron", 3, 17),
    Steering(2, 4.0, tuple([0.25] * 16), label="refusal.safetensors:dir"),
]


def fake_sweep() -> PatchSweep:
    """France (the run's prompt) patched into Germany: the country token recovers up to layer 3,
    the last position from layer 4 on."""
    tokens = TOKENS[:N_PROMPT]
    grid = np.zeros((N_LAYERS, len(tokens)), np.float32)
    grid[:4, 3] = [1.0, 0.98, 0.95, 0.9]
    grid[4:, 5] = [0.85, 1.0]
    grid[2, 4] = 0.3
    grid[5, 0] = math.nan  # not computed
    # the clean prompt is the synthetic run's own, so the sweep is kept on that run
    return PatchSweep(
        "resid", tokens, [f"L{i}" for i in range(N_LAYERS)], grid, 6.5, -2.0, " Paris",
        " Berlin", "".join(TOKENS[:N_PROMPT]), "The capital of Germany is\n", target_id=7,
        foil_id=3,
    )  # fmt: skip


def clean_and_intervened() -> tuple[Trace, Trace]:
    """The synthetic run, and a copy whose generated tokens changed under INTERVENTIONS."""
    clean, mine = synthetic_trace(), synthetic_trace()
    mine.token_text = [*TOKENS[:N_PROMPT], " Berlin", ".", " It", " was", " old"]
    mine.interventions = [intervention_to_dict(iv) for iv in INTERVENTIONS]
    diff = np.array([0.0, 0.1, -0.2, 0.4, -0.3, -5.2, -1.5, 0.2, -2.4, -0.8, 0.0], np.float32)
    store_side_by_side(mine, clean, diff)
    return clean, mine


def intervened_trace_with_sweep() -> Trace:
    _, mine = clean_and_intervened()
    store_sweep(mine, fake_sweep())
    return mine
