"""Measure how a base model's checkpoints drifted from it, one model in memory at a time.

`measure_drift(checkpoints, prompts)` loads each model in turn (the base first), runs every
prompt of the set through the ordinary capture (`run()`, no generation, the first
SUMMARY_TOKENS tokens of each prompt) and keeps only summaries: the residual stream after
every block, head score means, MLP neuron means, next-token log-probabilities and the logit
lens's top-1. The model is freed before the next is loaded; the full summaries (residual rows,
log-probabilities) are kept for the base and the previous model only. After a checkpoint's
capture its weights are compared tensor by tensor with the base's and the previous model's
files (`drift_weights.py`), so two models are never in memory at once.

Representation measures (CKA, cosine, head and neuron means) skip each prompt's first
position: the attention sink's massive activations there (thousands of times the median on
SmolLM2) would swamp every other token. Output measures (KL, lens) use every position.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neuroscope_tui.analysis import drift as measures
from neuroscope_tui.analysis.drift_record import HEAD_SCORE_NAMES, Checkpoint, DriftResult
from neuroscope_tui.analysis.heads import (
    HeadScores,
    classify,
    normalised_entropy,
    query_masks,
    type_letters,
)
from neuroscope_tui.capture.drift_weights import block_of, natural_key, weight_change
from neuroscope_tui.capture.lens import _readout
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.errors import UsageError
from neuroscope_tui.models.checkpoints import NoWeightFiles, check_compatible, weight_files
from neuroscope_tui.models.loader import load_model
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import CaptureSpec, Trace

SUMMARY_TOKENS = 128  # each prompt's first tokens: drift needs the same tokens, not long ones
SPEC = CaptureSpec(full_layers=None, head_scores=True, top_k=5, lens_positions=None)
_SHAPE = ("architecture", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_mlp", "vocab_size")
Progress = Callable[[float, str], None]


@dataclass
class ModelSummary:
    """What one model's capture of the prompt set leaves (see the module docstring).

    resid [L, S, D] float32 over the set's tokens after each prompt's first; heads name ->
    [L, H]; neurons [L, N]; logp per prompt [T_p, V] float32; lens_top1 [L, sum T] int32.
    """

    ids: list[list[int]]
    resid: np.ndarray
    heads: dict[str, np.ndarray]
    neurons: np.ndarray
    logp: list[np.ndarray]
    lens_top1: np.ndarray
    trace: Trace
    source: str
    info: dict[str, Any] = field(default_factory=dict)


def _log_probs(bundle: LoadedModel, last_rows: np.ndarray) -> np.ndarray:
    """Next-token log-probabilities [T, V] from the last block's output rows [T, D], through
    the model's own final norm and unembedding (exactly what its forward pass computes)."""
    anatomy = bundle.anatomy
    weight = anatomy.unembed.weight
    x = torch.from_numpy(np.ascontiguousarray(last_rows)).to(weight.device, weight.dtype)
    cfg = bundle.model.config
    softcap = getattr(
        getattr(cfg, "get_text_config", lambda: cfg)(), "final_logit_softcapping", None
    )
    with torch.inference_mode():
        return _readout(anatomy, x, softcap).float().cpu().numpy()


def summarise_model(
    bundle: LoadedModel, prompts: Sequence[str], progress: Progress | None = None
) -> ModelSummary:
    """One capture of the prompt set through `run()`: the summaries drift compares."""
    options = GenerationOptions(
        max_new_tokens=0, too_long="truncate", stop_at_eos=False, max_prompt_tokens=SUMMARY_TOKENS
    )
    resid, logp, lens, ids = [], [], [], []
    head_sums: dict[str, np.ndarray] = {}
    head_counts: dict[str, int] = dict.fromkeys(HEAD_SCORE_NAMES, 0)
    neuron_sum: np.ndarray | None = None
    n_rows = 0
    first: Trace | None = None
    for i, prompt in enumerate(prompts):
        trace = run(bundle, prompt, SPEC, options)
        first = first or trace
        ids.append(list(trace.token_ids))
        rows = trace.get("resid.full")  # [L, T, D]
        keep = slice(1, None) if rows.shape[1] > 1 else slice(None)
        resid.append(np.array(rows[:, keep], dtype=np.float32))
        masks = query_masks(trace.token_ids)
        for name in HEAD_SCORE_NAMES:
            values = trace.get(f"heads.{name}").astype(np.float64)  # [L, T, H]
            if name == "entropy":
                values = normalised_entropy(values, token_axis=1)
            mask = masks[name]
            add = values[:, mask].sum(axis=1) if mask.any() else 0.0
            head_sums[name] = head_sums.get(name, 0.0) + add
            head_counts[name] += int(mask.sum())
        neurons = trace.get("neurons.full")[:, keep].astype(np.float64)  # [L, T', N]
        neuron_sum = neurons.sum(axis=1) + (0.0 if neuron_sum is None else neuron_sum)
        n_rows += neurons.shape[1]
        lens.append(trace.get("lens.top_ids")[:, :, 0])  # [L, T]
        logp.append(_log_probs(bundle, rows[-1]))
        if progress is not None:
            progress((i + 1) / len(prompts), f"prompt {i + 1}/{len(prompts)}")
    assert first is not None and neuron_sum is not None  # prompts is not empty
    heads = {
        name: (head_sums[name] / head_counts[name]).astype(np.float32)
        if head_counts[name]
        else np.full_like(head_sums["prev"], np.nan, dtype=np.float32)
        for name in HEAD_SCORE_NAMES
    }
    return ModelSummary(
        ids=ids,
        resid=np.concatenate(resid, axis=1),
        heads=heads,
        neurons=(neuron_sum / max(n_rows, 1)).astype(np.float32),
        logp=logp,
        lens_top1=np.concatenate(lens, axis=1).astype(np.int32),
        trace=first,
        source=bundle.source,
        info=first.model.to_dict(),
    )


def head_type_letters(heads: dict[str, np.ndarray]) -> dict[str, str]:
    """ "layer.head" -> type letters, classified from score means [L, H] (no patterns: no
    redundant pairs)."""
    n_layers, n_heads = heads["prev"].shape
    scores = HeadScores(
        list(range(n_layers)), n_heads, {k: v.astype(np.float64) for k, v in heads.items()}
    )
    return {f"{l}.{h}": type_letters(t) for (l, h), t in classify(scores).items()}


def _same_shape(base: ModelSummary, other: ModelSummary, label: str) -> None:
    """Refuse a checkpoint that turned out (once loaded) to differ from the base, or that
    reads the prompts as other tokens: its rows would not line up with the base's."""
    for key in _SHAPE:
        if base.info.get(key) != other.info.get(key):
            raise UsageError(
                f"{label} cannot be compared with the base: its {key} is "
                f"{other.info.get(key)}, the base's is {base.info.get(key)}"
            )
    if base.ids != other.ids:
        raise UsageError(
            f"{label} reads the prompts as other tokens than the base (a different "
            "tokenizer); drift compares checkpoints that share the base's tokenizer"
        )


def _compare(arrays: dict[str, np.ndarray], c: int, cur: ModelSummary, ref: ModelSummary, to: str):
    """Fill checkpoint c's row of the activation measures against `ref` ("base" or "prev")."""
    n_layers = cur.resid.shape[0]
    for layer in range(n_layers):
        arrays[f"cka.{to}"][c, layer] = measures.linear_cka(ref.resid[layer], cur.resid[layer])
        arrays[f"cos.{to}"][c, layer] = measures.mean_cosine(ref.resid[layer], cur.resid[layer])
    for p, (lp_ref, lp) in enumerate(zip(ref.logp, cur.logp, strict=True)):
        arrays[f"kl.{to}"][c, p] = measures.mean_kl(lp_ref, lp)
    if to == "base":
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
    snapshots = [c.label for c in checkpoints if c.kind == "snapshot"]
    if snapshots:
        raise UsageError(
            f"{snapshots[0]} is a snapshot; drift measures models (a folder, a .gguf file, "
            "an alias or a hub id), not snapshots yet"
        )
    check_compatible(checkpoints)
    report = getattr(progress, "progress", progress)
    say: Progress = report if callable(report) else (lambda _f, _t: None)
    models, n_models = list(checkpoints), len(checkpoints)
    n_ckpt = n_models - 1
    arrays: dict[str, np.ndarray] = {}
    result: DriftResult | None = None
    base = prev = None
    weights: _Weights | None = None
    share = 1.0 / n_models
    for m, ckpt in enumerate(models):

        def step(frac: float, text: str, m: int = m, ckpt: Checkpoint = ckpt) -> None:
            say(min(1.0, (m + frac) * share), f"{ckpt.label}: {text}")

        step(0.0, "loading")
        bundle = load_model(ckpt.name, **(load_options or {}))
        cur = summarise_model(bundle, prompts, lambda f, t: step(0.8 * f, t))
        del bundle  # the last reference: the summaries hold numpy arrays only
        _free()
        if base is None:
            base = cur
            n_layers, n_heads = cur.heads["prev"].shape
            result = DriftResult(
                base=models[0], checkpoints=models[1:], prompts=list(prompts),
                n_layers=n_layers, n_heads=n_heads, d_mlp=cur.neurons.shape[1], model=cur.info,
            )  # fmt: skip
            for to in ("base", "prev"):
                for name in ("cka", "cos"):
                    arrays[f"{name}.{to}"] = np.full((n_ckpt, n_layers), np.nan, np.float32)
                arrays[f"kl.{to}"] = np.full((n_ckpt, len(prompts)), np.nan, np.float32)
            arrays["lens.agree.base"] = np.full((n_ckpt, n_layers), np.nan, np.float32)
            arrays["lens.split.base"] = np.full(n_ckpt, -1, np.int32)
            for name in HEAD_SCORE_NAMES:
                arrays[f"heads.{name}"] = np.zeros((n_models, n_layers, n_heads), np.float32)
            arrays["neurons.mean"] = np.zeros(
                (n_models, n_layers, cur.neurons.shape[1]), np.float32
            )
            weights = _Weights(n_ckpt, n_layers)
        else:
            _same_shape(base, cur, ckpt.label)
            _compare(arrays, m - 1, cur, base, "base")
            _compare(arrays, m - 1, cur, prev, "prev")
        assert result is not None and weights is not None
        for name in HEAD_SCORE_NAMES:
            arrays[f"heads.{name}"][m] = cur.heads[name]
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
    result.modules = weights.into(arrays)
    result.skipped.update(weights.skipped)
    result.arrays = arrays
    return result
