"""Command-line options that change the model while it runs: --ablate, --steer and friends.

Syntax is checked before the model loads (`check_intervention_options`), ranges and widths
once it has (`interventions_from_args` -> `check_interventions`), so every mistake is one
sentence and exit 2, and nothing is written. No torch at module level.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from neuroscope_tui.capture.interventions import Ablation, Intervention, Steering
from neuroscope_tui.errors import UsageError
from neuroscope_tui.prompt_sets import read_prompt_file

MODES = ("zero", "mean", "resample")


def add_intervention_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("interventions (applied to the prompt and every token)")
    group.add_argument(
        "--ablate",
        action="append",
        default=[],
        metavar="L.H[,L.H]",
        help="switch off attention heads, e.g. 18.6,17.3 (layer.head)",
    )
    group.add_argument(
        "--ablate-neuron",
        action="append",
        default=[],
        metavar="L:N[,L:N]",
        help="switch off MLP neurons, e.g. 12:341 (layer:neuron)",
    )
    group.add_argument(
        "--ablate-block",
        action="append",
        default=[],
        metavar="attn:L|mlp:L",
        help="switch off a whole attention or MLP block, e.g. attn:5",
    )
    group.add_argument(
        "--ablate-mode",
        choices=MODES,
        default="zero",
        help="zero (default), mean (over the prompt's positions) or resample (--resample-prompt)",
    )
    group.add_argument(
        "--ablate-positions",
        default=None,
        metavar="P,P",
        help="ablate only at these token positions (default: every position)",
    )
    group.add_argument(
        "--resample-prompt",
        default=None,
        metavar="TEXT",
        help="with --ablate-mode resample: the prompt (same token length) to take values from",
    )
    group.add_argument(
        "--steer",
        action="append",
        default=[],
        metavar="FILE[:NAME]@L:ALPHA",
        help="add ALPHA x a vector (a safetensors file of one [d_model] tensor, or its tensor "
        "NAME) to the residual stream after block L; a concept file (concept fit) gives its "
        "layer-L difference-of-means direction, unit length",
    )
    group.add_argument(
        "--steer-diff",
        action="append",
        default=[],
        metavar="A.txt:B.txt@L:ALPHA",
        help="add ALPHA x (mean of A's prompts - mean of B's), the residual stream after "
        "block L at each prompt's last token (one prompt a line in each file)",
    )
    group.add_argument(
        "--side-by-side",
        action="store_true",
        help="also run the prompt without the interventions and keep the per-token logit "
        "difference in the snapshot (export ... interventions)",
    )


def _int(text: str, what: str, example: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(
            f"{what} {text!r} is not a whole number; write it like {example}"
        ) from None


def _pairs(values: list[str], sep: str, what: str, example: str) -> list[tuple[int, int]]:
    out = []
    for value in values:
        for item in value.split(","):
            left, mark, right = item.strip().partition(sep)
            if not mark:
                raise UsageError(f"{what} {item.strip()!r} needs the form {example}")
            out.append((_int(left, what, example), _int(right, what, example)))
    return out


def _blocks(values: list[str]) -> list[tuple[str, int]]:
    out = []
    for value in values:
        for item in value.split(","):
            kind, mark, layer = item.strip().partition(":")
            if not mark or kind not in ("attn", "mlp"):
                raise UsageError(f"--ablate-block {item.strip()!r} needs the form attn:5 or mlp:5")
            out.append((kind, _int(layer, "--ablate-block layer", "attn:5")))
    return out


def _positions(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    return tuple(_int(p.strip(), "--ablate-positions", "3,4") for p in text.split(","))


def _steer_parts(text: str) -> tuple[Path, str, int, float]:
    """FILE[:NAME]@LAYER:ALPHA -> (file, name or "", layer, alpha)."""
    source, mark, where = text.rpartition("@")
    layer_text, colon, alpha_text = where.partition(":")
    if not mark or not colon or not source:
        raise UsageError(
            f"--steer {text!r} needs the form FILE@LAYER:ALPHA, e.g. v.safetensors@12:4"
        )
    layer = _int(layer_text, "--steer layer", "v.safetensors@12:4")
    try:
        alpha = float(alpha_text)
    except ValueError:
        raise UsageError(f"--steer alpha {alpha_text!r} is not a number") from None
    if not math.isfinite(alpha):
        raise UsageError(f"--steer alpha {alpha_text!r} is not a finite number")
    path, name = Path(source), ""
    if not path.exists() and ":" in source:
        head, _, name = source.rpartition(":")
        path = Path(head)
    if not path.is_file():
        raise UsageError(f"there is no steering vector file {path}; check the path")
    return path, name, layer, alpha


def _steer_diff_parts(text: str) -> tuple[Path, Path, int, float]:
    """A.txt:B.txt@LAYER:ALPHA -> (file A, file B, layer, alpha); both files must exist."""
    files, mark, where = text.rpartition("@")
    first, colon, second = files.partition(":")
    if not mark or not colon or not first or not second:
        raise UsageError(f"--steer-diff {text!r} needs the form A.txt:B.txt@LAYER:ALPHA")
    _, _, layer, alpha = _steer_parts(f"{first}@{where}")
    for path in (Path(first), Path(second)):
        if not path.is_file():
            raise UsageError(f"there is no prompt file {path}; check the path")
    return Path(first), Path(second), layer, alpha


def _prompt_lines(path: Path) -> list[str]:
    return read_prompt_file(path)


def read_vector(path: Path, name: str) -> tuple[tuple[float, ...], str]:
    """The 1-D tensor `name` (or the file's only tensor) of a safetensors file, and a label."""
    from safetensors.numpy import load_file

    try:
        tensors: dict[str, Any] = load_file(str(path))
    except Exception as err:  # not safetensors, truncated, a dtype numpy lacks
        raise UsageError(
            f"{path} is not a readable safetensors file ({type(err).__name__})"
        ) from None
    if name:
        if name not in tensors:
            held = ", ".join(sorted(tensors)[:8]) or "none"
            raise UsageError(f"{path} has no tensor {name!r} (it holds {held})")
        vector = tensors[name]
    elif len(tensors) == 1:
        name, vector = next(iter(tensors.items()))
    else:
        held = ", ".join(sorted(tensors)[:8]) or "none"
        raise UsageError(
            f"{path} holds {len(tensors)} tensors ({held}); pick one with FILE:NAME@L:A"
        )
    if vector.ndim != 1:
        raise UsageError(
            f"the steering vector {path.name}:{name} has shape {list(vector.shape)}; "
            "it must be one [d_model] vector"
        )
    return tuple(float(x) for x in vector.astype("float64")), f"{path.name}:{name}"


def is_concept_file(path: Path) -> bool:
    """Whether `path` is a safetensors file whose header names it a neuroscope concept."""
    from neuroscope_tui.concept_file import MANIFEST_KEY
    from neuroscope_tui.safetensors_file import HeaderProblem, read_header

    try:
        return MANIFEST_KEY in read_header(path).metadata
    except (HeaderProblem, OSError):
        return False  # read_vector says what is wrong with it


def concept_direction(path: Path, layer: int) -> tuple[tuple[float, ...], str]:
    """A concept file's unit difference-of-means direction at `layer`, and a label that names
    the concept (the model's width is checked with the other interventions)."""
    from neuroscope_tui.concept_file import load_concept
    from neuroscope_tui.errors import ConceptError
    from neuroscope_tui.safetensors_file import shown

    try:
        concept = load_concept(path)
    except ConceptError as err:
        raise UsageError(str(err)) from None
    n_layers = concept.manifest.model.n_layers
    if not 0 <= layer < n_layers:
        raise UsageError(
            f"the concept {shown(concept.name)} ({path.name}) has layers 0-{n_layers - 1}, "
            f"not layer {layer}; steer at one of those"
        )
    direction = concept.direction[layer].astype("float64")
    norm = float((direction**2).sum() ** 0.5)
    if norm > 0:  # stored unit length; renormalised so alpha is exactly a distance
        direction = direction / norm
    return tuple(float(x) for x in direction), f"concept {concept.name}"


def check_intervention_options(args: argparse.Namespace) -> None:
    """Everything that is wrong whatever the model is (before it loads)."""
    _pairs(args.ablate, ".", "--ablate head", "18.6")
    _pairs(args.ablate_neuron, ":", "--ablate-neuron", "12:341")
    _blocks(args.ablate_block)
    _positions(args.ablate_positions)
    for text in args.steer:
        path, name, layer, _ = _steer_parts(text)
        if not name and is_concept_file(path):
            concept_direction(path, layer)  # a layer the concept lacks: before the model loads
    for text in args.steer_diff:
        first, second, _, _ = _steer_diff_parts(text)
        _prompt_lines(first), _prompt_lines(second)
    if args.ablate_mode == "resample" and not args.resample_prompt:
        raise UsageError("--ablate-mode resample needs --resample-prompt TEXT to take values from")
    if args.resample_prompt is not None and args.ablate_mode != "resample":
        raise UsageError("--resample-prompt only means something with --ablate-mode resample")
    if args.side_by_side and not has_interventions(args):
        raise UsageError("--side-by-side compares against interventions; add --ablate or --steer")


def has_interventions(args: argparse.Namespace) -> bool:
    return bool(
        args.ablate or args.ablate_neuron or args.ablate_block or args.steer or args.steer_diff
    )


def interventions_from_args(args: argparse.Namespace, bundle: Any = None) -> list[Intervention]:
    """The interventions the options ask for (ranges are checked against the model later;
    `bundle`, the loaded model, computes --steer-diff directions)."""
    mode, source = args.ablate_mode, args.resample_prompt or ""
    positions = _positions(args.ablate_positions)
    common = dict(mode=mode, positions=positions, source=source)
    out: list[Intervention] = []
    out += [
        Ablation("head", layer, head, **common)
        for layer, head in _pairs(args.ablate, ".", "--ablate head", "18.6")
    ]
    out += [
        Ablation("neuron", layer, n, **common)
        for layer, n in _pairs(args.ablate_neuron, ":", "--ablate-neuron", "12:341")
    ]
    out += [Ablation(kind, layer, **common) for kind, layer in _blocks(args.ablate_block)]
    for text in args.steer:
        path, name, layer, alpha = _steer_parts(text)
        if not name and is_concept_file(path):
            vector, label = concept_direction(path, layer)
        else:
            vector, label = read_vector(path, name)
        out.append(Steering(layer, alpha, vector, label=label))
    for text in args.steer_diff:
        out.append(_mean_difference(bundle, *_steer_diff_parts(text)))
    return out


def _mean_difference(bundle: Any, first: Path, second: Path, layer: int, alpha: float) -> Steering:
    from neuroscope_tui.capture.intervening import difference_of_means
    from neuroscope_tui.capture.run import GenerationOptions, tokenize_prompt

    n_layers = bundle.anatomy.n_layers
    if not 0 <= layer < n_layers:
        raise UsageError(
            f"--steer-diff layer {layer} is out of range: the model has layers 0-{n_layers - 1}"
        )
    options = GenerationOptions()  # the prompts as written (no chat template)
    sets = [
        [tokenize_prompt(bundle, p, options) for p in _prompt_lines(path)]
        for path in (first, second)
    ]
    direction = difference_of_means(bundle, sets[0], sets[1], layer)
    label = f"mean({first.name})-mean({second.name})"
    return Steering(layer, alpha, tuple(float(x) for x in direction), label=label)
