"""Command-line options shared by every command that loads a model."""

from __future__ import annotations

import argparse
import math

from neuroscope_tui.errors import UsageError
from neuroscope_tui.trace import CaptureSpec

DEFAULT_MODEL = "smollm2"


def add_model_arguments(parser: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """MODEL and the options that say how to load it."""
    if positional:
        parser.add_argument(
            "model",
            nargs="?",
            default=DEFAULT_MODEL,
            metavar="MODEL",
            help="hub id (gpt2), local folder, .gguf file, or alias (default: smollm2, offline)",
        )
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N|mps (default auto)")
    parser.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"]
    )
    parser.add_argument(
        "--device-map", default=None, choices=["auto"], help="spread a large model over GPUs"
    )
    parser.add_argument("--revision", default=None, help="hub branch, tag or commit")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow the repo's own model code"
    )


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """How a run generates after the prompt."""
    parser.add_argument("--max-new-tokens", type=int, default=32, metavar="N")
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="0 (default) decodes greedily"
    )
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None, help=f"0 to {MAX_SEED}")
    add_chat_argument(parser)


MAX_SEED = 2**64 - 1  # the largest seed torch.Generator.manual_seed takes


def add_chat_argument(parser: argparse.ArgumentParser) -> None:
    """--chat: wrap the prompt in the model's own chat template."""
    parser.add_argument(
        "--chat",
        action="store_true",
        help="wrap the prompt in the model's chat template as a user turn (instruct models)",
    )


def check_generation(args: argparse.Namespace) -> None:
    """Refuse generation values that would fail deep inside a run (nan, inf, a seed torch
    cannot take) with one sentence, before any model loads."""
    if args.max_new_tokens < 0:
        raise UsageError("--max-new-tokens must be 0 or more")
    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise UsageError(
            f"--temperature must be 0 (greedy) or a positive number, not {args.temperature}"
        )
    if not math.isfinite(args.top_p) or not 0 < args.top_p <= 1:
        raise UsageError(f"--top-p must be above 0 and at most 1, not {args.top_p}")
    check_seed(args.seed)


def check_seed(seed: int | None, option: str = "--seed") -> None:
    """A seed is a whole number from 0 to 2**64 - 1 (what torch and numpy both take)."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UsageError(f"{option} must be a whole number from 0 to {MAX_SEED}, not {seed}")


def loader_options(args: argparse.Namespace) -> dict[str, object]:
    """The keyword arguments of `load_model` given by the model options above."""
    return {
        "device": args.device,
        "dtype": args.dtype,
        "device_map": args.device_map,
        "revision": args.revision,
        "trust_remote_code": args.trust_remote_code,
    }


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    """What a run records (the CaptureSpec) and what to do with a prompt past the context."""
    parser.add_argument(
        "--full-layers",
        default="all",
        metavar="all|none|0,5,9",
        help="layers whose full residual (and neuron) vectors are kept (default all)",
    )
    parser.add_argument(
        "--heads",
        default="",
        metavar="L.H,...",
        help="heads whose full attention patterns are kept, e.g. 0.3,5.1 (default none)",
    )
    parser.add_argument("--no-lens", action="store_true", help="skip the per-layer logit lens")
    parser.add_argument(
        "--no-layer-patterns",
        action="store_true",
        help="skip each layer's head-averaged attention pattern (kept by default for the flow "
        "view; it costs layers x tokens^2 floats)",
    )
    parser.add_argument(
        "--too-long",
        default="refuse",
        choices=["refuse", "truncate"],
        help="a prompt past the model's context: refuse it (default) or keep its last tokens",
    )


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    """--watch and --watch-full: modules whose outputs are recorded (capture/watch.py)."""
    parser.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="PATTERN",
        help="also record per-token summaries of the modules PATTERN matches (a glob over "
        "the model's module names, e.g. 'model.layers.*.mlp.act_fn'; repeatable; "
        "`info MODEL --modules` lists them)",
    )
    parser.add_argument(
        "--watch-full",
        action="append",
        default=[],
        metavar="PATTERN",
        help="as --watch, and keep those modules' full output rows too (repeatable)",
    )


def watch_patterns(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    """The CaptureSpec's watch fields from --watch / --watch-full; UsageError for an empty one."""
    fields = {}
    for option, key in (("--watch", "watch"), ("--watch-full", "watch_full")):
        patterns = tuple(getattr(args, key, None) or ())
        if any(not p.strip() for p in patterns):
            raise UsageError(f"{option} needs a pattern, for example 'model.layers.*.mlp'")
        fields[key] = tuple(dict.fromkeys(p.strip() for p in patterns))
    return fields


def parse_layer_list(text: str) -> tuple[int, ...] | None:
    """`all` -> None (every layer), `none` -> (), `0,5,9` -> (0, 5, 9); UsageError otherwise."""
    value = text.strip().lower()
    if value == "all":
        return None
    if value in ("none", ""):
        return ()
    try:
        layers = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise UsageError(
            f"--full-layers {text!r} must be all, none, or layer numbers like 0,5,9"
        ) from None
    if any(layer < 0 for layer in layers):
        raise UsageError(f"--full-layers {text!r} has a negative layer number")
    return tuple(sorted(set(layers)))


def parse_heads(text: str) -> tuple[tuple[int, int], ...]:
    """`0.3,5.1` -> ((0, 3), (5, 1)); UsageError for anything else."""
    heads: list[tuple[int, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        layer, dot, head = part.partition(".")
        if not dot or not layer.isdigit() or not head.isdigit():
            raise UsageError(f"--heads {part!r} must be LAYER.HEAD, for example 0.3")
        heads.append((int(layer), int(head)))
    return tuple(dict.fromkeys(heads))


def capture_spec(args: argparse.Namespace, n_layers: int, n_heads: int, model: str) -> CaptureSpec:
    """The CaptureSpec the capture options ask for, checked against the model's shape."""
    full = parse_layer_list(args.full_layers)
    heads = parse_heads(args.heads)
    for layer in full or ():
        if layer >= n_layers:
            raise UsageError(f"--full-layers: {model} has layers 0 to {n_layers - 1}, not {layer}")
    for layer, head in heads:
        if layer >= n_layers or head >= n_heads:
            raise UsageError(
                f"--heads {layer}.{head}: {model} has layers 0 to {n_layers - 1} and heads "
                f"0 to {n_heads - 1}"
            )
    if not getattr(args, "no_layer_patterns", False):
        # head -1 is the mean over a layer's heads: what attention rollout and flow need
        heads = heads + tuple((layer, -1) for layer in range(n_layers))
    return CaptureSpec(
        full_layers=full,
        pattern_heads=heads,
        lens_positions=() if args.no_lens else None,
        **watch_patterns(args),
    )


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Sparse sampling and the memory budget (capture/sampling.py reads them)."""
    parser.add_argument(
        "--layers",
        default="all",
        metavar="all|every:K|0,4,8",
        help="layers recorded (default all); every:4 keeps every 4th layer",
    )
    parser.add_argument(
        "--neurons",
        default="all",
        metavar="all|random:N:SEED|top:K|12,34",
        help="MLP neurons kept in full rows: all (default), N drawn at random with SEED, only "
        "each token's top K (no full rows), or the neurons listed",
    )
    parser.add_argument(
        "--full-dtype",
        default="float32",
        choices=["float32", "float16"],
        help="how full residual and neuron rows are stored (float16 halves them)",
    )
    parser.add_argument(
        "--memory-budget",
        default="auto",
        metavar="SIZE|auto|none",
        help="memory the run may take, e.g. 4GiB (default auto: half of what is free on the "
        "model's device, plus the weights); the capture is reduced to fit, or refused",
    )
