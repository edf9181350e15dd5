"""The memory estimate (capture/memory.py) against the memory a capture really takes.

Each case runs in a fresh subprocess: it builds or loads the model, warms up with a short
capture, resets the kernel's high-water mark (/proc/self/clear_refs), runs the capture, and
reports the peak resident set above the resident set before the run. The estimate's part that
a run adds (KV cache + activations + trace: the weights are already resident) is compared
with that growth; the ratio estimate / measured should be within 0.8..1.2.

    python bench/memory.py                  # SmolLM2-135M, prompts of 128, 512 and 1024 tokens
    python bench/memory.py --tiny           # random tiny llamas, three sizes and specs (a test)
    python bench/memory.py --long           # SmolLM2, one 4,096-token prompt
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TINY_CASES = {
    # a random llama: summaries, full rows, lens (the app's default spec)
    "tiny-full-lens-512": dict(
        shape=dict(
            num_hidden_layers=4,
            hidden_size=256,
            num_attention_heads=8,
            num_key_value_heads=4,
            intermediate_size=1024,
            vocab_size=32000,
            max_position_embeddings=4096,
        ),
        n_prompt=512,
        new=8,
        spec="full",
    ),
    # a longer prompt, summaries only (capture --full-layers none --no-lens)
    "tiny-summaries-1024": dict(
        shape=dict(
            num_hidden_layers=6,
            hidden_size=128,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=512,
            vocab_size=16000,
            max_position_embeddings=4096,
        ),
        n_prompt=1024,
        new=8,
        spec="summaries",
    ),
    # the capture command's default: per-layer attention patterns (T x T each) and full rows
    "tiny-patterns-1024": dict(
        shape=dict(
            num_hidden_layers=8,
            hidden_size=128,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=512,
            vocab_size=8000,
            max_position_embeddings=4096,
        ),
        n_prompt=1024,
        new=8,
        spec="patterns",
    ),
}
SMOLLM2_CASES = {
    f"smollm2-{spec}-{n}": dict(shape="smollm2-real", n_prompt=n, new=16, spec=spec)
    for n in (128, 512, 1024)
    for spec in ("full", "patterns")
}
# a long prompt, where the [prompt, vocab] arrays beside the model's logits dominate (--long)
LONG_CASES = {"smollm2-full-4096": dict(shape="smollm2-real", n_prompt=4096, new=4, spec="full")}


def make_spec(kind: str, n_layers: int):
    from neuroscope_tui.trace import CaptureSpec

    if kind == "summaries":
        return CaptureSpec(full_layers=(), lens_positions=())
    if kind == "patterns":
        return CaptureSpec(
            full_layers=None, pattern_heads=tuple((layer, -1) for layer in range(n_layers))
        )
    return CaptureSpec(full_layers=None)


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def measure(case: dict) -> dict:
    """Run one case in this process; return estimate and measured growth in bytes."""
    import torch

    from neuroscope_tui.capture.memory import estimate, weight_bytes
    from neuroscope_tui.capture.run import GenerationOptions, model_info, run
    from random_models import prompt_of, random_bundle

    torch.set_num_threads(1)
    if case["shape"] == "smollm2-real":
        from neuroscope_tui.models.loader import load_model

        bundle = load_model("smollm2", device="cpu", dtype="float32")
        sentence = "The history of the printing press begins in Europe."
        prompt = " ".join([sentence] * max(200, case["n_prompt"] // 8))
        ids = bundle.tokenizer(prompt)["input_ids"][: case["n_prompt"]]
        prompt = bundle.tokenizer.decode(ids)
    else:
        bundle = random_bundle(case["shape"])
        prompt = prompt_of(case["n_prompt"], bundle.anatomy.vocab_size)
    n_prompt = len(bundle.tokenizer(prompt)["input_ids"])
    spec = make_spec(case["spec"], bundle.anatomy.n_layers)
    options = GenerationOptions(max_new_tokens=case["new"], stop_at_eos=False)
    warm = GenerationOptions(max_new_tokens=2, stop_at_eos=False)
    run(bundle, " ".join(prompt.split()[:8]) or prompt, spec, warm)  # lazy set-up out of the way
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status("VmRSS")
    trace = run(bundle, prompt, spec, options)
    peak = _status("VmHWM") - before
    est = estimate(
        model_info(bundle), spec, n_prompt, case["new"], weights=weight_bytes(bundle.model)
    )
    return {
        "n_prompt": n_prompt,
        "n_tokens": trace.n_tokens,
        "estimate": est.to_dict(),
        "estimated_growth": est.total - est.weights,
        "measured_growth": peak,
    }


def run_case(name: str, case: dict) -> dict:
    """`measure(case)` in a fresh Python process (its own high-water mark)."""
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import memory; "
        f"print('RESULT', json.dumps(memory.measure({case!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"case": name, **json.loads(line[len("RESULT ") :])}
    raise RuntimeError(f"case {name} failed:\n{out.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="random tiny models (fast)")
    parser.add_argument("--long", action="store_true", help="SmolLM2, a 4,096-token prompt")
    parser.add_argument("--cases", default="", help="comma-separated case names")
    parser.add_argument("--json", action="store_true", help="one JSON line per case")
    args = parser.parse_args()
    cases = TINY_CASES if args.tiny else LONG_CASES if args.long else SMOLLM2_CASES
    chosen = [c for c in args.cases.split(",") if c] or list(cases)
    mib = 1 << 20
    if not args.json:
        print("| case | tokens | estimated MiB | measured MiB | ratio |")
        print("|---|---|---|---|---|")
    for name in chosen:
        r = run_case(name, cases[name])
        ratio = r["estimated_growth"] / max(1, r["measured_growth"])
        r["ratio"] = ratio
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(
                f"| {name} | {r['n_prompt']}+{r['n_tokens'] - r['n_prompt']} "
                f"| {r['estimated_growth'] / mib:.1f} | {r['measured_growth'] / mib:.1f} "
                f"| {ratio:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
