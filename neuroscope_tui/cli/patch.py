"""`neuroscope-tui patch MODEL --clean TEXT --corrupt TEXT`: an activation patching sweep.

Patches every (layer, position) cell of the residual stream (or every head's output, or every
MLP output: --site) from the clean prompt into the corrupted one and prints how much of the
clean logit difference (target minus foil) each cell brings back, as a grid (or --json).
`-o sweep.nscope` keeps the sweep in a snapshot file that `info`, `export ... patching` and
`view` read. Mistakes are one sentence and exit 2, before the model loads where they can be.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from neuroscope_tui.cli.model_options import add_model_arguments, loader_options
from neuroscope_tui.errors import UsageError
from neuroscope_tui.text_safety import visible

SITES = ("resid", "heads", "mlp")
MAX_ROWS_SHOWN = 40  # a heads sweep has layers x heads rows: the grid shows the strongest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--clean", default=None, metavar="TEXT", help="the prompt to patch from")
    parser.add_argument(
        "--corrupt", default=None, metavar="TEXT", help="the prompt to patch into (same length)"
    )
    parser.add_argument(
        "--target", default=None, metavar="TEXT", help="the clean answer (default: its top token)"
    )
    parser.add_argument(
        "--foil", default=None, metavar="TEXT", help="the corrupted answer (default: its top token)"
    )
    parser.add_argument("--site", choices=SITES, default="resid", help="what to patch")
    parser.add_argument("--json", action="store_true", help="print the sweep as one JSON object")
    parser.add_argument(
        "-o", "--output", type=Path, default=None, metavar="FILE", help="write the sweep here"
    )
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


def _check(args: argparse.Namespace) -> None:
    for option, words in (("clean", "a clean"), ("corrupt", "a corrupted")):
        value = getattr(args, option)
        if value is None or not value.strip():
            raise UsageError(f"patching needs {words} prompt; pass --{option} TEXT")
    for option in ("target", "foil"):
        if getattr(args, option) == "":
            raise UsageError(f"--{option} is empty; give a word such as ' Paris'")


def grid_text(sweep) -> str:
    """The recovered fraction per cell, rows x tokens (the strongest rows of a heads sweep)."""
    import numpy as np

    rows = list(range(len(sweep.rows)))
    if len(rows) > MAX_ROWS_SHOWN:
        strength = np.nan_to_num(np.abs(sweep.recovered)).max(1)
        rows = sorted(np.argsort(-strength, kind="stable")[:MAX_ROWS_SHOWN].tolist())
    width = max(6, *(min(len(visible(t)) + 2, 10) for t in sweep.tokens))
    head = " " * 8 + "".join(f"{visible(t)[: width - 1]!s:>{width}}" for t in sweep.tokens)
    lines = [head]
    for r in rows:
        cells = "".join(
            f"{'-' if math.isnan(v) else f'{v:.2f}':>{width}}" for v in sweep.recovered[r]
        )
        lines.append(f"{sweep.rows[r]:<8}{cells}")
    if len(rows) < len(sweep.rows):
        lines.append(f"({len(rows)} of {len(sweep.rows)} rows: the most recovering ones)")
    return "\n".join(lines)


def sweep_json(sweep) -> dict:
    def plain(v: float) -> float | None:
        return None if math.isnan(v) else round(float(v), 6)

    return {
        **sweep.note(),
        "tokens": list(sweep.tokens),
        "recovered": [[plain(v) for v in row] for row in sweep.recovered],
        "logit_diff": [[plain(v) for v in row] for row in sweep.logit_diff],
    }


def run(args: argparse.Namespace) -> int:
    _check(args)
    from neuroscope_tui.snapshot import check_output_path, save_snapshot

    if args.output is not None:
        check_output_path(args.output, force=args.force)
    from neuroscope_tui.capture.patching import patch_sweep
    from neuroscope_tui.capture.run import GenerationOptions, model_info, tokenize_prompt
    from neuroscope_tui.models.loader import load_model
    from neuroscope_tui.tasks import TaskContext

    def say(text: str) -> None:
        print(visible(text, newlines=True), file=sys.stderr, flush=True)

    say(f"loading {args.model}")
    bundle = load_model(args.model, progress=say, **loader_options(args))
    task = TaskContext()
    live = sys.stderr.isatty()

    def show() -> None:
        got = task.take()
        if got and live:
            print(f"\r  {got[1]}", end="", file=sys.stderr, flush=True)

    task.notify = show
    sweep = patch_sweep(
        bundle,
        args.clean,
        args.corrupt,
        site=args.site,
        target=args.target,
        foil=args.foil,
        task=task,
    )
    if live:
        print(file=sys.stderr)
    if args.output is not None:
        ids = tokenize_prompt(bundle, args.corrupt, GenerationOptions())
        save_snapshot(sweep.to_trace(model_info(bundle), ids), args.output, force=args.force)
        say(f"wrote the sweep to {args.output}")
    if args.json:
        print(json.dumps(sweep_json(sweep), ensure_ascii=True))
        return 0
    print(
        visible(
            f"{sweep.site} patching, {sweep.clean!r} -> {sweep.corrupt!r}: "
            f"logit({sweep.target!r}) - logit({sweep.foil!r}) is {sweep.clean_diff:.3f} clean, "
            f"{sweep.corrupt_diff:.3f} corrupted; 1 = patching the cell restores it all"
        )
    )
    print(grid_text(sweep))
    return 0
