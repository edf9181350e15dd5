"""What the attention tap costs for summary scores of every head, beside eager output_attentions.

On SmolLM2-135M (float32, CPU) at 512 and 2048 tokens it times, interleaved round by round so
machine noise hits every variant alike:

    plain   a forward pass (sdpa), nothing recorded
    tap     the same pass with the attention tap recording the six per-query scores of every
            head (`capture.probes.trace_ids`, what `neuroscope-tui heads` runs), copied to numpy
    eager   eager attention with output_attentions=True (the usual way, the peer), forward only
    eager+  eager, plus the same six scores computed from its probabilities

and prints each as a ratio to plain: CPU seconds of this process (what the pass costs, stable
when other work shares the cores) and wall seconds. torch runs on `--threads` threads
(default 1: on a shared, busy 2-core machine, two threads spin-wait for each other and a pass
costs 4x the CPU time). Peak memory is measured in a fresh subprocess per
variant: the peak resident set during the pass minus the resident set just before it (the
kernel's high-water mark is reset through /proc/self/clear_refs first), also as a ratio to
plain's. The tap's scores are checked against eager's in the same run (max abs difference).

    python bench/attention.py [--lengths 512,2048] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from neuroscope_tui.capture.attention_scores import head_stats
from neuroscope_tui.capture.probes import trace_ids
from neuroscope_tui.models.loader import load_model
from neuroscope_tui.trace import HEAD_SCORES

TEXT = (
    "The history of the printing press begins in the fifteenth century, when Johannes "
    "Gutenberg combined movable metal type, oil-based ink and a wooden screw press. Books "
    "became cheaper, literacy spread, and ideas travelled faster than ever before. "
)
LABELS = {
    "plain": "plain forward (sdpa)",
    "tap": "tap: scores of every head",
    "eager": "eager output_attentions",
    "eager+": "eager + the same scores",
}


def prompt_ids(tokenizer, n: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < n:
        ids += tokenizer(TEXT)["input_ids"]
    return ids[:n]


def make_variants(bundle) -> dict[str, Callable[[list[int]], dict | None]]:
    """name -> callable(ids) running one pass; score variants return name -> [L, T, H]."""
    model = bundle.model
    eager = copy.deepcopy(model)  # its own instance: output_attentions leaves hooks behind
    eager.set_attn_implementation("eager")

    def plain(ids: list[int]) -> None:
        model(input_ids=torch.tensor([ids]), use_cache=False)

    def tap(ids: list[int]) -> dict:
        trace = trace_ids(bundle, ids)
        return {name: trace.arrays[f"heads.{name}"] for name in HEAD_SCORES}

    def eager_only(ids: list[int]) -> None:
        eager(input_ids=torch.tensor([ids]), use_cache=False, output_attentions=True)

    def eager_scores(ids: list[int]) -> dict:
        t = torch.tensor(ids)
        out = eager(input_ids=t.view(1, -1), use_cache=False, output_attentions=True)
        q_pos = torch.arange(len(ids))
        per_layer = [head_stats(a[0], q_pos, t) for a in out.attentions]  # name -> [T, H]
        return {name: torch.stack([s[name] for s in per_layer]).numpy() for name in HEAD_SCORES}

    return {"plain": plain, "tap": tap, "eager": eager_only, "eager+": eager_scores}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(variant: str, n: int) -> None:
    """Subprocess mode: the peak extra resident memory of one pass of `variant`, in MiB."""
    torch.set_grad_enabled(False)
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    variants = make_variants(bundle)
    ids = prompt_ids(bundle.tokenizer, n)
    variants[variant](prompt_ids(bundle.tokenizer, 16))  # first-call set-up, not the pass
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark VmHWM to the current resident set
    before = _status_kib("VmRSS")
    variants[variant](ids)
    print(json.dumps({"extra_mib": (_status_kib("VmHWM") - before) / 1024}))


def peak_extra_mib(variant: str, n: int, threads: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", variant, str(n), "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_mib"]


def time_variants(bundle, n: int, rounds: int) -> tuple[dict[str, float], float]:
    """Median seconds per variant at n tokens, and the tap's max abs difference to eager."""
    variants = make_variants(bundle)
    ids = prompt_ids(bundle.tokenizer, n)
    got = {key: fn(ids) for key, fn in variants.items()}  # warm-up, and the numbers to compare
    diff = max(float(np.abs(got["tap"][k] - got["eager+"][k]).max()) for k in HEAD_SCORES)
    del got
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for key, fn in variants.items():
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            fn(ids)
            cpu[key].append(time.process_time() - c0)
            wall[key].append(time.perf_counter() - t0)
    med = statistics.median
    return {k: med(v) for k, v in cpu.items()}, {k: med(v) for k, v in wall.items()}, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="512,2048")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    torch.set_grad_enabled(False)
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, SmolLM2-135M float32")
    for n in [int(x) for x in args.lengths.split(",")]:
        cpu, wall, diff = time_variants(bundle, n, args.rounds)
        mem = {} if args.no_memory else {k: peak_extra_mib(k, n, args.threads) for k in LABELS}
        print(f"\n{n} tokens (median of {args.rounds} interleaved rounds)")
        print(
            f"  {'variant':<28} {'cpu s':>7} {'x plain':>8} {'wall s':>7} {'x plain':>8}"
            f" {'peak MiB':>9} {'x plain':>8}"
        )
        for key, label in LABELS.items():
            m = mem.get(key, float("nan"))
            m_ratio = m / mem["plain"] if mem else float("nan")
            print(
                f"  {label:<28} {cpu[key]:7.2f} {cpu[key] / cpu['plain']:8.3f}"
                f" {wall[key]:7.2f} {wall[key] / wall['plain']:8.3f} {m:9.0f} {m_ratio:8.2f}"
            )
        print(f"  tap vs eager scores: max abs difference {diff:.2e}")


if __name__ == "__main__":
    main()
