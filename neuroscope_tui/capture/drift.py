"""Measure how a base model's checkpoints drifted from it, one model in memory at a time.

`measure_drift(checkpoints, prompts)` takes each input in turn (the base first): a model is
loaded, its summaries of the prompt set captured (`drift_summary.py`: residual rows, head and
neuron means, next-token log-probs, lens top-1), and freed before the next is loaded; the full
summaries are kept for the base and the previous model only. After a checkpoint's capture its
weights are compared tensor by tensor with the base's and the previous model's files
(`drift_weights.py`), so two models are never in memory at once.

A snapshot input (a saved run) fixes the prompt: the comparison runs on that snapshot's prompt
alone, every model runs it, and the snapshot gives the activation measures it holds; its
weights and KL (a snapshot keeps only the top-k of the next-token distribution) are named in
`skipped`, with every other measure it lacks.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from neuroscope_tui.analysis import drift as measures
from neuroscope_tui.analysis.drift_record import HEAD_SCORE_NAMES, Checkpoint, DriftResult
from neuroscope_tui.capture.drift_summary import (
    SPEC,
    SUMMARY_TOKENS,
    ModelSummary,
    head_type_letters,
    lens_top1,
    summarise_model,
    summarise_snapshot,
)
from neuroscope_tui.capture.drift_weights import block_of, natural_key, weight_change
from neuroscope_tui.errors import UsageError
from neuroscope_tui.models.checkpoints import NoWeightFiles, check_compatible, weight_files
from neuroscope_tui.models.loader import load_model
from neuroscope_tui.trace import Trace

__all__ = ["SPEC", "SUMMARY_TOKENS", "lens_top1", "measure_drift", "summarise_model"]

_SHAPE = ("architecture", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_mlp", "vocab_size")
Progress = Callable[[float, str], None]


def _same_shape(base: ModelSummary, other: ModelSummary, label: str) -> None:
    """Refuse an input that turned out (once loaded) to differ from the base, or that reads
    the prompts as other tokens: its rows would not line up with the base's."""
    for key in _SHAPE:
        if base.info.get(key) != other.info.get(key):
            raise UsageError(
                f"{label} cannot be compared with the base: its {key} is "
                f"{other.info.get(key)}, the base's is {base.info.get(key)}"
            )
    if base.ids != other.ids:
        raise UsageError(
            f"{label} reads the prompts as other tokens than the base (a different tokenizer, "
            "or a snapshot of another prompt); drift compares inputs on the same tokens"
        )


def _compare(
    arrays: dict[str, np.ndarray], c: int, cur: ModelSummary, ref: ModelSummary, to: str
) -> None:
    """Fill checkpoint c's row of the activation measures against `ref` ("base" or "prev");
    a measure either side lacks stays NaN (measure_drift names the reason)."""
    if cur.resid is not None and ref.resid is not None:
        for layer in range(cur.resid.shape[0]):
            x, y = ref.resid[layer], cur.resid[layer]
            arrays[f"cka.{to}"][c, layer] = measures.linear_cka(x, y)
            arrays[f"cos.{to}"][c, layer] = measures.mean_cosine(x, y)
    if cur.logp is not None and ref.logp is not None:
        for p, (lp_ref, lp) in enumerate(zip(ref.logp, cur.logp, strict=True)):
            arrays[f"kl.{to}"][c, p] = measures.mean_kl(lp_ref, lp)
    if to == "base" and cur.lens_top1 is not None and ref.lens_top1 is not None:
        agree = measures.lens_agreement(ref.lens_top1, cur.lens_top1)
        arrays["lens.agree.base"][c] = agree
        arrays["lens.split.base"][c] = measures.lens_split(agree)


class _Weights:
    """The weight measures, filled checkpoint by checkpoint from the models' files."""

    def __init__(self, n_ckpt: int, n_layers: int):
        self.n_ckpt, self.n_layers = n_ckpt, n_layers
        self.blocks = {to: np.full((n_ckpt, n_layers), np.nan) for to in ("base", "prev")}
        self.modules: dict[str, dict[str, np.ndarray]] = {"base": {}, "prev": {}}
        self.files: list[list | None] = []  # per model: its safetensors files, None if none
        self.skipped: dict[str, str] = {}

    def add_model(self, ckpt: Checkpoint, source: str) -> None:
        if ckpt.kind == "snapshot":
            self.files.append(None)
            self.skipped[f"weights of {ckpt.label}"] = "a snapshot holds no weights"
            return
        try:
            self.files.append(weight_files(source))
        except NoWeightFiles as err:
            self.files.append(None)
            self.skipped[f"weights of {ckpt.label}"] = str(err)

    def compare(self, c: int, label: str, on_tensor: Callable[[int, int], None]) -> None:
        """Checkpoint c (model c + 1) against the base (model 0) and the previous (model c)."""
        mine, base, prev = self.files[c + 1], self.files[0], self.files[c]
        if mine is None or base is None:
            return
        refs = {"base": base} if prev is None or prev == base else {"base": base, "prev": prev}
        try:
            got = dict(zip(refs, weight_change(mine, list(refs.values()), self.n_layers,
                                               on_tensor=on_tensor), strict=True))  # fmt: skip
        except NoWeightFiles as err:
            self.skipped[f"weights of {label}"] = str(err)
            return
        if "prev" not in got and prev is not None:
            got["prev"] = got["base"]  # the previous model is the base
        for to, change in got.items():
            self.blocks[to][c] = change.blocks
            for module, value in change.modules.items():
                row = self.modules[to].setdefault(module, np.full(self.n_ckpt, np.nan))
                row[c] = value
            if change.problems:
                more = f" and {len(change.problems) - 1} more" if len(change.problems) > 1 else ""
                self.skipped[f"weights of {label} vs {to}"] = change.problems[0] + more

    def into(self, arrays: dict[str, np.ndarray]) -> list[str]:
        """Put the measured arrays into `arrays`; the module names (W axis)."""
        names = sorted(set(self.modules["base"]) | set(self.modules["prev"]), key=_module_order)
        if not names or np.isnan(self.blocks["base"]).all():
            self.skipped.setdefault("weights", "no checkpoint's weights could be compared")
            return []
        for to in ("base", "prev"):
            arrays[f"weights.{to}"] = self.blocks[to].astype(np.float32)
            mods = np.full((self.n_ckpt, len(names)), np.nan, dtype=np.float32)
            for w, name in enumerate(names):
                if name in self.modules[to]:
                    mods[:, w] = self.modules[to][name]
            arrays[f"weights.module.{to}"] = mods
        return names


def _module_order(name: str) -> tuple[int, list[object]]:
    """Embeddings, then the blocks in order, then the final norm and unembedding."""
    block = block_of(name + ".weight")
    if block is not None:
        return (1, natural_key(name))
    return (0 if "embed" in name or name.endswith((".wte", ".wpe")) else 2, natural_key(name))


def _free() -> None:
    """Return the freed model's memory before the next is loaded (one model at a time)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _empty_arrays(n_models: int, n_layers: int, n_heads: int, d_mlp: int, n_prompts: int):
    """Every activation array, NaN until measured."""
    n_ckpt = n_models - 1
    arrays: dict[str, np.ndarray] = {}
    for to in ("base", "prev"):
        for name in ("cka", "cos"):
            arrays[f"{name}.{to}"] = np.full((n_ckpt, n_layers), np.nan, np.float32)
        arrays[f"kl.{to}"] = np.full((n_ckpt, n_prompts), np.nan, np.float32)
    arrays["lens.agree.base"] = np.full((n_ckpt, n_layers), np.nan, np.float32)
    arrays["lens.split.base"] = np.full(n_ckpt, -1, np.int32)
    for name in HEAD_SCORE_NAMES:
        arrays[f"heads.{name}"] = np.full((n_models, n_layers, n_heads), np.nan, np.float32)
    arrays["neurons.mean"] = np.full((n_models, n_layers, d_mlp), np.nan, np.float32)
    return arrays


# which arrays a summary's missing measure leaves NaN
_MISSING_ARRAYS = {
    "cka": ("cka.base",),
    "cka vs previous": ("cka.prev",),
    "cos": ("cos.base",),
    "cos vs previous": ("cos.prev",),
    "kl": ("kl.base",),
    "kl vs previous": ("kl.prev",),
    "lens": ("lens.agree.base", "lens.split.base"),
}


def _drop_unmeasured(result: DriftResult, arrays: dict[str, np.ndarray]) -> None:
    """A measure no checkpoint got is absent from the record, not an array of NaN."""
    for measure, names in _MISSING_ARRAYS.items():
        if names[0] in arrays and np.isnan(arrays[names[0]]).all():
            for name in names:
                arrays.pop(name, None)
            result.skipped.setdefault(measure, "no checkpoint could be measured")
    for name in [*(f"heads.{n}" for n in HEAD_SCORE_NAMES), "neurons.mean"]:
        if np.isnan(arrays[name]).all():
            del arrays[name]


def _fixed_prompt(checkpoints: Sequence[Checkpoint]) -> Trace | None:
    """The first snapshot input's trace: its prompt is the one the comparison runs."""
    from neuroscope_tui.snapshot import load_snapshot

    for ckpt in checkpoints:
        if ckpt.kind == "snapshot":
            return load_snapshot(ckpt.name)
    return None


def measure_drift(
    checkpoints: Sequence[Checkpoint],
    prompts: Sequence[str],
    *,
    progress: Progress | Any | None = None,
    load_options: dict[str, Any] | None = None,
) -> DriftResult:
    """The drift of `checkpoints[1:]` from `checkpoints[0]` (the base) over `prompts`.

    `progress(fraction, text)` (or a TaskContext, whose `progress` raises TaskCancelled once
    cancelled) is called after each prompt and during the weight pass. `load_options` go to
    `load_model` (device, dtype, device_map, revision, trust_remote_code). Raises UsageError
    for incompatible inputs (before any model is loaded) and the loader's errors.
    """
    if len(checkpoints) < 2:
        raise UsageError("give at least one checkpoint to compare with the base model")
    if not prompts:
        raise UsageError("the prompt set is empty; drift needs at least one prompt")
    check_compatible(checkpoints)
    report = getattr(progress, "progress", progress)
    say: Progress = report if callable(report) else (lambda _f, _t: None)
    fixed = _fixed_prompt(checkpoints)
    skipped: dict[str, str] = {}
    if fixed is not None:
        prompts = [fixed.prompt]
        skipped["prompts"] = "a snapshot input holds one prompt's run: only that prompt is compared"
    chat = fixed is not None and "chat_template" in fixed.notes
    models, n_models = list(checkpoints), len(checkpoints)
    arrays: dict[str, np.ndarray] = {}
    result: DriftResult | None = None
    base = prev = None
    weights: _Weights | None = None
    share = 1.0 / n_models
    for m, ckpt in enumerate(models):

        def step(frac: float, text: str, m: int = m, ckpt: Checkpoint = ckpt) -> None:
            say(min(1.0, (m + frac) * share), f"{ckpt.label}: {text}")

        step(0.0, "loading")
        if ckpt.kind == "snapshot":
            from neuroscope_tui.snapshot import load_snapshot

            n = len(base.ids[0]) if base is not None else SUMMARY_TOKENS
            cur = summarise_snapshot(load_snapshot(ckpt.name), n)
        else:
            bundle = load_model(ckpt.name, **(load_options or {}))
            cur = summarise_model(bundle, prompts, lambda f, t: step(0.8 * f, t), chat=chat)
            del bundle  # the last reference: the summaries hold numpy arrays only
            _free()
        for measure, why in cur.missing.items():
            skipped[f"{measure} of {ckpt.label}"] = why
        if base is None:
            base = cur
            info = cur.info
            result = DriftResult(
                base=models[0], checkpoints=models[1:], prompts=list(prompts),
                n_layers=info["n_layers"], n_heads=info["n_heads"], d_mlp=info["d_mlp"],
                model=info,
            )  # fmt: skip
            arrays = _empty_arrays(
                n_models, info["n_layers"], info["n_heads"], info["d_mlp"], len(prompts)
            )
            weights = _Weights(n_models - 1, info["n_layers"])
        else:
            _same_shape(base, cur, ckpt.label)
            _compare(arrays, m - 1, cur, base, "base")
            _compare(arrays, m - 1, cur, prev, "prev")
        assert result is not None and weights is not None
        if cur.heads is not None:
            for name in HEAD_SCORE_NAMES:
                arrays[f"heads.{name}"][m] = cur.heads[name]
        if cur.neurons is not None:
            arrays["neurons.mean"][m] = cur.neurons
        result.head_types.append(head_type_letters(cur.heads))
        result.traces.append(cur.trace)
        weights.add_model(ckpt, cur.source)
        if m > 0:
            weights.compare(
                m - 1, ckpt.label, lambda done, total: step(0.8 + 0.2 * done / total, "weights")
            )
        prev = cur  # only the base's and the newest model's summaries stay
        step(1.0, "done")
    assert result is not None and weights is not None
    result.skipped.update(skipped)
    result.modules = weights.into(arrays)
    result.skipped.update(weights.skipped)
    _drop_unmeasured(result, arrays)
    result.arrays = arrays
    return result
