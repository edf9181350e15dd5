"""`neuroscope-tui compare`: two prompts through one model, or two snapshots, layer by layer.

    neuroscope-tui compare MODEL --prompt A --prompt B [--json]
    neuroscope-tui compare FILE_A FILE_B [--json]

Opens the comparison view, or with `--json` prints the per-layer figures (see
analysis/compare.py for what each one means). Two runs of different models, a single prompt
or a single file are a UsageError: one sentence, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neuroscope_tui.cli.model_options import DEFAULT_MODEL, add_model_arguments
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
    if args.json:
        comparison = compare_runs(a, b, skip_first=not args.keep_first_token)
        print(json.dumps(comparison.to_dict(a, b), indent=2))
        return 0
    from neuroscope_tui.tui.compare_app import CompareApp

    CompareApp(a, b, skip_first=not args.keep_first_token).run()
    return 0
