"""`neuroscope-tui [MODEL]`: load a model and open the live scan.

The model name is checked (alias, file, folder or hub id) before the screen starts, so a typo
is one sentence and exit status 2; loading itself then happens behind the app's loading
screen, and a failure there is printed again on exit.
"""

from __future__ import annotations

import argparse
import os
import sys

from neuroscope_tui.capture.sampling import sampling_from
from neuroscope_tui.cli.model_options import (
    add_generation_arguments,
    add_model_arguments,
    add_sampling_arguments,
)
from neuroscope_tui.cli.view import check_save_dir
from neuroscope_tui.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--prompt", default=None, metavar="TEXT", help="run TEXT at once")
    parser.add_argument(
        "--save-dir",
        default=None,
        metavar="DIR",
        help="where s (snapshot) and S (SVG screenshot) write (default: the working folder)",
    )
    parser.add_argument(
        "--no-lens",
        action="store_true",
        help="skip the per-layer logit lens (on CPU it about halves the token rate)",
    )
    add_generation_arguments(parser)
    add_sampling_arguments(parser)


def generation_options(args: argparse.Namespace) -> dict:
    """The GenerationOptions fields from the command line; UsageError for bad values."""
    if args.max_new_tokens < 0:
        raise UsageError("--max-new-tokens must be 0 or more")
    if args.temperature < 0:
        raise UsageError("--temperature must be 0 (greedy) or more")
    if not 0 < args.top_p <= 1:
        raise UsageError("--top-p must be in (0, 1]")
    return {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": args.seed,
        "lens": not getattr(args, "no_lens", False),
        "sampling": sampling_from(args),  # checked here, before the screen starts
    }


def run(args: argparse.Namespace) -> int:
    from neuroscope_tui.models.loader import locate

    locate(args.model)  # a typo fails here, before the screen starts
    check_save_dir(args.save_dir)
    gen = generation_options(args)
    from neuroscope_tui.tui.app import NeuroscopeApp

    app = NeuroscopeApp(
        model_name=args.model,
        load_options={
            "device": args.device,
            "dtype": args.dtype,
            "device_map": args.device_map,
            "revision": args.revision,
            "trust_remote_code": args.trust_remote_code,
        },
        prompt=args.prompt,
        generation=gen,
        save_dir=args.save_dir,
    )
    app.run()
    status = 0
    if app.load_error:
        print(f"neuroscope-tui: {app.load_error}", file=sys.stderr)
        status = 2
    if not app.engine.wait_idle(timeout=2.0):
        # Quit during a load (or a forward pass that outlasts the stop): a worker thread cannot
        # be interrupted, and Python would wait for it at exit. Nothing of ours is half-written
        # (snapshots and the GGUF cache are renamed into place), so leave now.
        print("neuroscope-tui: stopped while the model was busy.", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
