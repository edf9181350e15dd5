"""How long a second start takes, and where the time goes (issue 9, item 16).

    python bench/startup.py [--repeat N] [--model smollm2] [--no-app] [--terminal]
                            [--compare-full-imports]

Each measurement is a fresh Python process, timed from before it is spawned (so interpreter
start-up counts), repeated N times; the median and the range are printed:

  (a) `python -c "import torch"`
  (b) `python -c "import torch, transformers"`
  (c) process start -> `load_model(MODEL)` returned, with the GGUF cache warm, split into
      phases by the loader's own progress messages (imports, config, model code, tokenizer,
      weights, anatomy) plus a first forward pass (the warm-up the first run pays)
  (d) process start -> a usable screen: the app (NeuroscopeApp headless under `run_test`) has
      its layout up, the prompt box focused, and a key typed there shows in it; the model is
      still loading in the worker
  (e) process start -> the model ready in the same app (its header says "ready")

  (t) with --terminal (needs tmux): `python -m neuroscope_tui MODEL` in a real 120x40 terminal,
      read back every 20 ms: process start -> the layout on screen (its loading line), -> a key
      typed then shows in the prompt box, -> the header says ready

and then (c), (d) and (e) minus (a): the loader's and the app's cost beyond Python's import of
torch; the goal (at most 2 s beyond it) is stated for (d). `--compare-full-imports` also times
(c) with NEUROSCOPE_FULL_IMPORTS=1 (transformers imports everything), to show what
models/lean_imports.py saves. The first run of a model must have filled the GGUF cache already
(run it once).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The child for (c). Each stamp is (the phase starting now, seconds since the parent spawned
# this process); a phase lasts until the next stamp. The loader's progress messages are stamps
# too: each names the step it is about to take.
LOAD_CHILD = r"""
import json, resource, sys, time
t0 = float(sys.argv[1])
def cpu():
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime
stamps = [("interpreter start-up", 0.0), ("import torch", time.time() - t0)]
import torch
stamps.append(("import neuroscope's loader", time.time() - t0))
cpu_torch = cpu()
from neuroscope_tui.models.loader import load_model
stamps.append(("locate, device, import transformers", time.time() - t0))
say = lambda m: stamps.append((m, time.time() - t0))
bundle = load_model(sys.argv[2], device="cpu", progress=say)
stamps.append(("first forward (warm-up)", time.time() - t0))
cpu_load = cpu() - cpu_torch
with torch.no_grad():
    bundle.model(input_ids=torch.tensor([[1, 2, 3]]))
stamps.append(("end", time.time() - t0))
stamps.append(("cpu: load beyond torch", cpu_load))
print(json.dumps(stamps))
"""

# The child for (d) and (e): the app, headless, until the prompt box takes a key (d), then
# until the model is loaded and the header says ready (e).
APP_CHILD = r"""
import asyncio, json, sys, time
t0 = float(sys.argv[1])
stamps = [("interpreter start-up", 0.0), ("import the app", time.time() - t0)]
from textual import events
from neuroscope_tui.tui.app import NeuroscopeApp
stamps.append(("start the app (the model loads in a thread)", time.time() - t0))

async def main():
    app = NeuroscopeApp(model_name=sys.argv[2], load_options={"device": "cpu"})
    async with app.run_test(size=(120, 40)) as pilot:
        stamps.append(("app running, type a key in the prompt", time.time() - t0))
        box = app.query_one("#prompt")
        while app.focused is not box:
            await asyncio.sleep(0.005)
        # the key as a terminal sends it (pilot.press would wait for the process to be idle,
        # which it is not while the model loads: a second of the pilot's, not the app's)
        key = events.Key("x", "x")
        key.set_sender(app)
        app._driver.send_message(key)
        while box.value != "x":
            await asyncio.sleep(0.005)
        stamps.append(("usable screen; the model loads", time.time() - t0))
        while app.figures.state != "ready":
            if app.load_error:
                raise SystemExit(app.load_error)
            await asyncio.sleep(0.005)
        await pilot.pause()
        stamps.append(("model ready", time.time() - t0))

asyncio.run(main())
print(json.dumps(stamps))
"""


def _env(full_imports: bool = False) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NEUROSCOPE_FULL_IMPORTS", None)
    if full_imports:
        env["NEUROSCOPE_FULL_IMPORTS"] = "1"
    return env


def wall(code: str) -> float:
    """Seconds for a fresh `python -c code`, spawn to exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), capture_output=True)
    return time.perf_counter() - start


def stamped(child: str, model: str, full_imports: bool = False) -> list[tuple[str, float]]:
    """Run a child script; return its (phase, seconds since spawn) stamps."""
    out = subprocess.run(
        [sys.executable, "-c", child, repr(time.time()), model],
        check=True,
        env=_env(full_imports),
        capture_output=True,
        text=True,
    )
    return [(name, float(t)) for name, t in json.loads(out.stdout.strip().splitlines()[-1])]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s  ({min(values):.2f}-{max(values):.2f})"


def phases(runs: list[list[tuple[str, float]]]) -> list[tuple[str, list[float]]]:
    """Each phase's duration (its stamp to the next one) over the runs, in the first run's
    order; the loader's closing "done in ..." message is left out."""
    by_name: dict[str, list[float]] = {}
    for run in runs:
        for (name, start), (_, stop) in itertools.pairwise(run):
            if not name.startswith(("done in", "end")):
                by_name.setdefault(name, []).append(stop - start)
    return list(by_name.items())


def at(run: list[tuple[str, float]], name: str) -> float:
    """When the phase `name` started in `run`."""
    return dict(run)[name]


def in_terminal(model: str) -> dict[str, float]:
    """(t): seconds from spawning the real command in a private tmux server to the layout on
    screen, to a typed key shown in the prompt box, and to the header's "ready"."""
    socket = f"nscope-bench-{uuid.uuid4().hex[:8]}"  # a server of our own, killed at the end

    def tmux(*args: str) -> str:
        cmd = ["tmux", "-L", socket, *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=_env()).stdout

    command = f"{sys.executable} -m neuroscope_tui {model} --device cpu"
    seen: dict[str, float] = {}
    start = time.perf_counter()
    tmux("new-session", "-d", "-s", "bench", "-x", "120", "-y", "40", command)
    try:
        while time.perf_counter() - start < 120 and "ready" not in seen:
            pane, now = tmux("capture-pane", "-p", "-t", "bench"), time.perf_counter() - start
            if "layout" not in seen and f"loading {model}" in pane:
                seen["layout"] = now
                tmux("send-keys", "-t", "bench", "-l", "x")
            if "layout" in seen and "key" not in seen and "▊  x " in pane:
                seen["key"] = now
            if "· ready" in pane:
                seen["ready"] = now
            time.sleep(0.02)
    finally:
        tmux("kill-server")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--no-app", action="store_true", help="skip (d) and (e)")
    parser.add_argument("--terminal", action="store_true", help="also (t), in tmux")
    parser.add_argument("--compare-full-imports", action="store_true")
    args = parser.parse_args()

    stamped(LOAD_CHILD, args.model)  # fills the GGUF cache if it is cold, and warms the disk
    torch_s, tf_s, load_runs, full_runs, app_runs, terminal_runs = [], [], [], [], [], []
    for _ in range(args.repeat):  # interleaved, so a busy moment hits every figure alike
        torch_s.append(wall("import torch"))
        tf_s.append(wall("import torch, transformers"))
        load_runs.append(stamped(LOAD_CHILD, args.model))
        if args.compare_full_imports:
            full_runs.append(stamped(LOAD_CHILD, args.model, full_imports=True))
        if not args.no_app:
            app_runs.append(stamped(APP_CHILD, args.model))
        if args.terminal:
            terminal_runs.append(in_terminal(args.model))

    loaded = [at(r, "first forward (warm-up)") for r in load_runs]
    print(f"second start of {args.model}, {args.repeat} runs each, median (range)")
    print(f"(a) import torch                         {summary(torch_s)}")
    print(f"(b) import torch, transformers           {summary(tf_s)}")
    print(f"(c) process start -> model loaded        {summary(loaded)}")
    cpu_s = [at(r, "cpu: load beyond torch") for r in load_runs]
    print(f"    its CPU time beyond import torch     {summary(cpu_s)}  (a quiet machine's wait)")
    for name, durations in phases(load_runs):
        if durations:
            print(f"      {name[:34]:<34} {summary(durations)}")
    if full_runs:
        full = [at(r, "first forward (warm-up)") for r in full_runs]
        print(f"(c') same, NEUROSCOPE_FULL_IMPORTS=1     {summary(full)}")
        full_cpu = [at(r, "cpu: load beyond torch") for r in full_runs]
        print(f"     its CPU time beyond import torch     {summary(full_cpu)}")
        saved = [f - lean for f, lean in zip(full, loaded, strict=True)]
        print(f"     lean imports save                   {summary(saved)}")
    if app_runs:
        usable = [at(r, "usable screen; the model loads") for r in app_runs]
        ready = [at(r, "model ready") for r in app_runs]
        print(f"(d) process start -> usable screen       {summary(usable)}")
        print(f"(e) process start -> model ready in app  {summary(ready)}")
        for name, durations in phases(app_runs):
            print(f"      {name[:34]:<34} {summary(durations)}")
    for what, key in (
        ("layout on screen", "layout"),
        ("typed key shown", "key"),
        ("ready", "ready"),
    ):
        got = [run[key] for run in terminal_runs if key in run]
        if got:
            print(f"(t) in a terminal: start -> {what:<16} {summary(got)}  ({len(got)} runs)")
    med_torch = statistics.median(torch_s)
    tf_extra = statistics.median(tf_s) - med_torch
    load_extra = statistics.median(loaded) - med_torch
    print(f"(b)-(a) transformers' own import         {tf_extra:6.2f} s")
    print(f"(c)-(a) loading beyond import torch      {load_extra:6.2f} s")
    if app_runs:
        extra = statistics.median(usable) - med_torch
        print(f"(d)-(a) usable screen beyond import torch {extra:5.2f} s  (goal: at most 2 s)")
        extra = statistics.median(ready) - med_torch
        print(f"(e)-(a) model ready beyond import torch  {extra:6.2f} s")
        ratio = statistics.median(ready) / med_torch
        print(f"(e)/(a)                                  {ratio:6.1f} x")


if __name__ == "__main__":
    main()
