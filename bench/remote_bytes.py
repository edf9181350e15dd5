"""What a remote (NDIF) run of SmolLM2-135M sends and brings back, measured here.

The run is built exactly as `capture MODEL --remote` builds it (capture/remote.py whole_run:
one nnsight `generate` trace whose body reduces every step on the engine) and executed by
this machine instead of NDIF. It measures:

    request   the payload nnsight posts (our code by value, the plan, the prompt), zstd as sent
    result    what NDIF sends back: torch.save of the saved values, raw and zstd-compressed

for CaptureSpec() (every per-token summary, head scores aside, the lens at every position)
and for the CLI's default (the same plus full residual and neuron rows of every layer).

    python bench/remote_bytes.py [--new-tokens 32] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import replace


def measure(new_tokens: int) -> list[dict]:
    import torch
    import zstandard
    from nnsight.intervention.backends.local import LocalSimulationBackend
    from nnsight.schema.request import RequestModel

    from neuroscope_tui.capture.nnsight_backend import wrap
    from neuroscope_tui.capture.remote import request_steps
    from neuroscope_tui.capture.run import GenerationOptions, _prompt_ids
    from neuroscope_tui.models.loader import load_model
    from neuroscope_tui.trace import CaptureSpec

    bundle = load_model("smollm2", device="cpu", dtype="float32")
    lm = wrap(bundle)
    prompt = "The capital of France is Paris, and the capital of Germany is"
    options = GenerationOptions(max_new_tokens=new_tokens, stop_at_eos=False)
    sizes: dict[str, int] = {}

    class Measuring(LocalSimulationBackend):
        """nnsight's server simulation, also weighing the request as RemoteBackend sends it."""

        def __call__(self, tracer):
            sizes["request"] = len(RequestModel.serialize(tracer, compress=True))
            super().__call__(tracer)

    ids, _ = _prompt_ids(bundle, prompt, options)
    out = []
    for label, spec in (
        ("CaptureSpec() (summaries, lens)", CaptureSpec()),
        ("CLI default (+ full rows of every layer)", CaptureSpec(full_layers=None)),
    ):
        spec = replace(spec, head_scores=False)  # a remote run records none (see the notes)
        steps = request_steps(lm, bundle, ids, spec, options, backend=Measuring(lm))
        # the saved values as the server returns them: torch.save of {name: value}
        buffer = io.BytesIO()
        torch.save({"steps": steps}, buffer)
        raw = buffer.getvalue()
        packed = zstandard.ZstdCompressor(level=6).compress(raw)
        n_tokens = len(ids) + len(steps) - 1
        out.append(
            {
                "spec": label,
                "tokens": n_tokens,
                "request_bytes": sizes["request"],
                "result_bytes": len(raw),
                "result_bytes_zstd": len(packed),
                "per_token_zstd": round(len(packed) / n_tokens),
                "full_tensors_bytes": _full_bytes(bundle, n_tokens),
            }
        )
    return out


def _full_bytes(bundle, n_tokens: int) -> int:
    """What bringing back the raw activations instead would cost: every block's output, every
    attention and MLP output ([T, d_model] float32 each) and the logits ([T, vocab])."""
    a = bundle.anatomy
    return n_tokens * 4 * (a.n_layers * 3 * a.d_model + a.n_layers * a.d_mlp + a.vocab_size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.new_tokens)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(
            f"{row['spec']}: {row['tokens']} tokens; request {row['request_bytes']:,} B; "
            f"result {row['result_bytes']:,} B raw, {row['result_bytes_zstd']:,} B zstd "
            f"({row['per_token_zstd']:,} B/token); raw activations would be "
            f"{row['full_tensors_bytes']:,} B"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
