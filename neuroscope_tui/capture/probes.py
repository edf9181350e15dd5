"""The induction probe: a repeated random-token sequence, run through the attention tap.

The standard test for induction heads (Olsson et al. 2022): n random tokens, then the same n
again. In the second half every token occurred before, so a head that looks at "what came
after the previous copy of me" (induction) or at "the previous copy of me" (duplicate-token)
shows it plainly, and no natural-language regularity can fake it. The first half has no
repeats within it (tokens are drawn without replacement). A BOS token leads when the
tokenizer has one, as in training.
"""

from __future__ import annotations

import numpy as np
import torch

from neuroscope_tui.capture.attention_scores import head_stats
from neuroscope_tui.capture.attention_tap import tapped
from neuroscope_tui.capture.recorder import recording
from neuroscope_tui.capture.run import model_info, token_texts
from neuroscope_tui.errors import UsageError
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import CaptureSpec, Trace

DEFAULT_LENGTH = 50


def probe_ids(
    vocab_size: int,
    length: int = DEFAULT_LENGTH,
    *,
    seed: int = 0,
    bos: int | None = None,
    exclude: list[int] | tuple[int, ...] = (),
) -> list[int]:
    """[BOS] + `length` distinct random ids + the same ids again (ids in 0..vocab_size-1).

    `exclude` (special tokens) is never drawn. Raises UsageError when fewer than `length`
    ids are left to draw from, or `length` < 2.
    """
    allowed = np.setdiff1d(np.arange(vocab_size), np.asarray(list(exclude), dtype=np.int64))
    if length < 2:
        raise UsageError(f"the probe needs at least 2 random tokens, not {length}.")
    if length > len(allowed):
        raise UsageError(
            f"the probe wants {length} distinct tokens but the vocabulary has only "
            f"{len(allowed)}; pass a smaller --probe-length."
        )
    half = np.random.default_rng(seed).choice(allowed, size=length, replace=False).tolist()
    return ([bos] if bos is not None else []) + half + half


def model_probe_ids(bundle: LoadedModel, length: int = DEFAULT_LENGTH, seed: int = 0) -> list[int]:
    """The probe's ids for this model: its tokenizer's specials left out, its BOS first."""
    tok = bundle.tokenizer
    vocab = min(len(tok), int(bundle.anatomy.vocab_size))
    specials = list(getattr(tok, "all_special_ids", []) or [])
    bos = getattr(tok, "bos_token_id", None)
    return probe_ids(vocab, length, seed=seed, bos=bos, exclude=specials)


@torch.no_grad()
def trace_ids(
    bundle: LoadedModel,
    token_ids: list[int],
    pattern_heads: tuple[tuple[int, int], ...] = (),
    *,
    prompt: str = "",
) -> Trace:
    """One forward pass over `token_ids` with the attention tap: a Trace with `heads.*`.

    Only head scores (and the full patterns of `pattern_heads`) are recorded. Falls back to
    eager `output_attentions` when the model cannot use the tap.
    """
    spec = CaptureSpec(
        sites=(), full_layers=(), head_scores=True, pattern_heads=pattern_heads, lens_positions=()
    )
    trace = Trace(model=model_info(bundle), spec=spec, prompt=prompt)
    device = torch.device(bundle.device)
    ids = torch.tensor(token_ids, device=device)
    inputs = ids.view(1, -1)
    anatomy = bundle.anatomy
    with recording(anatomy, spec) as rec:
        rec.ids = ids
        with tapped(bundle.model, anatomy.attention, rec, lambda: rec.ids) as tap_ok:
            if tap_ok:
                bundle.model(input_ids=inputs, use_cache=False)
        if not tap_ok:
            out = bundle.model(input_ids=inputs, use_cache=False, output_attentions=True)
            q_pos = torch.arange(len(token_ids), device=device)
            for layer in rec.layers:
                probs = out.attentions[layer][0].float()  # [H, T, T]
                rows = {h: probs.mean(0) if h < 0 else probs[h] for h in rec.wants_patterns(layer)}
                rec.attention(layer, head_stats(probs, q_pos, ids), rows)
        rows = rec.flush()
    trace.append(token_ids, token_texts(bundle.tokenizer, token_ids), rows)
    trace.n_prompt = len(token_ids)
    trace.finished = True
    trace.stop_reason = "length"
    return trace


def induction_probe(
    bundle: LoadedModel,
    length: int = DEFAULT_LENGTH,
    *,
    seed: int = 0,
    keep_patterns: bool = True,
) -> Trace:
    """The repeated random-token probe's Trace, with every head's pattern when asked.

    Keeping every head's pattern costs layers x heads x (2·length+1)² floats (11 MiB for
    SmolLM2-135M at length 50); it is what redundant head pairs are found from.
    """
    ids = model_probe_ids(bundle, length, seed)
    heads: tuple[tuple[int, int], ...] = ()
    if keep_patterns:
        a = bundle.anatomy
        heads = tuple((layer, h) for layer in range(a.n_layers) for h in range(a.n_heads))
    prompt = f"(induction probe: {length} random tokens twice, seed {seed})"
    return trace_ids(bundle, ids, heads, prompt=prompt)


def probe_summary(bundle: LoadedModel, length: int = DEFAULT_LENGTH, seed: int = 0) -> dict:
    """The probe's per-head scores and types as JSON-able notes (kept in a trace's notes).

    {"model": name, "length": n, "seed": s, "heads": HeadScores.rows()}; the app's heads view
    marks head types from it.
    """
    from neuroscope_tui.analysis.heads import head_scores

    scores = head_scores(induction_probe(bundle, length, seed=seed))
    return {"model": bundle.name, "length": length, "seed": seed, "heads": scores.rows()}
