"""`neuroscope-tui heads MODEL`: every attention head's scores and types, as a table or JSON.

Scores come from the induction probe (a repeated random-token sequence the tool builds
itself, the standard test); with `--prompt` the same scores on the user's text are added.
Layer and head indices out of range are a UsageError before the probe runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from neuroscope_tui.analysis.heads import (
    DEFAULT_THRESHOLDS,
    SCORE_NAMES,
    HeadScores,
    head_scores,
)
from neuroscope_tui.cli.model_options import add_model_arguments
from neuroscope_tui.errors import UsageError
from neuroscope_tui.text_safety import visible

PROMPT_PATTERN_LIMIT = 512  # longer prompts skip redundant pairs (they need every pattern)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL, the model options, and what to show."""
    add_model_arguments(parser)
    parser.add_argument("--prompt", default=None, help="also score every head on this text")
    parser.add_argument("--json", action="store_true", help="one JSON entry per head")
    parser.add_argument("--layer", type=int, default=None, metavar="L", help="only layer L")
    parser.add_argument("--head", type=int, default=None, metavar="H", help="only head H")
    parser.add_argument(
        "--top", type=int, default=None, metavar="N", help="only the N heads highest on --sort"
    )
    parser.add_argument(
        "--sort",
        choices=SCORE_NAMES,
        default=None,
        help="order heads by this probe score, highest first (default with --top: induction)",
    )
    parser.add_argument(
        "--probe-length",
        type=int,
        default=50,
        metavar="N",
        help="random tokens in each half of the induction probe (default 50)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe's random tokens")
    t = DEFAULT_THRESHOLDS
    parser.epilog = (
        f"Types: previous-token (prev >= {t.prev}), induction (induction >= {t.induction}), "
        f"duplicate-token (dup >= {t.dup}), sink (first >= {t.first}), near-uniform "
        f"(normalised entropy >= {t.entropy}), redundant (pattern cosine >= {t.redundant} "
        "with another head). Scores are means over the probe's queries (see docs/heads.md)."
    )


def _check_args(args: argparse.Namespace) -> None:
    """What can be checked before loading the model."""
    for name in ("layer", "head"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise UsageError(f"--{name} must be 0 or more, not {value}.")
    if args.top is not None and args.top < 1:
        raise UsageError(f"--top must be 1 or more, not {args.top}.")
    if args.probe_length < 2:
        raise UsageError(f"--probe-length must be 2 or more, not {args.probe_length}.")
    if args.prompt is not None and not args.prompt.strip():
        raise UsageError("--prompt is empty; give some text or leave --prompt out.")


def _check_range(args: argparse.Namespace, n_layers: int, n_heads: int, model: str) -> None:
    if args.layer is not None and args.layer >= n_layers:
        raise UsageError(
            f"--layer {args.layer} is out of range: {model} has layers 0 to {n_layers - 1}."
        )
    if args.head is not None and args.head >= n_heads:
        raise UsageError(
            f"--head {args.head} is out of range: {model} has heads 0 to {n_heads - 1}."
        )


def head_entries(probe: HeadScores, prompt: HeadScores | None = None) -> list[dict[str, Any]]:
    """One dict per head: layer, head, every probe score, types, redundant partners, prompt."""
    entries = probe.rows()
    if prompt is not None:
        for entry, row in zip(entries, prompt.rows(), strict=True):
            entry["prompt"] = {k: v for k, v in row.items() if k not in ("layer", "head")}
    return entries


def select_entries(entries: list[dict[str, Any]], args: argparse.Namespace) -> list[dict]:
    """The entries --layer, --head, --sort and --top ask for."""
    out = [
        e
        for e in entries
        if (args.layer is None or e["layer"] == args.layer)
        and (args.head is None or e["head"] == args.head)
    ]
    sort = args.sort or ("induction" if args.top is not None else None)
    if sort:
        out.sort(key=lambda e: -math.inf if e[sort] is None else e[sort], reverse=True)
    if args.top is not None:
        out = out[: args.top]
    return out


def format_table(entries: list[dict[str, Any]], source: str = "") -> str:
    """A fixed-width table: layer, head, the scores, types (and the prompt's scores)."""
    names = {"entropy": "entropy", "induction": "induct"}
    header = "layer head " + " ".join(f"{names.get(n, n):>7}" for n in SCORE_NAMES) + "  types"

    def cells(row: dict[str, Any]) -> str:
        return " ".join("    n/a" if row[n] is None else f"{row[n]:7.3f}" for n in SCORE_NAMES)

    lines = [header]
    for e in entries:
        types = ", ".join(e["types"]) or "-"
        if e["redundant_with"]:
            types += " (" + ", ".join(f"L{lay}.H{h}" for lay, h in e["redundant_with"]) + ")"
        lines.append(f"{e['layer']:>5} {e['head']:>4} {cells(e)}  {types}")
        if "prompt" in e:
            prompt_types = ", ".join(e["prompt"]["types"]) or "-"
            lines.append(f"{'':>5} {'':>4} {cells(e['prompt'])}  on the prompt: {prompt_types}")
    if source:
        lines.insert(0, source)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Load the model, run the probe (and the prompt), print the heads."""
    _check_args(args)
    from neuroscope_tui.capture.probes import induction_probe, trace_ids
    from neuroscope_tui.capture.run import GenerationOptions, tokenize_prompt
    from neuroscope_tui.models.loader import load_model

    bundle = load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        device_map=args.device_map,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
    )
    a = bundle.anatomy
    _check_range(args, a.n_layers, a.n_heads, args.model)
    probe = head_scores(induction_probe(bundle, args.probe_length, seed=args.seed))
    prompt_scores = None
    if args.prompt is not None:
        ids = tokenize_prompt(bundle, args.prompt, GenerationOptions(max_new_tokens=0))
        every = tuple((layer, h) for layer in range(a.n_layers) for h in range(a.n_heads))
        keep = every if len(ids) <= PROMPT_PATTERN_LIMIT else ()
        prompt_scores = head_scores(trace_ids(bundle, ids, keep, prompt=args.prompt))
    entries = select_entries(head_entries(probe, prompt_scores), args)
    if args.json:
        # one head per line: easy to read, grep and diff, still one JSON document
        sys.stdout.write("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
        return 0
    source = (
        f"{args.model}: {a.n_layers} layers x {a.n_heads} heads; scores on the induction "
        f"probe ({args.probe_length} random tokens twice, seed {args.seed})"
    )
    print(visible(format_table(entries, source), newlines=True))  # the model name is the user's
    return 0
