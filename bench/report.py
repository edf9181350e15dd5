"""Time `neuroscope-tui report` on SmolLM2 over the default prompt set, stage by stage.

`python bench/report.py [--model smollm2] [--threads N] [--rounds R] [--device cpu]`

Stages (wall and process-CPU seconds, the CPU column is the one to trust on a shared machine):
- capture: one forward pass per prompt under DIAGNOSTIC_SPEC (`diagnostic_inputs` with
  neurons=False, gradients=False);
- neuron health: what neurons=True adds (the same call with it, minus the capture);
- gradients: what gradients=True adds (one backward per prompt), minus the two above;
- each detector (`run_detectors`' own timings over the full inputs);
- writing the HTML and the Markdown report.
The three capture calls run in turn in every round (interleaved), and the table shows the
median over rounds. The issue asks that the report say what the backward pass costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall seconds, process CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every stage (median shown)")
    args = parser.parse_args()
    import torch

    from neuroscope_tui.analysis.diagnostics.runner import run_detectors
    from neuroscope_tui.capture.diagnostics import diagnostic_inputs
    from neuroscope_tui.models.loader import load_model
    from neuroscope_tui.prompt_sets import default_prompts
    from neuroscope_tui.report import render

    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_model(args.model, device=args.device, dtype="float32")
    prompts = default_prompts()
    variants = {
        "capture": {"neurons": False, "gradients": False},
        "capture+neurons": {"neurons": True, "gradients": False},
        "capture+neurons+gradients": {"neurons": True, "gradients": True},
    }
    walls: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    inputs = None
    for _ in range(args.rounds):
        for name, options in variants.items():  # interleaved: load changes hit all alike
            inputs, w, c = timed(lambda o=options: diagnostic_inputs(bundle, prompts, **o))
            walls[name].append(w)
            cpus[name].append(c)
    wall = {k: statistics.median(v) for k, v in walls.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    report, dw, dc = timed(lambda: run_detectors(inputs, source=args.model))
    tokens = [list(t.token_text) for t in inputs.traces]
    _, hw, hc = timed(lambda: render(report, ".html", prompts=prompts, tokens=tokens))
    _, mw, mc = timed(lambda: render(report, ".md", prompts=prompts, tokens=tokens))

    n_tokens = sum(t.n_tokens for t in inputs.traces)
    print(
        f"{args.model} on {args.device}, {len(prompts)} prompts, {n_tokens} tokens, "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, "
        f"median of {args.rounds} round(s)"
    )
    rows = [
        ("capture (forward passes)", wall["capture"], cpu["capture"]),
        (
            "neuron health (added)",
            wall["capture+neurons"] - wall["capture"],
            cpu["capture+neurons"] - cpu["capture"],
        ),
        (
            "gradients (added)",
            wall["capture+neurons+gradients"] - wall["capture+neurons"],
            cpu["capture+neurons+gradients"] - cpu["capture+neurons"],
        ),
        ("all detectors", dw, dc),
        *((f"  {k}", v, float("nan")) for k, v in report.timings.items()),
        ("write HTML", hw, hc),
        ("write Markdown", mw, mc),
    ]
    print(f"{'stage':<32}{'wall s':>9}{'cpu s':>9}")
    for name, w, c in rows:
        print(f"{name:<32}{w:9.3f}{c:9.3f}")
    total_w = wall["capture+neurons+gradients"] + dw + hw
    total_c = cpu["capture+neurons+gradients"] + dc + hc
    print(f"{'report -o report.html (total)':<32}{total_w:9.3f}{total_c:9.3f}")
    print(f"findings: {report.counts()}, skipped: {[s.detector for s in report.skipped]}")


if __name__ == "__main__":
    main()
