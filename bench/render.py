"""How long the layer x token heatmap takes to draw one frame, as a share of a 16 ms budget.

For 30 layers x 512 tokens (SmolLM2-135M, a long prompt) and 80 layers x 4096 tokens (a 70B
model, a long context), scrolled to the middle of both axes, it times:

- frame (cold): building every visible strip with an empty strip cache, what a scroll or a
  new token costs; the figure held to the target (<= 0.5 of 16 ms);
- frame (cached): the same strips again, what a repaint with nothing changed costs;
- cursor move: one step right, the strips the move invalidates (the cursor's row and the axis);
- new data: `normalise` (per layer) + `set_data` over the whole trace, done once per token
  during generation.

Run: `python bench/render.py` (add `--size 120x40` for another terminal). Textual's own
compositor is not included; DESIGN.md measured it at ~20-30 ms a full frame, which is why the
widget refreshes only the regions that change.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import numpy as np
from textual.app import App, ComposeResult

from neuroscope_tui.analysis.metrics import normalise
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap

FRAME_BUDGET_MS = 16.0
TARGET_RATIO = 0.5
CASES = ((30, 512), (80, 4096))


class BenchApp(App):
    """Nothing but the heatmap, filling the terminal."""

    CSS = "LayerHeatmap { width: 1fr; height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield LayerHeatmap()


def fake_metric(n_layers: int, n_tokens: int) -> np.ndarray:
    """Residual-norm-like values [layer, token]: growing with depth, noisy per token."""
    rng = np.random.default_rng(0)
    depth = np.linspace(1.0, 30.0, n_layers)[:, None]
    return (depth * (1.0 + 0.3 * rng.standard_normal((n_layers, n_tokens)))).astype(np.float32)


def best_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median CPU time, median wall time) of `fn` in milliseconds over `repeats` runs.

    CPU time (this thread's) is the frame's cost; wall time also counts waiting for a core,
    which on a shared, loaded machine says more about the neighbours than about the widget.
    """
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        fn()
        cpu.append((time.thread_time() - c0) * 1000.0)
        wall.append((time.perf_counter() - w0) * 1000.0)
    return statistics.median(cpu), statistics.median(wall)


async def measure(n_layers: int, n_tokens: int, size: tuple[int, int], repeats: int) -> dict:
    """Time one case in a headless app of `size` (columns, rows)."""
    app = BenchApp()
    async with app.run_test(size=size) as pilot:
        heatmap = app.query_one(LayerHeatmap)
        raw = fake_metric(n_layers, n_tokens)
        labels = [f" tok{t}" for t in range(n_tokens)]
        heatmap.set_data(normalise(raw, "per layer"), raw, labels, n_tokens // 2)
        await pilot.pause()
        heatmap.scroll_to(
            x=heatmap.max_scroll_x // 2, y=heatmap.max_scroll_y // 2, animate=False, immediate=True
        )
        await pilot.pause()
        mid_layer = int(heatmap.scroll_offset.y) + 3
        start_token = (int(heatmap.scroll_offset.x) // heatmap.cell_width) + 5
        heatmap.cursor = (mid_layer, start_token)
        await pilot.pause()
        height = heatmap.size.height

        def frame() -> list:
            return [heatmap.render_line(y) for y in range(height)]

        def cold_frame() -> list:
            heatmap._strips.clear()
            return frame()

        walk = iter(range(10**6))

        def cursor_step() -> None:
            # one step right to a cell never drawn before (a position already drawn would come
            # from the cache); the axis rows and the cursor's row are built anew
            step = next(walk) % 50
            heatmap.set_reactive(LayerHeatmap.cursor, (mid_layer, start_token + step))
            frame()

        def new_data() -> None:
            heatmap.set_data(normalise(raw, "per layer"), raw, labels, n_tokens // 2)

        cold = best_ms(cold_frame, repeats)
        frame()
        warm = best_ms(frame, repeats)
        move = best_ms(cursor_step, min(repeats, 50))
        data = best_ms(new_data, max(3, repeats // 5))
        data_region = heatmap.scrollable_content_region
        visible_cols = (data_region.width - heatmap.gutter_width) // heatmap.cell_width
        segments = sum(len(list(s)) for s in frame())
    return {
        "case": f"{n_layers} x {n_tokens}",
        "visible": f"{min(n_layers, height - 2)} x {visible_cols}",
        "segments": segments,
        "cold": cold,
        "warm": warm,
        "move": move,
        "data": data,
    }


def _pair(ms: tuple[float, float]) -> str:
    return f"{ms[0]:.2f} ({ms[1]:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="200x60", help="terminal COLUMNSxROWS (default 200x60)")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    cols, rows = (int(v) for v in args.size.lower().split("x"))
    results = [
        asyncio.run(measure(n_layers, n_tokens, (cols, rows), args.repeats))
        for n_layers, n_tokens in CASES
    ]
    print(
        f"terminal {cols}x{rows}, frame budget {FRAME_BUDGET_MS:.0f} ms, medians of "
        f"{args.repeats} runs, CPU ms (wall ms)"
    )
    header = (
        f"{'layers x tokens':<16} {'visible rows x cols':<20} {'segments':>8} "
        f"{'frame cold':>16} {'ratio':>6} {'cached':>14} {'cursor move':>14} "
        f"{'new data':>14}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for r in results:
        ratio = r["cold"][0] / FRAME_BUDGET_MS
        ok &= ratio <= TARGET_RATIO
        print(
            f"{r['case']:<16} {r['visible']:<20} {r['segments']:>8} "
            f"{_pair(r['cold']):>16} {ratio:>6.3f} {_pair(r['warm']):>14} "
            f"{_pair(r['move']):>14} {_pair(r['data']):>14}"
        )
    verdict = "PASS" if ok else "FAIL"
    print(
        f"{verdict}: cold frame ratio <= {TARGET_RATIO} of {FRAME_BUDGET_MS:.0f} ms for every case"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
