"""MLP neuron health over a prompt set: how often each neuron is active, and how often flat.

`NeuronObserver` is an observer for `recording()` (capture/recorder.py): a forward hook on each
MLP's activation module (anatomy.activation) sees the pre-activation x and f(x) of every token.
Per layer it keeps, on the model's device, [N] counters: tokens where |f(x)| > threshold,
tokens where |f'(x)| < flat_slope, the sum of f(x) and the largest |f(x)|; `health()` copies
them to the host once, at the end. f'(x) is a central finite difference through the model's
own activation module (called with `.forward`, so no hook fires again), so any activation
works, including ones we have never seen. Where a layer's activation module is unknown, every
layer is counted on the down projection's input instead (for a gated MLP that is f(gate) * up)
and the flat fraction is NaN: the slope of an unknown function cannot be taken.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from neuroscope_tui.analysis.diagnostics.inputs import NeuronHealth
from neuroscope_tui.capture.anatomy import Anatomy
from neuroscope_tui.capture.recorder import _first_tensor

# |f(x)| above this counts as active. SiLU and GELU never reach exactly 0 on the negative
# side, so "never active" means "never above 1e-3": SiLU(x) is below it only for |x| < 2e-3
# or x < -9, GELU for x < -3.9 or |x| < 2e-3.
ACTIVE_THRESHOLD = 1e-3
# |f'(x)| below this is the flat part of f: ReLU's negative side, SiLU below about -6.3,
# GELU below about -2.9, tanh and sigmoid at either end.
FLAT_SLOPE = 1e-2
# finite-difference step, relative to max(1, |x|): float32 central differences keep an error
# of about 1e-4 on the slope, well under FLAT_SLOPE
_STEP = 1e-3
NO_ACTIVATION = "down projection input (no activation module)"


def activation_name(anatomy: Anatomy) -> str:
    """The activation's class name when every layer has a module, else NO_ACTIVATION."""
    acts = anatomy.activation
    if acts and len(acts) == anatomy.n_layers and all(a is not None for a in acts):
        names = sorted({type(a).__name__ for a in acts})
        return "/".join(names)
    return NO_ACTIVATION


def slope(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """f'(x) of the activation `module` at x (float32), by a central finite difference."""
    h = _STEP * x.abs().clamp_min(1.0)
    return (module.forward(x + h) - module.forward(x - h)) / (2 * h)


class _LayerStats:
    """One layer's counters, on the device of the first rows it saw.

    float32 (exact counts up to 2**24 tokens; float64 is missing on some devices). Made
    outside inference mode, so the same observer may serve a run (inference mode) and any
    later pass.
    """

    def __init__(self, width: int, device: torch.device):
        with torch.inference_mode(False):
            self.active = torch.zeros(width, device=device)
            self.flat = torch.zeros(width, device=device)
            self.total = torch.zeros(width, device=device)
            self.max_abs = torch.zeros(width, device=device)
            self.nan = torch.zeros(width, device=device)
        self.tokens = 0


class NeuronObserver:
    """Counts every MLP neuron's activity over all the forward passes it is registered for.

    Register it through `recording(..., observer=NeuronObserver(anatomy))` (or `run(...,
    observer=...)`), run the prompts, then call `health()`. Every hooked call adds its tokens.
    """

    def __init__(
        self,
        anatomy: Anatomy,
        threshold: float = ACTIVE_THRESHOLD,
        flat_slope: float = FLAT_SLOPE,
    ):
        self.anatomy = anatomy
        self.threshold = threshold
        self.flat_slope = flat_slope
        self.activation = activation_name(anatomy)
        self.use_activation = self.activation != NO_ACTIVATION
        self.stats: dict[int, _LayerStats] = {}

    def register(self, anatomy: Anatomy) -> list[torch.utils.hooks.RemovableHandle]:
        handles = []
        for layer in range(anatomy.n_layers):
            if self.use_activation:
                act = anatomy.activation[layer]
                assert act is not None
                handles.append(act.register_forward_hook(self._activation_hook(layer, act)))
            else:
                handles.append(
                    anatomy.down_proj[layer].register_forward_pre_hook(self._input_hook(layer))
                )
        return handles

    def _layer(self, layer: int, fx: torch.Tensor) -> _LayerStats:
        st = self.stats.get(layer)
        if st is None:
            st = self.stats[layer] = _LayerStats(fx.shape[-1], fx.device)
        return st

    def _add(self, layer: int, fx: torch.Tensor, flat: torch.Tensor | None) -> None:
        """Add rows fx [..., N] (and the flat mask [..., N]) to the layer's counters."""
        fx = fx.detach().reshape(-1, fx.shape[-1]).float()  # [T, N]
        st = self._layer(layer, fx)
        mag = fx.abs()
        st.active += (mag > self.threshold).sum(0)
        st.nan += mag.isnan().sum(0)
        st.total += fx.sum(0)
        # in place (the counters stay normal tensors); torch.maximum propagates NaN, so a
        # neuron that produced NaN shows NaN, not a plausible maximum
        torch.maximum(st.max_abs, mag.amax(0), out=st.max_abs)
        if flat is not None:
            st.flat += flat.reshape(-1, flat.shape[-1]).sum(0)
        st.tokens += fx.shape[0]

    def _activation_hook(self, layer: int, module: nn.Module):
        def hook(mod, args, output):
            x = _first_tensor(args).detach().float()
            fx = _first_tensor(output)
            with torch.no_grad():
                flat = slope(module, x).abs() < self.flat_slope
                self._add(layer, fx, flat)

        return hook

    def _input_hook(self, layer: int):
        def hook(mod, args):
            with torch.no_grad():
                self._add(layer, _first_tensor(args), None)

        return hook

    def health(self) -> NeuronHealth:
        """The counters as NeuronHealth [L, N] (one copy to the host per layer and counter).

        Layers never seen (no tokens) hold NaN; a width smaller than the widest is NaN-padded;
        a neuron that produced NaN on any token has NaN fractions (it is broken, not dead).
        """
        n_layers = self.anatomy.n_layers
        width = max([st.active.shape[0] for st in self.stats.values()] or [self.anatomy.d_mlp])
        nan = np.full((n_layers, width), np.nan, dtype=np.float32)
        active, flat, max_abs, mean = nan.copy(), nan.copy(), nan.copy(), nan.copy()
        n_tokens = 0
        for layer, st in self.stats.items():
            if st.tokens == 0:
                continue
            n = st.active.shape[0]
            # a neuron that produced NaN is broken, not dead or flat: NaN (numerics reports it)
            broken = st.nan.cpu().numpy() > 0
            active[layer, :n] = np.where(broken, np.nan, (st.active / st.tokens).cpu().numpy())
            if self.use_activation:
                flat[layer, :n] = np.where(broken, np.nan, (st.flat / st.tokens).cpu().numpy())
            max_abs[layer, :n] = st.max_abs.cpu().numpy()
            mean[layer, :n] = (st.total / st.tokens).cpu().numpy()
            n_tokens = max(n_tokens, st.tokens)
        return NeuronHealth(
            active_frac=active,
            flat_frac=flat,
            max_abs=max_abs,
            mean=mean,
            n_tokens=n_tokens,
            threshold=self.threshold,
            flat_slope=self.flat_slope,
            activation=self.activation,
        )
