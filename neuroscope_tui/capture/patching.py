"""Activation patching sweeps: patch every (layer, position) cell from a clean prompt into a
corrupted one and measure how much of the clean answer comes back.

One forward of the clean prompt records every site the sweep patches (the recorder's hooks, in
capture mode); then the corrupted prompt runs repeated in a batch, each row patched at its own
cell, with only the last position's logits computed (`logits_to_keep=1`). A batch holds about
`batch_tokens` tokens, so a 30 x 6 resid sweep of SmolLM2 takes a few forwards, not 180. The
same `Intervener` that a run uses does the writes: a sweep is that machinery in a loop.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from neuroscope_tui.analysis.patching import PatchSweep
from neuroscope_tui.capture.intervening import (
    EMPTY_SPEC,
    Intervener,
    SiteKey,
    Write,
    forward_logits,
    record_sites,
)
from neuroscope_tui.capture.interventions import InterventionError, SameAnswerError
from neuroscope_tui.capture.recorder import recording
from neuroscope_tui.capture.run import GenerationOptions, token_texts, tokenize_prompt
from neuroscope_tui.errors import PromptError
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.tasks import TaskCancelled, TaskContext

SweepSite = Literal["resid", "heads", "mlp"]
SWEEP_SITES = ("resid", "heads", "mlp")


def _one_token(bundle: LoadedModel, text: str, role: str) -> int:
    """The id of the first token of `text` (" Berlin" -> the id of " Berlin")."""
    ids = list(bundle.tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise PromptError(f"the {role} {text!r} gives no token; name a word, e.g. ' Paris'.")
    return int(ids[0])


def _cells(bundle: LoadedModel, site: str, n_pos: int) -> tuple[list[str], list[Write]]:
    """Row labels and one Write per (row, position) cell, in row-major order."""
    a = bundle.anatomy
    if site == "heads":
        rows = [(layer, h) for layer in range(a.n_layers) for h in range(a.n_heads)]
        labels = [f"L{layer}.H{h}" for layer, h in rows]
        dh = a.d_head

        def write(r: int, p: int) -> Write:
            layer, h = rows[r]
            return Write("heads_in", layer, "source", slice(h * dh, (h + 1) * dh), (p,), "clean")

    else:
        labels = [f"L{layer}" for layer in range(a.n_layers)]
        name = "resid_in" if site == "resid" else "mlp_out"

        def write(r: int, p: int) -> Write:
            return Write(name, r, "source", None, (p,), "clean")

    return labels, [write(r, p) for r in range(len(labels)) for p in range(n_pos)]


@torch.no_grad()
def patch_sweep(
    bundle: LoadedModel,
    clean: str,
    corrupt: str,
    *,
    site: SweepSite = "resid",
    target: str | None = None,
    foil: str | None = None,
    task: TaskContext | None = None,
    batch_tokens: int = 1024,
) -> PatchSweep:
    """Patch each cell of `site` from `clean` into `corrupt`; the recovered logit difference.

    target / foil default to the clean and the corrupted prompt's own next tokens. Progress
    goes to `task`; a cancel stops between batches and returns the sweep so far, marked
    partial (NaN where not computed). Raises PromptError for an empty prompt and
    InterventionError for prompts of different token lengths, an unknown site, or a target
    and foil that are the same token.
    """
    if site not in SWEEP_SITES:
        raise InterventionError(f"cannot sweep {site!r}: the sites are resid, heads and mlp")
    if not corrupt or not corrupt.strip():
        raise PromptError("patching needs a corrupted prompt; pass --corrupt TEXT.")
    options = GenerationOptions()
    clean_ids = tokenize_prompt(bundle, clean, options)
    ids = tokenize_prompt(bundle, corrupt, options)
    if len(clean_ids) != len(ids):
        raise InterventionError(
            f"the clean prompt is {len(clean_ids)} tokens and the corrupted one {len(ids)}; "
            "patching needs prompts of the same token length"
        )
    n = len(ids)
    labels, writes = _cells(bundle, site, n)
    needed: set[SiteKey] = {w.key for w in writes}
    clean_acts, clean_logits = record_sites(bundle, clean_ids, needed)
    corrupt_logits = forward_logits(
        bundle.model, torch.tensor([ids], device=torch.device(bundle.device))
    )[0]
    t_id = _one_token(bundle, target, "target") if target else int(clean_logits.argmax())
    f_id = _one_token(bundle, foil, "foil") if foil else int(corrupt_logits.argmax())
    if t_id == f_id:
        raise SameAnswerError(
            "the target and the foil are the same token, so there is no difference to "
            "recover; name both with --target and --foil"
        )

    def diff(logits: torch.Tensor) -> torch.Tensor:
        return logits[..., t_id] - logits[..., f_id]

    clean_diff, corrupt_diff = float(diff(clean_logits)), float(diff(corrupt_logits))
    patched = np.full(len(writes), np.nan, np.float32)
    batch = max(1, batch_tokens // n)
    inputs = torch.tensor([ids], device=torch.device(bundle.device))
    partial = False
    for start in range(0, len(writes), batch):
        if task is not None:
            try:
                task.progress(start / len(writes), f"patched {start} of {len(writes)} cells")
            except TaskCancelled:  # keep what is done: the grid shows it, marked partial
                partial = True
                break
        chunk = writes[start : start + batch]
        for row, w in enumerate(chunk):
            w.row = row
        intervener = Intervener(chunk, {"clean": clean_acts})
        intervener.begin(0, n)
        with recording(bundle.anatomy, EMPTY_SPEC, intervener):
            logits = forward_logits(bundle.model, inputs.expand(len(chunk), n))
        patched[start : start + len(chunk)] = diff(logits).cpu().numpy()
    grid = patched.reshape(len(labels), n)
    return PatchSweep(
        site=site,
        tokens=token_texts(bundle.tokenizer, ids),
        rows=labels,
        recovered=PatchSweep.recovery(grid, clean_diff, corrupt_diff),
        clean_diff=clean_diff,
        corrupt_diff=corrupt_diff,
        target=bundle.tokenizer.decode([t_id]),
        foil=bundle.tokenizer.decode([f_id]),
        clean=clean,
        corrupt=corrupt,
        partial=partial,
        target_id=t_id,
        foil_id=f_id,
        logit_diff=grid,
    )
