"""The live scan's token rate against plain `model.generate`, the whole app included.

In one process on SmolLM2-135M (CPU), interleaved round by round so that machine noise hits
every variant alike:

    plain     `model.generate` (greedy, sdpa, no hooks): tokens/s from the first generated
              token to the last, timed by a streamer (the way the header times a run)
    app WxH   the real NeuroscopeApp, headless (`run_test(size=(W, H))`), default live scan
              (every view reachable, the detail panel's lens included): a prompt typed into
              its prompt line, run to the end; tokens/s read from the header's figures

Plain runs before and after each app run (its figure is the median of all of them). Prints
medians, the spread (min-max) and each app variant's ratio to plain, twice: the ratio of the
medians, and the median of the paired ratios (each app run against the mean of the plain runs
just before and after it). On a shared machine the plain rate alone moves by 30% within a
minute (13.4 to 18.1 tokens/s in twelve runs back to back), so the paired figure, which
compares runs seconds apart, is the one to read; use 7 rounds or more.

    python bench/live.py [--rounds 3] [--new-tokens 48] [--sizes 160x50,80x24] [--no-lens]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import torch

from neuroscope_tui.models.loader import load_model
from neuroscope_tui.tui.app import NeuroscopeApp

PROMPT = (
    "The history of the printing press begins in the fifteenth century, when Johannes "
    "Gutenberg combined movable metal type, oil-based ink and a wooden screw press."
)


class _Clock:
    """A generate() streamer that notes when each generated token arrives."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def end(self) -> None:
        pass


def plain_rate(bundle, new_tokens: int) -> tuple[float, float]:
    """Tokens/s of plain greedy `generate` after its first token (as the header counts), by
    the wall clock and by the process's CPU time."""
    ids = bundle.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    clock = _Clock()
    with torch.no_grad():
        bundle.model.generate(
            ids,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            streamer=clock,
            pad_token_id=bundle.tokenizer.eos_token_id,
        )
    t, c = clock.times, clock.cpu
    return (len(t) - 1) / (t[-1] - t[0]), (len(c) - 1) / (c[-1] - c[0])


async def _app_run(
    bundle, new_tokens: int, size: tuple[int, int], lens: bool
) -> tuple[float, float]:
    generation = {"max_new_tokens": new_tokens, "stop_at_eos": False, "lens": lens}
    app = NeuroscopeApp(model=bundle, generation=generation)
    # CPU time of the whole process (model worker and UI thread) at each generated token: the
    # engine serves view tasks once per step, right after it announces the step
    steps: list[tuple[int, float, float]] = []
    serve = app.engine.run_tasks

    def run_tasks(model, **kw) -> None:
        latest = app.engine.latest
        if app.engine.running and latest is not None:
            steps.append((latest.n_tokens, time.process_time(), time.thread_time()))
        serve(model, **kw)

    app.engine.run_tasks = run_tasks
    frames = [0]  # redraws of the growing trace
    apply = app._apply_growth

    def counted() -> None:
        frames[0] += 1
        apply()

    app._apply_growth = counted
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        prompt = app.query_one("#prompt")
        prompt.focus()
        prompt.value = PROMPT
        # the UI thread's CPU time (this one: drawing, messages, this loop) during the run
        ui0, process0 = time.thread_time(), time.process_time()
        await pilot.press("enter")
        while not app.figures.state.startswith(("done", "failed")):
            await asyncio.sleep(0.05)
        ui, process = time.thread_time() - ui0, time.process_time() - process0
        rate = app.figures.tokens_per_s
        assert app.figures.state.startswith("done"), (app.figures.state, app._notifications)
        # the idle worker completes the lens after the run: let it finish, off the clock
        while not app.engine.wait_idle(0.05) or app.engine.deriving:
            await asyncio.sleep(0.05)
    n_prompt = app.trace.n_prompt
    gen = [s for s in steps if s[0] > n_prompt]  # from the first generated token on
    cpu_rate = (gen[-1][0] - gen[0][0]) / (gen[-1][1] - gen[0][1])
    worker = (gen[-1][0] - gen[0][0]) / (gen[-1][2] - gen[0][2])
    print(
        f"    (the model worker alone: {worker:.2f} tokens per CPU s of its thread; the UI "
        f"thread: {100 * ui / process:.1f}% of the process's CPU, {frames[0]} frames)"
    )
    return float(rate), cpu_rate


def app_rate(bundle, new_tokens: int, size: tuple[int, int], lens: bool) -> tuple[float, float]:
    return asyncio.run(_app_run(bundle, new_tokens, size, lens))


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f}  ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--sizes", default="160x50,80x24")
    parser.add_argument("--no-lens", action="store_true", help="run the app with --no-lens")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    bundle = load_model("smollm2", device="cpu", dtype="float32")
    plain_rate(bundle, 8)  # warm up both paths once
    app_rate(bundle, 4, sizes[0], not args.no_lens)
    plain: list[tuple[float, float]] = []
    apps: dict[tuple[int, int], list[tuple[float, float]]] = {s: [] for s in sizes}
    # each app run's index among the plain runs: plain[i] runs just before it, plain[i + 1]
    # just after
    after: dict[tuple[int, int], list[int]] = {s: [] for s in sizes}
    for r in range(args.rounds):
        for size in sizes:  # ABAB: plain before and after every app run
            plain.append(plain_rate(bundle, args.new_tokens))
            after[size].append(len(plain) - 1)
            apps[size].append(app_rate(bundle, args.new_tokens, size, not args.no_lens))
            p, a = plain[-1], apps[size][-1]
            print(
                f"round {r + 1}: plain {p[0]:.2f} ({p[1]:.2f} per CPU s), "
                f"app {size[0]}x{size[1]} {a[0]:.2f} ({a[1]:.2f} per CPU s)",
                flush=True,
            )
        plain.append(plain_rate(bundle, args.new_tokens))
    print(
        f"\nSmolLM2-135M, CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.new_tokens} new tokens, lens {'off' if args.no_lens else 'on'}, "
        f"{args.rounds} rounds; median (min-max) of tokens per wall second | per CPU second"
    )
    for clock, what in ((0, "wall"), (1, "CPU")):
        base = statistics.median(p[clock] for p in plain)
        print(f"  by {what} time: plain generate {spread([p[clock] for p in plain])}")
        for size, rates in apps.items():
            got = [a[clock] for a in rates]
            ratio = statistics.median(got) / base
            paired = [
                a[clock] / ((plain[i][clock] + plain[i + 1][clock]) / 2)
                for a, i in zip(rates, after[size], strict=True)
            ]
            print(
                f"  by {what} time: app {size[0]}x{size[1]:<8} {spread(got)}  ratio {ratio:.2f}"
                f"  paired ratio {spread(paired)}"
            )


if __name__ == "__main__":
    main()
