"""Watched modules: `--watch PATTERN` records any module's output, not just the fixed sites.

Patterns are globs (fnmatch, case-sensitive) over `model.named_modules()`, e.g.
`model.layers.*.mlp.act_fn` or `*.self_attn.q_proj`. `resolve_watch` turns them into module
names before the model runs and refuses a pattern that matches nothing, naming the closest
module names. A `Watcher` holds the forward hooks: `recording()` (capture/recorder.py)
registers them with the recorder's own, and `Recorder.flush()` takes their rows with the
other per-step arrays, so prompt and generated tokens get rows alike (trace.py's `watch.*`).

Per token and module the summaries are the recorder's own (`summarise_rows`): L2 norm,
max |x|, mean and the fraction of entries under `spec.near_zero`, over everything past the
token axis. A module's output must be [batch, tokens, ...] (or [tokens, width] where a model
flattens the batch); anything else is refused with a sentence on its first call.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Sequence

import torch

from neuroscope_tui.capture.memory import WatchSize
from neuroscope_tui.capture.recorder import _first_tensor, summarise_rows
from neuroscope_tui.errors import UsageError
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.text_safety import visible
from neuroscope_tui.trace import SUMMARY_STATS, CaptureSpec


def module_names(model: torch.nn.Module) -> list[str]:
    """Every named submodule of `model` (the root, named "", left out), in model order."""
    return [name for name, _ in model.named_modules() if name]


def closest_names(pattern: str, names: Sequence[str], n: int = 3) -> list[str]:
    """The module names most like `pattern` (difflib), wildcards read as a layer number."""
    # "model.layers.*.mlp" reads like "model.layers.0.mlp" to a person: compare it so
    probe = pattern.replace("*", "0").replace("?", "0")
    return difflib.get_close_matches(probe, list(names), n=n, cutoff=0.4)


def resolve_watch(model: torch.nn.Module, patterns: Sequence[str]) -> list[str]:
    """The module names `patterns` match, each once, in model order.

    Raises UsageError for a pattern that matches no module, naming the closest names.
    """
    names = module_names(model)
    hit: set[str] = set()
    for pattern in patterns:
        matched = fnmatch.filter(names, pattern) if pattern else []
        # fnmatch.filter folds case on some platforms; module names are case-sensitive
        matched = [name for name in matched if fnmatch.fnmatchcase(name, pattern)]
        if not matched:
            close = closest_names(pattern, names)
            hint = (
                "the closest module names are " + ", ".join(visible(c) for c in close)
                if close
                else "`neuroscope-tui info MODEL --modules` lists them"
            )
            raise UsageError(f"--watch {visible(pattern)} matches no module of the model; {hint}.")
        hit.update(matched)
    return [name for name in names if name in hit]


def watch_plan(model: torch.nn.Module, spec: CaptureSpec) -> tuple[list[str], set[int]]:
    """(the watched module names, the indices among them whose full rows are kept)."""
    names = resolve_watch(model, [*spec.watch, *spec.watch_full])
    full = set(resolve_watch(model, spec.watch_full)) if spec.watch_full else set()
    return names, {i for i, name in enumerate(names) if name in full}


def watch_size(bundle: LoadedModel, spec: CaptureSpec) -> WatchSize:
    """What `spec`'s watched modules add to a trace per token, for the memory estimate: the
    module count, and the full rows' width from one one-token pass (hooks note each width)."""
    names, full = watch_plan(bundle.model, spec)
    widths: dict[int, int] = {}
    if full:
        by_name = dict(bundle.model.named_modules())
        handles = []
        for i in full:

            def hook(module, args, output, i=i) -> None:
                try:
                    widths[i] = _first_tensor(output).numel()  # one token: numel is the width
                except TypeError:
                    widths[i] = 0  # refused when the run calls it; nothing to keep

            handles.append(by_name[names[i]].register_forward_hook(hook))
        try:
            first = bundle.tokenizer("The")["input_ids"][:1] or [0]
            with torch.inference_mode():
                bundle.model(input_ids=torch.tensor([first], device=bundle.device), use_cache=False)
        finally:
            for h in handles:
                h.remove()
    return WatchSize(modules=len(names), full_width=sum(widths.values()))


def token_rows(x: torch.Tensor, name: str, n_new: int) -> torch.Tensor:
    """x as [tokens, width]: x is [1, tokens, ...] or [tokens, width] (a flattened batch).

    Raises UsageError for any other shape: its rows would not be the tokens of the run.
    """
    if x.dim() >= 3 and x.shape[0] == 1 and x.shape[1] == n_new:
        return x[0].reshape(n_new, -1)
    if x.dim() == 2 and x.shape[0] == n_new:
        return x
    tokens = f" for {n_new} new tokens"
    raise UsageError(
        f"module {visible(name)} gives an output of shape {list(x.shape)}{tokens}, not one row "
        "per token ([batch, tokens, ...]); watch a module whose output follows the tokens."
    )


class Watcher:
    """Forward hooks on the watched modules; one step's summaries (and full rows) on the device.

    The hooks record only while armed: `n_new` is the number of tokens of the model's own
    forward pass, set by the run around that call and None otherwise (the logit lens runs the
    final norm again after it; a view's passes run while `paused()`, recorder.paused).
    """

    def __init__(
        self,
        names: list[str],
        modules: list[torch.nn.Module],
        full: set[int],
        near_zero: float,
        full_dtype: torch.dtype,
        paused: Callable[[], bool],
    ):
        self.names, self.modules, self.full = names, modules, full
        self.near_zero, self.full_dtype, self.paused = near_zero, full_dtype, paused
        self.n_new: int | None = None
        self._step: dict[int, tuple[dict[str, torch.Tensor], torch.Tensor | None]] = {}

    @classmethod
    def for_spec(
        cls, model: torch.nn.Module, spec: CaptureSpec, full_dtype: torch.dtype, paused
    ) -> Watcher:
        names, full = watch_plan(model, spec)
        by_name = dict(model.named_modules())
        modules = [by_name[name] for name in names]
        return cls(names, modules, full, spec.near_zero, full_dtype, paused)

    def register(self) -> list[torch.utils.hooks.RemovableHandle]:
        return [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.modules)]

    def _hook(self, index: int):
        name = self.names[index]

        def hook(module, args, output) -> None:
            if self.n_new is None or self.paused():
                return
            if index in self._step:
                # a second call in one pass would overwrite the first: no one row per token
                raise UsageError(
                    f"module {visible(name)} runs more than once per forward pass, so its "
                    "outputs have no one row per token; watch the module that calls it."
                )
            try:
                x = _first_tensor(output)
            except TypeError:
                raise UsageError(
                    f"module {visible(name)} gives a {type(output).__name__}, not a tensor; "
                    "watch a module whose output is a tensor."
                ) from None
            rows = token_rows(x.detach(), name, self.n_new)
            stats = summarise_rows(rows.float(), self.near_zero)
            kept = rows.to(self.full_dtype) if index in self.full else None
            self._step[index] = (stats, kept)

        return hook

    def flush(self) -> dict[str, torch.Tensor]:
        """This step's rows: watch.<stat> [M, new] and watch.full.<m> [new, width]."""
        if not self.names:
            return {}
        step, self._step = self._step, {}
        silent = [self.names[i] for i in range(len(self.names)) if i not in step]
        if silent:
            raise UsageError(
                f"module {visible(silent[0])} did not run in the model's forward pass, so it "
                "has no rows; watch a module the model calls for every token."
            )
        rows = {
            f"watch.{stat}": torch.stack([step[i][0][stat] for i in range(len(self.names))])
            for stat in SUMMARY_STATS
        }
        for i, (_, kept) in step.items():
            if kept is not None:
                rows[f"watch.full.{i}"] = kept
        return rows
