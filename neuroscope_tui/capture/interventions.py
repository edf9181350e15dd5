"""What to change in the model while it runs: ablations, activation patches, steering vectors.

Interventions are data (frozen dataclasses, no torch here), so the app, the CLI, the trace and
the snapshot manifest can all hold, show and check them; `capture/intervening.py` applies them
through the recorder's hooks. Conventions:

- layers, heads and neurons count from 0; positions are absolute token positions (a generated
  token's position is the number of tokens before it);
- an Ablation's head is its slice of the attention output projection's input, a neuron is a
  column of the MLP down projection's input, a whole block is the attn / mlp module's output;
- a Patch's "resid" site at layer l is the residual stream *before* block l (the block's input);
  "head" and "mlp" are the same sites as the ablations;
- a Steering vector is added to the residual stream *after* block `layer` (the block's output).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, get_args

from neuroscope_tui.errors import NeuroscopeError

if TYPE_CHECKING:
    from neuroscope_tui.trace import ModelInfo

AblateMode = Literal["zero", "mean", "resample"]
AblateSite = Literal["head", "neuron", "attn", "mlp"]
PatchSite = Literal["resid", "head", "mlp"]


class InterventionError(NeuroscopeError):
    """An intervention that does not fit the model or the run (out of range, wrong width)."""


class SameAnswerError(InterventionError):
    """A patching sweep's target and foil are one token. Its message names the CLI's options;
    the app catches this class and names its form's fields instead."""


@dataclass(frozen=True)
class Ablation:
    """Switch something off: a head, an MLP neuron, or a whole attention / MLP block.

    mode "zero" writes zeros; "mean" writes the site's mean over the prompt's positions (of
    this run's prompt pass); "resample" writes the site's activation from `source`, a second
    prompt of the same token length (positions past its end keep their own activation).
    `positions` None means every position, generated tokens included.
    """

    site: AblateSite
    layer: int
    index: int | None = None
    mode: AblateMode = "zero"
    positions: tuple[int, ...] | None = None
    enabled: bool = True
    source: str = ""  # the resample prompt (mode "resample" only)


@dataclass(frozen=True)
class Patch:
    """Activation patching: at (layer, positions), write the activation `source` produced there."""

    site: PatchSite
    layer: int
    positions: tuple[int, ...]
    index: int | None = None  # the head, for site "head"
    source: str = ""  # the prompt whose activations are patched in (same token length)
    enabled: bool = True


@dataclass(frozen=True)
class Steering:
    """Add alpha * direction to the residual stream after block `layer`, at every position."""

    layer: int
    alpha: float
    direction: tuple[float, ...]  # d_model floats, stored as given (unit or not)
    label: str = ""  # where it came from: "file.safetensors:name" or "mean(A)-mean(B)"
    enabled: bool = True


Intervention = Ablation | Patch | Steering

_KINDS: dict[str, type] = {"ablate": Ablation, "patch": Patch, "steer": Steering}


def _positions_text(positions: Sequence[int] | None) -> str:
    if positions is None:
        return ""
    shown = ",".join(str(p) for p in positions[:6])
    more = f",… ({len(positions)})" if len(positions) > 6 else ""
    return f" @{shown}{more}"


def _site_text(site: str, layer: int, index: int | None) -> str:
    if site == "head":
        return f"L{layer}.H{index}"
    if site == "neuron":
        return f"L{layer}.N{index}"
    return f"{site} L{layer}"


def describe(iv: Intervention) -> str:
    """One line for humans: "ablate L18.H6 (mean)", "steer L12 +4.0 x refusal"."""
    off = "" if iv.enabled else " [off]"
    if isinstance(iv, Ablation):
        where = _site_text(iv.site, iv.layer, iv.index)
        return f"ablate {where} ({iv.mode}){_positions_text(iv.positions)}{off}"
    if isinstance(iv, Patch):
        where = _site_text(iv.site, iv.layer, iv.index)
        src = iv.source if len(iv.source) <= 24 else iv.source[:23] + "…"
        return f"patch {where}{_positions_text(iv.positions)} from {src!r}{off}"
    label = iv.label or f"{len(iv.direction)}-d vector"
    return f"steer L{iv.layer} {iv.alpha:+g} x {label}{off}"


def intervention_to_dict(iv: Intervention) -> dict[str, Any]:
    """A JSON-safe dict (tuples become lists) with a "kind" key: ablate, patch or steer."""
    kind = next(k for k, cls in _KINDS.items() if isinstance(iv, cls))
    out: dict[str, Any] = {"kind": kind}
    for f in fields(iv):
        value = getattr(iv, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise InterventionError(f"an intervention's {name} must be a whole number, not {v!r}")
    return v


def _int_tuple(name: str, v: Any) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)):
        raise InterventionError(f"an intervention's {name} must be a list of whole numbers")
    return tuple(_int(name, x) for x in v)


def intervention_from_dict(d: Mapping[str, Any]) -> Intervention:
    """The intervention `intervention_to_dict` wrote; InterventionError on anything else.

    Strict: an unknown kind, an unknown or missing field, or a value of the wrong type is
    refused in one sentence (a manifest is checked when it is opened, then trusted).
    """
    if not isinstance(d, Mapping):
        raise InterventionError("an intervention must be a JSON object")
    kind = d.get("kind")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InterventionError(
            f"unknown intervention kind {kind!r} (expected one of {', '.join(_KINDS)})"
        )
    known = {f.name for f in fields(cls)}
    extra = sorted(set(d) - known - {"kind"})
    if extra:
        raise InterventionError(f"unknown field {extra[0]!r} in a {kind} intervention")
    kw: dict[str, Any] = {}
    for name, v in d.items():
        if name == "kind":
            continue
        if name in ("layer",):
            kw[name] = _int(name, v)
        elif name == "index":
            kw[name] = None if v is None else _int(name, v)
        elif name == "positions":
            kw[name] = None if v is None and cls is Ablation else _int_tuple(name, v)
        elif name == "direction":
            if not isinstance(v, (list, tuple)) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v
            ):
                raise InterventionError("a steering direction must be a list of numbers")
            kw[name] = tuple(float(x) for x in v)
        elif name == "alpha":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InterventionError(f"a steering alpha must be a number, not {v!r}")
            kw[name] = float(v)
        elif name == "enabled":
            if not isinstance(v, bool):
                raise InterventionError("an intervention's enabled flag must be true or false")
            kw[name] = v
        elif name in ("site", "mode", "source", "label"):
            if not isinstance(v, str):
                raise InterventionError(f"an intervention's {name} must be text, not {v!r}")
            kw[name] = v
    try:
        iv = cls(**kw)
    except TypeError:
        need = [f.name for f in fields(cls) if f.name not in kw and f.default is MISSING]
        raise InterventionError(
            f"a {kind} intervention needs {', '.join(need) or 'more fields'}"
        ) from None
    _check_shape(iv)
    return iv


def _check_shape(iv: Intervention) -> None:
    """Checks that need no model: site and mode names, which sites take an index."""
    if isinstance(iv, Ablation):
        if iv.site not in get_args(AblateSite):
            raise InterventionError(
                f"cannot ablate {iv.site!r}: the sites are head, neuron, attn and mlp"
            )
        if iv.mode not in get_args(AblateMode):
            raise InterventionError(
                f"unknown ablation mode {iv.mode!r} (expected zero, mean or resample)"
            )
        if iv.site in ("head", "neuron") and iv.index is None:
            raise InterventionError(f"ablating a {iv.site} needs its index")
        if iv.site in ("attn", "mlp") and iv.index is not None:
            raise InterventionError(f"a whole {iv.site} block takes no index")
        if iv.mode == "resample" and not iv.source:
            raise InterventionError(
                "resample-ablation needs a second prompt to take activations from"
            )
    elif isinstance(iv, Patch):
        if iv.site not in get_args(PatchSite):
            raise InterventionError(f"cannot patch {iv.site!r}: the sites are resid, head and mlp")
        if iv.site == "head" and iv.index is None:
            raise InterventionError("patching a head needs its index")
        if iv.site != "head" and iv.index is not None:
            raise InterventionError(f"patching {iv.site} takes no index")
        if not iv.source:
            raise InterventionError("patching needs a second (corrupted or clean) prompt")
        if not iv.positions:
            raise InterventionError("patching needs at least one position")
    elif isinstance(iv, Steering):
        if not math.isfinite(iv.alpha):
            raise InterventionError(f"the steering alpha must be a finite number, not {iv.alpha}")
        if not iv.direction or not all(math.isfinite(x) for x in iv.direction):
            raise InterventionError(
                "the steering direction must be a non-empty vector of finite numbers"
            )
    else:
        raise InterventionError(f"not an intervention: {type(iv).__name__}")


def check_interventions(ivs: Sequence[Intervention], info: ModelInfo) -> None:
    """Refuse, in one sentence (InterventionError), any intervention that does not fit the model.

    Checks layers, heads and neurons against the model's shape, negative positions, and the
    width of steering directions. Positions past the end of a run are not errors (they never
    occur, so nothing happens); source prompts' token lengths are checked by the engine.
    """
    for iv in ivs:
        _check_shape(iv)
        what = describe(iv)
        if not 0 <= iv.layer < info.n_layers:
            raise InterventionError(
                f"layer {iv.layer} is out of range in {what!r}: the model has layers "
                f"0-{info.n_layers - 1}"
            )
        index = getattr(iv, "index", None)
        site = getattr(iv, "site", "")
        if site == "head" and not 0 <= index < info.n_heads:
            raise InterventionError(
                f"head {index} is out of range in {what!r}: layer {iv.layer} has heads "
                f"0-{info.n_heads - 1}"
            )
        if site == "neuron" and info.d_mlp and not 0 <= index < info.d_mlp:
            raise InterventionError(
                f"neuron {index} is out of range in {what!r}: the MLP has neurons "
                f"0-{info.d_mlp - 1}"
            )
        positions = getattr(iv, "positions", None) or ()
        if any(p < 0 for p in positions):
            raise InterventionError(f"positions count from 0; {what!r} has a negative one")
        if isinstance(iv, Steering) and len(iv.direction) != info.d_model:
            name = f" {iv.label}" if iv.label else ""
            raise InterventionError(
                f"the steering vector{name} has {len(iv.direction)} numbers but "
                f"the model's residual stream has {info.d_model}"
            )
