"""Sparse sampling of a capture, as the user asks it: which layers, which MLP neurons, how
full rows are stored, and the memory budget. No torch here.

`Sampling` holds the option texts as given (`--layers every:4`, `--neurons random:512:0`,
`--memory-budget 4GiB`); `check` refuses a bad one before any model loads, and `apply` turns
them into a `CaptureSpec` once the model's shape is known. `plan` then fits that spec to the
budget (capture/memory.py) before the model runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from neuroscope_tui.capture.memory import (
    Fitted,
    WatchSize,
    default_budget,
    estimate,
    fit_spec,
    host_available,
    parse_bytes,
)
from neuroscope_tui.errors import UsageError
from neuroscope_tui.trace import CaptureSpec, ModelInfo


@dataclass(frozen=True)
class Sampling:
    """The sampling options as typed: `layers` all | every:K | 0,4,8; `neurons` all |
    random:N[:SEED] | top:K | 12,34,...; `full_dtype` float32 | float16; `memory_budget` auto
    (a fraction of the free memory) | none | a size such as 4GiB."""

    layers: str = "all"
    neurons: str = "all"
    full_dtype: str = "float32"
    memory_budget: str = "auto"

    def check(self) -> None:
        """UsageError for option text that is wrong whatever the model is."""
        layer_choice(self.layers, None)
        neuron_choice(self.neurons, None)
        self.budget_bytes()
        if self.full_dtype not in ("float32", "float16"):
            raise UsageError(f"--full-dtype {self.full_dtype!r} must be float32 or float16")

    def budget_bytes(self) -> int | None:
        """The budget asked for in bytes; None for auto or none (see `plan`)."""
        text = self.memory_budget.strip().lower()
        if text in ("auto", "none"):
            return None
        try:
            return parse_bytes(text)
        except ValueError:
            raise UsageError(
                f"--memory-budget {self.memory_budget!r} must be a size such as 4GiB or 512MB, "
                "auto or none"
            ) from None

    def apply(self, spec: CaptureSpec, n_layers: int, d_mlp: int, model: str) -> CaptureSpec:
        """`spec` with these layers, neurons and storage; UsageError where the model's shape
        rules an option out."""
        layers = layer_choice(self.layers, n_layers, model)
        if layers is not None:
            full = spec.full_layers
            if full:
                outside = [layer for layer in full if layer not in layers]
                if outside:
                    raise UsageError(
                        f"--full-layers {outside[0]} is not among the layers kept by "
                        f"--layers {self.layers}; keep it or choose another"
                    )
            spec = replace(
                spec,
                layers=layers,
                pattern_heads=tuple(p for p in spec.pattern_heads if p[0] in layers),
            )
        subset, full_neurons, how, top_k = neuron_choice(self.neurons, d_mlp, model)
        spec = replace(
            spec,
            neuron_subset=subset,
            full_neurons=full_neurons,
            neuron_sampling=how,
            full_dtype=self.full_dtype,
        )
        return replace(spec, top_k=top_k) if top_k else spec


def layer_choice(text: str, n_layers: int | None, model: str = "") -> tuple[int, ...] | None:
    """`all` -> None, `every:K` -> (0, K, 2K, ...), `0,4,8` -> (0, 4, 8). With n_layers None
    only the syntax is checked."""
    value = text.strip().lower()
    if value == "all":
        return None
    if value.startswith("every:"):
        step = value.split(":", 1)[1]
        if not step.isdigit() or int(step) < 1:
            raise UsageError(f"--layers {text!r}: every:K needs a whole number K of 1 or more")
        return None if n_layers is None else tuple(range(0, n_layers, int(step)))
    try:
        layers = tuple(sorted({int(part) for part in value.split(",")}))
    except ValueError:
        raise UsageError(f"--layers {text!r} must be all, every:K, or numbers like 0,4,8") from None
    if any(layer < 0 for layer in layers):
        raise UsageError(f"--layers {text!r} has a negative layer number")
    if n_layers is not None and layers and layers[-1] >= n_layers:
        raise UsageError(f"--layers: {model} has layers 0 to {n_layers - 1}, not {layers[-1]}")
    return layers


def neuron_choice(
    text: str, d_mlp: int | None, model: str = ""
) -> tuple[tuple[int, ...] | None, bool, str, int]:
    """(neuron subset, keep full neuron rows?, how chosen, top-k or 0) for `--neurons`.

    `all`; `random:N[:SEED]` (N distinct neurons drawn with numpy's generator seeded SEED,
    default 0, sorted); `top:K` (no full rows: only each token's K largest |activations|,
    which every capture keeps); `12,34,...` (those neurons). With d_mlp None only the syntax
    is checked.
    """
    value = text.strip().lower()
    if value == "all":
        return None, True, "", 0
    kind, _, rest = value.partition(":")
    if kind == "top":
        if not rest.isdigit() or int(rest) < 1:
            raise UsageError(f"--neurons {text!r}: top:K needs a whole number K of 1 or more")
        return None, False, f"top:{int(rest)}", int(rest)
    if kind == "random":
        count, _, seed = rest.partition(":")
        if not count.isdigit() or int(count) < 1 or (seed and not seed.isdigit()):
            raise UsageError(
                f"--neurons {text!r}: random:N:SEED needs whole numbers, e.g. random:512:0"
            )
        n, s = int(count), int(seed or 0)
        if d_mlp is None:
            return None, True, f"random:{n}:{s}", 0
        if n > d_mlp:
            raise UsageError(f"--neurons {text!r}: {model} has {d_mlp} MLP neurons, not {n}")
        picked = np.random.default_rng(s).choice(d_mlp, size=n, replace=False)
        return tuple(int(i) for i in np.sort(picked)), True, f"random:{n}:{s}", 0
    try:
        subset = tuple(sorted({int(part) for part in value.split(",")}))
    except ValueError:
        raise UsageError(
            f"--neurons {text!r} must be all, random:N:SEED, top:K, or numbers like 12,34"
        ) from None
    if any(i < 0 for i in subset):
        raise UsageError(f"--neurons {text!r} has a negative neuron number")
    if d_mlp is not None and subset and subset[-1] >= d_mlp:
        raise UsageError(f"--neurons: {model} has neurons 0 to {d_mlp - 1}, not {subset[-1]}")
    return subset, True, "fixed", 0


def plan(
    info: ModelInfo,
    spec: CaptureSpec,
    n_prompt: int,
    max_new_tokens: int,
    sampling: Sampling,
    weights: int,
    watch: WatchSize | None = None,
) -> Fitted:
    """The spec to run for this budget (reduced if need be) and its estimate.

    Raises MemoryBudgetError, before the model runs, when even the smallest spec does not
    fit. `--memory-budget none` (or free memory that cannot be read) only estimates.
    """
    budget = sampling.budget_bytes()
    auto = sampling.memory_budget.strip().lower() == "auto"
    if budget is None and auto:
        budget = default_budget(info.device, weights)
    if budget is None:
        est = estimate(info, spec, n_prompt, max_new_tokens, weights=weights, watch=watch)
        return Fitted(spec, est, 0, [])
    host = host_available() if str(info.device).startswith("cuda") else None
    return fit_spec(
        info,
        spec,
        n_prompt,
        max_new_tokens,
        budget,
        weights=weights,
        host_budget=None if host is None else host // 2,
        watch=watch,
    )


def plan_for_model(
    bundle: Any, spec: CaptureSpec, n_prompt: int, max_new_tokens: int, sampling: Sampling
) -> Fitted:
    """`plan` for a loaded model (a LoadedModel): its record and its real weight bytes."""
    from neuroscope_tui.capture.memory import weight_bytes
    from neuroscope_tui.capture.run import model_info

    info = model_info(bundle)
    watch = None
    if spec.watch or spec.watch_full:
        from neuroscope_tui.capture.watch import watch_size

        watch = watch_size(bundle, spec)
    weights = weight_bytes(bundle.model)
    return plan(info, spec, n_prompt, max_new_tokens, sampling, weights, watch)


def sampling_from(args: Any) -> Sampling:
    """The Sampling of parsed command-line arguments (checked)."""
    sampling = Sampling(
        layers=getattr(args, "layers", "all"),
        neurons=getattr(args, "neurons", "all"),
        full_dtype=getattr(args, "full_dtype", "float32"),
        memory_budget=getattr(args, "memory_budget", "auto"),
    )
    sampling.check()
    return sampling
