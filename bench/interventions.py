"""What interventions cost, on SmolLM2-135M (CPU), interleaved round by round in one process.

Generation (greedy `model.generate`, KV cache, tokens/s after the first token, wall and CPU):

    plain      no hooks
    steer      one steering vector added after block 12 at every step (the Intervener's hooks,
               registered by `recording()`, exactly as a run applies them)
    ablate4    the four heads L18.H6, L17.H3-5 zero-ablated at every step

A model-level pre-hook tells the Intervener where each forward starts (what `run()` does
itself), so the same machinery serves `generate`. Anchor: a steering write at every decode
step costs about 1.05x in a published nnsight / HF benchmark.

Patching sweep (30 layers x 6 positions of the residual stream, target " Berlin" vs " Paris"):

    engine     `patch_sweep`: batched forwards, last-position logits only
    hooks      the same sweep written with plain forward pre-hooks: 180 forwards of the
               corrupted prompt, one cell each, full logits

Both sweeps' logit differences are compared (they must agree to float tolerance).

    python bench/interventions.py [--rounds 3] [--new-tokens 48] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from neuroscope_tui.capture.intervening import EMPTY_SPEC, Intervener, writes_for
from neuroscope_tui.capture.interventions import Ablation, Steering
from neuroscope_tui.capture.patching import patch_sweep
from neuroscope_tui.capture.recorder import recording
from neuroscope_tui.models.loader import load_model

PROMPT = (
    "The history of the printing press begins in the fifteenth century, when Johannes "
    "Gutenberg combined movable metal type, oil-based ink and a wooden screw press."
)
CLEAN = "The capital city of Germany is"
CORRUPT = "The capital city of France is"
HEADS = [(18, 6), (17, 3), (17, 4), (17, 5)]


class _Clock:
    """A generate() streamer that notes when each generated token arrives."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def end(self) -> None:
        pass


def generate_rate(bundle, new_tokens: int, interventions) -> tuple[float, float]:
    """Tokens/s (wall, CPU) of greedy generate with `interventions` applied at every step."""
    ids = bundle.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    clock = _Clock()
    writes = [w for iv in interventions for w in writes_for(iv, bundle.anatomy)]
    intervener = Intervener(writes, n_prompt=ids.shape[1])
    seen = [0]

    def announce(module, args, kwargs):  # what run() does before each forward
        n_new = kwargs["input_ids"].shape[1]
        intervener.begin(seen[0], n_new)
        seen[0] += n_new

    handle = bundle.model.register_forward_pre_hook(announce, with_kwargs=True)
    try:
        with torch.no_grad(), recording(bundle.anatomy, EMPTY_SPEC, intervener):
            bundle.model.generate(
                ids,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                streamer=clock,
                pad_token_id=bundle.tokenizer.eos_token_id,
            )
    finally:
        handle.remove()
    t, c = clock.times, clock.cpu
    return (len(t) - 1) / (t[-1] - t[0]), (len(c) - 1) / (c[-1] - c[0])


@torch.no_grad()
def hooks_sweep(bundle, target: int, foil: int) -> np.ndarray:
    """The resid sweep with plain forward pre-hooks: one forward per cell."""
    tok = bundle.tokenizer
    clean = torch.tensor([tok(CLEAN)["input_ids"]])
    corrupt = torch.tensor([tok(CORRUPT)["input_ids"]])
    hidden = bundle.model(input_ids=clean, use_cache=False, output_hidden_states=True)
    hidden = hidden.hidden_states  # [layer] -> [1, T, D], the input of block `layer`
    n_layers, n_pos = bundle.anatomy.n_layers, corrupt.shape[1]
    out = np.zeros((n_layers, n_pos), np.float32)
    for layer in range(n_layers):
        for pos in range(n_pos):

            def patch(module, args, kwargs, layer=layer, pos=pos):
                x = (args[0] if args else kwargs["hidden_states"]).clone()
                x[0, pos] = hidden[layer][0, pos]
                if args:
                    return (x, *args[1:]), kwargs
                return args, {**kwargs, "hidden_states": x}

            block = bundle.anatomy.blocks[layer]
            handle = block.register_forward_pre_hook(patch, with_kwargs=True)
            try:
                logits = bundle.model(input_ids=corrupt, use_cache=False).logits[0, -1]
            finally:
                handle.remove()
            out[layer, pos] = float(logits[target] - logits[foil])
    return out


def timed(fn, *args, **kwargs):
    w, c = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 on a loaded machine)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    d_model = bundle.anatomy.d_model
    direction = torch.randn(d_model, generator=torch.Generator().manual_seed(0))
    variants = {
        "plain": [],
        "steer": [Steering(12, 4.0, tuple((direction / direction.norm()).tolist()), "random")],
        "ablate4": [Ablation("head", layer, head) for layer, head in HEADS],
    }
    n_tok = len(bundle.tokenizer(CLEAN)["input_ids"])
    assert n_tok == len(bundle.tokenizer(CORRUPT)["input_ids"]) == 6, n_tok
    generate_rate(bundle, 4, [])  # warm up
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    sweeps: dict[str, list[tuple[float, float]]] = {"engine": [], "hooks": []}
    for r in range(args.rounds):
        for name, ivs in variants.items():
            rates[name].append(generate_rate(bundle, args.new_tokens, ivs))
        sweep, wall, cpu = timed(
            patch_sweep, bundle, CLEAN, CORRUPT, target=" Berlin", foil=" Paris"
        )
        sweeps["engine"].append((wall, cpu))
        by_hand, wall, cpu = timed(hooks_sweep, bundle, sweep.target_id, sweep.foil_id)
        sweeps["hooks"].append((wall, cpu))
        gap = float(np.abs(by_hand - sweep.logit_diff).max())
        print(f"round {r + 1}: sweeps agree to {gap:.2e} (max |logit diff| difference)")
    print(f"load average {os.getloadavg()}; torch threads {torch.get_num_threads()}")
    base_w = statistics.median(w for w, _ in rates["plain"])
    base_c = statistics.median(c for _, c in rates["plain"])
    for name, got in rates.items():
        w = statistics.median(x for x, _ in got)
        c = statistics.median(x for _, x in got)
        print(
            f"generate {name:<8} {w:6.1f} tok/s wall ({min(x for x, _ in got):.1f}-"
            f"{max(x for x, _ in got):.1f}), {c:6.1f} tok/CPU-s; cost vs plain "
            f"{base_w / w:.3f}x wall, {base_c / c:.3f}x CPU"
        )
    e_w = statistics.median(w for w, _ in sweeps["engine"])
    e_c = statistics.median(c for _, c in sweeps["engine"])
    h_w = statistics.median(w for w, _ in sweeps["hooks"])
    h_c = statistics.median(c for _, c in sweeps["hooks"])
    print(
        f"resid sweep 30x6: engine {e_w:.2f} s wall / {e_c:.2f} CPU-s, plain hooks "
        f"{h_w:.2f} s / {h_c:.2f} CPU-s: engine {h_w / e_w:.2f}x faster (wall), "
        f"{h_c / e_c:.2f}x (CPU)"
    )


if __name__ == "__main__":
    main()
