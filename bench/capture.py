"""What capture costs, measured side by side in one run on SmolLM2-135M.

For prompts of 32, 128 and 512 tokens it times, interleaved round by round so that machine
noise hits every variant alike:

    plain  a forward pass with no hooks
    (a)    per-token summaries of every block (residual, attention output, MLP output)
    (b)    (a) plus per-head summary scores for every head (the attention tap)
    (c)    full residual capture of every layer
    (d)    eager attention with output_attentions=True (the usual way, the peer)
    (e)    (b) with a long prompt's entropy left for later (the app's live run)
    (f)    the forward pass that derives (e)'s entropy (capture/derive_entropy.py)

and prints each as a ratio to plain, with the peak memory each pass needs (measured in a fresh
subprocess per variant, on its first pass after loading: the peak resident set above the
resident set at its start, with the kernel's high-water mark reset just before it) and the
bytes it captured. Then it generates 32 tokens with plain `generate`, with a run capturing
(b), and with a run of the app's live spec (every site, full rows, the lens left for
capture/derive.py), and with `neuroscope-tui capture`'s default spec (every layer's mean
pattern and the lens at every position too), and prints tokens/s and their ratios. With 2048
among --lengths it prints the head scores at 2048 tokens ((b), (e), and (e) + (f)) against
plain and eager.

    python bench/capture.py [--lengths 32,128,512] [--rounds 7] [--new-tokens 32]
    python bench/capture.py --generation-only --rounds 5 --new-tokens 64 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from neuroscope_tui.capture.attention_tap import DEFER_QUERIES, tapped
from neuroscope_tui.capture.derive_entropy import entropy_pass
from neuroscope_tui.capture.recorder import recording
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.models.loader import load_model
from neuroscope_tui.trace import CaptureSpec
from neuroscope_tui.tui.engine import default_spec

TEXT = (
    "The history of the printing press begins in the fifteenth century, when Johannes "
    "Gutenberg combined movable metal type, oil-based ink and a wooden screw press. Books "
    "became cheaper, literacy spread, and ideas travelled faster than ever before. "
)

SPECS = {
    "a": CaptureSpec(sites=("resid", "attn", "mlp"), head_scores=False, lens_positions=()),
    "b": CaptureSpec(sites=("resid", "attn", "mlp"), head_scores=True, lens_positions=()),
    "c": CaptureSpec(sites=("resid",), full_layers=None, head_scores=False, lens_positions=()),
}
LABELS = {
    "plain": "plain forward",
    "a": "(a) block summaries",
    "b": "(b) (a) + head scores",
    "c": "(c) full residual",
    "d": "(d) eager output_attentions",
    "e": "(e) (b), entropy later",
    "f": "(f) (e)'s entropy derived",
}


def prompt_ids(tokenizer, n: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < n:
        ids += tokenizer(TEXT)["input_ids"]
    return ids[:n]


def make_variants(bundle):
    """name -> callable(ids) that runs one forward and returns the captured bytes."""
    model = bundle.model
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")

    def plain(ids: torch.Tensor) -> int:
        model(input_ids=ids)
        return 0

    def captured(key: str, entropy_later: bool = False):
        spec = SPECS[key]

        def go(ids: torch.Tensor) -> int:
            with recording(bundle.anatomy, spec) as rec:
                rec.ids = ids[0]
                rec.defer = ids.shape[1] <= DEFER_QUERIES  # as run() does
                rec.entropy_later = entropy_later  # as the app's run() does
                if spec.head_scores:
                    with tapped(model, bundle.anatomy.attention, rec, lambda: rec.ids):
                        model(input_ids=ids)
                else:
                    model(input_ids=ids)
                rows = rec.flush()
            return sum(a.nbytes for a in rows.values())

        return go

    def derive(ids: torch.Tensor) -> int:  # what completing (e) costs (derive_entropy)
        got = entropy_pass(bundle, ids[0].tolist())
        return sum(a.nbytes for a in got.values())

    def eager_attn(ids: torch.Tensor) -> int:
        out = eager(input_ids=ids, output_attentions=True)
        return sum(a.numel() * a.element_size() for a in out.attentions)

    return {
        "plain": plain,
        "a": captured("a"),
        "b": captured("b"),
        "c": captured("c"),
        "d": eager_attn,
        "e": captured("b", entropy_later=True),
        "f": derive,
    }


def reset_peak() -> None:
    """Reset the kernel's high-water mark of this process's resident set (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mib() -> float:
    """Peak resident set since the last reset_peak(), in MiB (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory_child(variant: str, n: int) -> None:
    """Subprocess mode: extra peak memory of one variant over a plain pass, in MiB."""
    torch.set_grad_enabled(False)
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    variants = make_variants(bundle)
    ids = torch.tensor([prompt_ids(bundle.tokenizer, n)])
    # No warm-up: memory freed by an earlier pass stays resident and would hide this one's
    # peak. Every variant pays the same first-call growth, which the plain row shows.
    reset_peak()
    base = rss_mib()
    variants[variant](ids)
    print(json.dumps({"extra_mib": peak_rss_mib() - base}))


def extra_memory(variant: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", variant, str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_mib"]


def time_forwards(bundle, lengths: list[int], rounds: int) -> dict:
    variants = make_variants(bundle)
    results = {}
    for n in lengths:
        ids = torch.tensor([prompt_ids(bundle.tokenizer, n)])
        times: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        captured: dict[str, int] = {}
        for fn in variants.values():  # warm-up
            fn(ids)
        for _ in range(rounds):
            for key, fn in variants.items():
                t0, c0 = time.perf_counter(), time.process_time()
                captured[key] = fn(ids)
                times[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
        med = {k: statistics.median(v) for k, v in times.items()}
        mcpu = {k: statistics.median(v) for k, v in cpu.items()}
        results[n] = {
            k: {
                "seconds": med[k],
                "ratio": med[k] / med["plain"],
                "cpu_ratio": mcpu[k] / mcpu["plain"],
                "bytes": captured[k],
                "spread": (min(times[k]), max(times[k])),
            }
            for k in variants
        }
    return results


def time_generation(bundle, n_prompt: int, new_tokens: int, rounds: int) -> dict:
    """Tokens/s of plain `generate`, a run capturing (b), and a run of the app's live spec,
    interleaved round by round; ratios of medians by wall and by process CPU time."""
    ids = prompt_ids(bundle.tokenizer, n_prompt)
    prompt = bundle.tokenizer.decode(ids)
    live_spec = default_spec(bundle, n_prompt + new_tokens)  # the app's: lens left for later
    opts = GenerationOptions(max_new_tokens=new_tokens, stop_at_eos=False)
    inputs = torch.tensor([bundle.tokenizer(prompt)["input_ids"]])

    def plain() -> None:
        bundle.model.generate(
            inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )

    # `neuroscope-tui capture`'s default: every site, full rows, every layer's mean pattern,
    # the lens at every position
    n_layers = bundle.anatomy.n_layers
    capture_spec = CaptureSpec(
        full_layers=None, pattern_heads=tuple((layer, -1) for layer in range(n_layers))
    )
    variants = {
        "plain": plain,
        "captured": lambda: run(bundle, prompt, SPECS["b"], opts),
        "live": lambda: run(bundle, prompt, live_spec, opts, lens_later=True),
        "capture": lambda: run(bundle, prompt, capture_spec, opts),
    }
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up
        fn()
    for _ in range(rounds):
        for key, fn in variants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    out: dict = {"spread": {}}
    for key in variants:
        out[f"{key}_tps"] = new_tokens / statistics.median(wall[key])
        out[f"{key}_cpu_tps"] = new_tokens / statistics.median(cpu[key])
        out["spread"][key] = (new_tokens / max(wall[key]), new_tokens / min(wall[key]))
    for key in ("captured", "live", "capture"):
        out[f"{key}_ratio"] = out[f"{key}_tps"] / out["plain_tps"]
        out[f"{key}_cpu_ratio"] = out[f"{key}_cpu_tps"] / out["plain_cpu_tps"]
    return out


def print_generation(gen: dict, new_tokens: int) -> None:
    print(f"\ngeneration, 32-token prompt + {new_tokens} new tokens (CPU tokens/s in brackets)")
    names = {
        "plain": "plain generate",
        "captured": "run with (b) captured",
        "live": "run with the app's live spec, lens left for later",
        "capture": "capture's default spec (the lens during the run)",
    }
    for key, label in names.items():
        lo, hi = gen["spread"][key]
        line = f"  {label:<52} {gen[f'{key}_tps']:6.1f} tokens/s ({gen[f'{key}_cpu_tps']:.1f})"
        line += f"  wall spread {lo:.1f}-{hi:.1f}"
        if key != "plain":
            line += (
                f"\n  {'':<4}ratio {gen[f'{key}_ratio']:.3f}, by CPU time "
                f"{gen[f'{key}_cpu_ratio']:.3f}  (target >= 0.95)"
            )
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="32,128,512")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--generation-only",
        action="store_true",
        help="only the generation part, --rounds interleaved rounds",
    )
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, SmolLM2-135M float32")
    if args.generation_only:
        gen = time_generation(bundle, 32, args.new_tokens, args.rounds)
        print_generation(gen, args.new_tokens)
        return
    lengths = [int(x) for x in args.lengths.split(",")]
    results = time_forwards(bundle, lengths, args.rounds)
    for n in lengths:
        print(f"\n{n} prompt tokens (median of {args.rounds} interleaved rounds)")
        print(
            f"  {'variant':<30} {'wall ms':>8} {'x plain':>8} {'cpu x':>7} "
            f"{'captured':>10} {'peak MiB':>10}  wall spread ms"
        )
        for key, r in results[n].items():
            mem = "" if args.no_memory else f"{extra_memory(key, n):10.1f}"
            print(
                f"  {LABELS[key]:<30} {r['seconds'] * 1000:8.1f} {r['ratio']:8.3f} "
                f"{r['cpu_ratio']:7.3f} {r['bytes'] / 2**20:8.2f}Mi {mem}"
                f"  {r['spread'][0] * 1000:.0f}-{r['spread'][1] * 1000:.0f}"
            )
    gen = time_generation(bundle, 32, args.new_tokens, max(3, args.rounds // 2))
    print_generation(gen, args.new_tokens)
    a512 = results.get(512, {}).get("a", {}).get("ratio", np.nan)
    print(f"\n(a) at 512 tokens: {a512:.3f} x plain (target <= 1.05)")
    if 2048 in results:  # python bench/capture.py --lengths 2048
        r = results[2048]
        b, d, e, f = (r[k]["ratio"] for k in "bdef")
        cb, ce, cf = (r[k]["cpu_ratio"] for k in "bef")
        print(f"head scores at 2048 tokens (target <= 1.10 x plain; eager {d:.3f}):")
        print(f"  (b) every score now            {b:.3f} x plain (CPU {cb:.3f})")
        print(f"  (e) entropy later, at capture  {e:.3f} x plain (CPU {ce:.3f})")
        print(f"  (e) + (f) with the entropy     {e + f:.3f} x plain (CPU {ce + cf:.3f})")


if __name__ == "__main__":
    main()
