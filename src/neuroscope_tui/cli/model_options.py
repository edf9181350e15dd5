"""Command-line options shared by every command that loads a model."""

from __future__ import annotations

import argparse

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
    parser.add_argument("--seed", type=int, default=None)
