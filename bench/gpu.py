"""Capture on one CUDA device, with no download: random models of Llama-3-8B's and
SmolLM2-135M's shapes, built from their configs on the device.

For prompts of 512, 2048 and 8192 tokens it measures, per shape:

    plain      a forward pass over the prompt, nothing recorded (logits of the last position)
    summaries  the same pass recording per-token summaries of every block
    heads      summaries plus the six per-head scores of every head (the attention tap)

and then generation after a 512-token prompt: tokens/s of a plain KV-cached loop and of
`run()` capturing (summaries + head scores), and the peak GPU memory of each capture
(`torch.cuda.max_memory_allocated`) against the estimate of capture/memory.py.

    python bench/gpu.py                            # cuda:0, bfloat16, both shapes
    python bench/gpu.py --device cpu --tiny        # a tiny shape on the CPU (what the test runs)

It needs only torch, transformers, safetensors and numpy: nothing here imports textual.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from neuroscope_tui.capture.memory import estimate, human, weight_bytes
from neuroscope_tui.capture.run import GenerationOptions, model_info, run
from neuroscope_tui.trace import CaptureSpec
from random_models import prompt_of, random_bundle

SPECS = {
    "summaries": CaptureSpec(full_layers=(), head_scores=False, lens_positions=()),
    "heads": CaptureSpec(full_layers=(), head_scores=True, lens_positions=()),
}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak(device: str) -> int | None:
    return int(torch.cuda.max_memory_allocated()) if device.startswith("cuda") else None


@torch.no_grad()
def plain_forward(bundle, ids: list[int]) -> float:
    """Seconds of one forward pass over ids, no capture (only the last position's logits)."""
    inputs = torch.tensor([ids], device=bundle.device)
    sync(bundle.device)
    start = time.perf_counter()
    bundle.model(input_ids=inputs, use_cache=False, logits_to_keep=1)
    sync(bundle.device)
    return time.perf_counter() - start


def capture_pass(bundle, prompt: str, spec: CaptureSpec) -> tuple[float, int | None]:
    """Seconds and peak memory of `run()` over the prompt, no generated token."""
    reset_peak(bundle.device)
    sync(bundle.device)
    start = time.perf_counter()
    run(bundle, prompt, spec, GenerationOptions(max_new_tokens=0))
    sync(bundle.device)
    return time.perf_counter() - start, peak(bundle.device)


@torch.no_grad()
def plain_generate(bundle, ids: list[int], new: int) -> float:
    """Tokens/s of a greedy KV-cached loop with no capture (the model's own speed)."""
    inputs = torch.tensor([ids], device=bundle.device)
    out = bundle.model(input_ids=inputs, use_cache=True, logits_to_keep=1)
    past, token = out.past_key_values, out.logits[0, -1].argmax()
    sync(bundle.device)
    start = time.perf_counter()
    for _ in range(new):
        out = bundle.model(input_ids=token.view(1, 1), past_key_values=past, use_cache=True)
        past, token = out.past_key_values, out.logits[0, -1].argmax()
    sync(bundle.device)
    return new / (time.perf_counter() - start)


def captured_generate(bundle, prompt: str, new: int) -> tuple[float, int | None]:
    """Tokens/s of `run()` generating with summaries + head scores, timed from the first
    generated token (as plain_generate), and the run's peak memory."""
    stamps: list[float] = []

    def on_step(trace, start, stop) -> None:
        sync(bundle.device)
        stamps.append(time.perf_counter())

    reset_peak(bundle.device)
    options = GenerationOptions(max_new_tokens=new, stop_at_eos=False)
    run(bundle, prompt, SPECS["heads"], options, on_step=on_step)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), peak(bundle.device)


def bench_shape(shape: str, args: argparse.Namespace) -> list[list[str]]:
    bundle = random_bundle(shape, dtype=args.dtype, device=args.device)
    info = model_info(bundle)
    weights = weight_bytes(bundle.model)
    rows = []
    for n in args.lengths:
        prompt = prompt_of(n, info.vocab_size)
        ids = bundle.tokenizer(prompt)["input_ids"]
        capture_pass(bundle, " ".join(prompt.split()[:16]), SPECS["heads"])  # warm up
        times: dict[str, list[float]] = {"plain": [], "summaries": [], "heads": []}
        peaks: dict[str, int | None] = {}
        for _ in range(args.rounds):  # interleaved, so drift hits every variant alike
            times["plain"].append(plain_forward(bundle, ids))
            for name, spec in SPECS.items():
                seconds, top = capture_pass(bundle, prompt, spec)
                times[name].append(seconds)
                peaks[name] = top
        base = statistics.median(times["plain"])
        for name in ("plain", "summaries", "heads"):
            t = statistics.median(times[name])
            est = estimate(info, SPECS.get(name, SPECS["summaries"]), n, 0, weights=weights)
            measured = peaks.get(name)
            rows.append([
                shape, str(n), name, f"{t * 1000:.1f}", f"{t / base:.3f}",
                "-" if name == "plain" else human(est.device_bytes),
                "-" if measured is None else human(measured),
                "-" if measured is None or name == "plain"
                else f"{est.device_bytes / measured:.2f}",
            ])  # fmt: skip
    n = min(512, max(args.lengths))
    prompt = prompt_of(n, info.vocab_size, seed=1)
    ids = bundle.tokenizer(prompt)["input_ids"]
    plain = plain_generate(bundle, ids, args.new_tokens)
    captured, top = captured_generate(bundle, prompt, args.new_tokens)
    est = estimate(info, SPECS["heads"], n, args.new_tokens, weights=weights)
    rows.append([
        shape, f"{n}+{args.new_tokens}", "generate tok/s plain / captured",
        f"{plain:.1f} / {captured:.1f}", f"{captured / plain:.3f}", human(est.device_bytes),
        "-" if top is None else human(top),
        "-" if top is None else f"{est.device_bytes / top:.2f}",
    ])  # fmt: skip
    del bundle
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, help="default bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--tiny", action="store_true", help="a tiny shape (CPU test)")
    parser.add_argument("--shapes", default=None, help="comma-separated: llama3-8b,smollm2")
    parser.add_argument("--lengths", default=None, help="default 512,2048,8192 (tiny: 32,64)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=None, help="default 64 (tiny: 8)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench/gpu.py: no CUDA device here; run with --device cpu --tiny")
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    shapes = (args.shapes or ("tiny" if args.tiny else "llama3-8b,smollm2")).split(",")
    default_lengths = "32,64" if args.tiny else "512,2048,8192"
    args.lengths = [int(x) for x in (args.lengths or default_lengths).split(",")]
    args.new_tokens = args.new_tokens or (8 if args.tiny else 64)
    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"device: {card} ({args.device}), dtype {args.dtype}, torch {torch.__version__}")
    header = ["shape", "tokens", "variant", "ms", "x plain", "estimate", "peak", "est/peak"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for shape in shapes:
        for row in bench_shape(shape, args):
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
