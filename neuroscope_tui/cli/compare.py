"""`neuroscope-tui compare`: two prompts through one model, or two snapshots, layer by layer.

    neuroscope-tui compare MODEL --prompt A --prompt B [--json]
    neuroscope-tui compare FILE_A FILE_B [--json]

Opens the comparison view; with `--json` prints the per-layer figures (see analysis/compare.py
for what each one means), and without a terminal on stdout (a pipe, a file) prints them as a
text table. Two runs of different models, a single prompt
or a single file are a UsageError: one sentence, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from neuroscope_tui.analysis.compare import Comparison
from neuroscope_tui.cli.model_options import DEFAULT_MODEL, add_model_arguments
from neuroscope_tui.cli.terminal import require_terminal, stdout_is_terminal
from neuroscope_tui.errors import UsageError
from neuroscope_tui.trace import Trace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL or FILE_A FILE_B, the prompts, and --json."""
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="MODEL | FILE_A FILE_B",
        help=f"a model to run both prompts through (default {DEFAULT_MODEL}), or two snapshots",
    )
    parser.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="TEXT",
        help="a prompt to compare; give exactly two",
    )
    parser.add_argument("--json", action="store_true", help="print the per-layer figures")
    parser.add_argument(
        "--keep-first-token",
        action="store_true",
        help="include position 0 in the figures (left out by default: it is often an outlier)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=0,
        metavar="N",
        help="tokens to generate after each prompt before comparing (default 0)",
    )
    add_model_arguments(parser, positional=False)


def _runs_from_prompts(args: argparse.Namespace) -> tuple[Trace, Trace]:
    """Load the model once and run both prompts with full residual vectors."""
    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.models.loader import load_model
    from neuroscope_tui.trace import CaptureSpec

    name = args.sources[0] if args.sources else DEFAULT_MODEL
    bundle = load_model(
        name,
        device=args.device,
        dtype=args.dtype,
        device_map=args.device_map,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
        progress=lambda msg: print(msg, file=sys.stderr),
    )
    spec = CaptureSpec(full_layers=None, head_scores=False)
    options = GenerationOptions(max_new_tokens=args.max_new_tokens)
    a = run(bundle, args.prompt[0], spec, options)
    b = run(bundle, args.prompt[1], spec, options)
    return a, b


def _runs_from_files(paths: list[str]) -> tuple[Trace, Trace]:
    from neuroscope_tui.snapshot import load_snapshot

    return load_snapshot(paths[0]), load_snapshot(paths[1])


def check_sources(args: argparse.Namespace) -> str:
    """Which inputs were given, "prompts" or "files"; UsageError saying what compare needs."""
    n_prompts, n_sources = len(args.prompt), len(args.sources)
    if n_prompts:
        if n_sources > 1:
            raise UsageError(
                "give either one MODEL with two --prompt, or two snapshot files, not both."
            )
        if n_prompts != 2:
            raise UsageError(
                f"compare needs exactly two prompts, got {n_prompts}: pass --prompt A --prompt B."
            )
        for text in args.prompt:
            if not text.strip():
                raise UsageError("one of the prompts is empty; give some text for both.")
        if args.max_new_tokens < 0:
            raise UsageError(f"--max-new-tokens must be 0 or more, not {args.max_new_tokens}.")
        return "prompts"
    if n_sources == 2:
        return "files"
    raise UsageError(
        "compare needs two prompts (MODEL --prompt A --prompt B) or two snapshot files "
        f"(FILE_A FILE_B); got {n_sources} argument{'s' if n_sources != 1 else ''} "
        "and no --prompt."
    )


def run(args: argparse.Namespace) -> int:
    from neuroscope_tui.analysis.compare import check_comparable, compare_runs

    kind = check_sources(args)
    if kind == "files":
        for path in args.sources:
            if not Path(path).is_file():
                raise UsageError(
                    f"{path} is not a snapshot file; to compare prompts, use "
                    "MODEL --prompt A --prompt B."
                )
        a, b = _runs_from_files(args.sources)
    else:
        a, b = _runs_from_prompts(args)
    check_comparable(a, b)
    if args.json or not stdout_is_terminal():
        # --json, or a script / pipe / file: print the figures rather than open a screen
        comparison = compare_runs(a, b, skip_first=not args.keep_first_token)
        if args.json:
            print(json.dumps(comparison.to_dict(a, b), indent=2))
        else:
            print(comparison_table(comparison, a, b))
        return 0
    require_terminal("the comparison view", "add --json to print the figures")
    from neuroscope_tui.tui.compare_app import CompareApp
    from neuroscope_tui.tui.recovery import CRASH_STATUS

    app = CompareApp(a, b, skip_first=not args.keep_first_token)
    app.run()
    # textual has printed the traceback of a crash; exit non-zero for it, never 0
    return CRASH_STATUS if app.return_code not in (None, 0) else 0


TABLE_COLUMNS = ("cos_mean", "cos_centred", "cos_last", "cka_tokens")


def comparison_table(c: Comparison, a: Trace, b: Trace) -> str:
    """The comparison view's figures as plain text: the runs, the overall CKA, and one row per
    layer of the four similarity figures (see analysis/compare.py)."""

    def num(x: float | None) -> str:
        return "-" if x is None or not np.isfinite(x) else f"{x:.4f}"

    lines = [
        f"model {a.model.name}",
        f"A: {a.prompt!r} ({a.n_tokens} tokens)",
        f"B: {b.prompt!r} ({b.n_tokens} tokens)",
        f"CKA of mean states across layers: {num(c.cka_mean_states)}"
        + ("  (first token left out of every figure)" if c.skip_first else ""),
        "",
        f"{'layer':>5}  " + "  ".join(f"{name:>11}" for name in TABLE_COLUMNS),
    ]
    for i, layer in enumerate(c.layers):
        cka = None if c.cka_tokens is None else c.cka_tokens[i]
        values = (c.cos_mean[i], c.cos_centred[i], c.cos_last[i], cka)
        lines.append(f"{layer:>5}  " + "  ".join(f"{num(v):>11}" for v in values))
    if not c.layers:
        lines.append("(no layer has full residual vectors in both runs)")
    return "\n".join(lines)
