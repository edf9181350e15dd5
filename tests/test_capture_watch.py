"""Watched modules (capture/watch.py): `--watch` patterns resolve to module names, and the
rows a run records for them equal what hand-written forward hooks see, for the prompt and for
every generated token; a pattern that matches nothing is refused with the closest names; a
snapshot keeps the rows, the module names and the spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.capture.watch import resolve_watch
from neuroscope_tui.errors import UsageError
from neuroscope_tui.snapshot import load_snapshot, save_snapshot
from neuroscope_tui.trace import CaptureSpec
from tiny_models import ARCHS, tiny_bundle

PROMPT = "The cat sat on the mat and the cat looked at the dog"
OPTIONS = GenerationOptions(max_new_tokens=4, stop_at_eos=False)
NEAR_ZERO = 1e-2
# per architecture: a pattern with one match per block, and one module outside the blocks
PATTERNS = {
    "llama": ("model.layers.*.mlp.act_fn", "*.self_attn.q_proj", "model.norm"),
    "gpt2": ("transformer.h.*.mlp.act", "*.attn.c_attn", "transformer.ln_f"),
}


def hand_hooks(model: torch.nn.Module, names: list[str]):
    """Plain forward hooks keeping each named module's outputs, one entry per call."""
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    modules = dict(model.named_modules())
    handles = []
    for name in names:

        def hook(module, args, output, name=name):
            out = output[0] if isinstance(output, tuple) else output
            # the logit lens calls the final norm again on [layers * T, D] after the model's
            # own [1, T, D] pass; that call is not a step of the run
            if out.dim() >= 3:
                seen[name].append(out.detach().float().clone())

        handles.append(modules[name].register_forward_hook(hook))
    return seen, handles


def expected(calls: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """The four summaries over every call's tokens, computed the plain way."""
    x = torch.cat([c[0].reshape(c.shape[1], -1) for c in calls]).double()  # [T, W]
    return {
        "norm": x.norm(dim=-1).numpy(),
        "max_abs": x.abs().max(dim=-1).values.numpy(),
        "mean": x.mean(dim=-1).numpy(),
        "zero_frac": (x.abs() < NEAR_ZERO).double().mean(dim=-1).numpy(),
    }


@pytest.mark.parametrize("arch", sorted(PATTERNS))
def test_watched_summaries_equal_hand_written_hooks(arch: str) -> None:
    bundle = tiny_bundle(arch)
    patterns = PATTERNS[arch]
    spec = CaptureSpec(watch=patterns[:2], watch_full=patterns[2:], near_zero=NEAR_ZERO)
    names = resolve_watch(bundle.model, patterns)
    seen, handles = hand_hooks(bundle.model, names)
    try:
        trace = run(bundle, PROMPT, spec, OPTIONS)
    finally:
        for h in handles:
            h.remove()
    assert trace.n_generated == 4
    assert trace.notes["watch_modules"] == names
    n_layers = bundle.anatomy.n_layers
    assert len(names) == 2 * n_layers + 1
    for m, name in enumerate(names):
        # one call for the prompt, one per generated token: every step left its rows
        assert len(seen[name]) == 1 + trace.n_generated
        want = expected(seen[name])
        for stat, values in want.items():
            got = trace.get(f"watch.{stat}")
            assert got.shape == (len(names), trace.n_tokens)
            np.testing.assert_allclose(got[m], values, rtol=1e-5, atol=1e-6, err_msg=stat)
    final = names.index(patterns[2])
    full = trace.get(f"watch.full.{final}")
    hand = torch.cat([c[0] for c in seen[patterns[2]]]).numpy()
    np.testing.assert_allclose(full, hand, rtol=1e-6, atol=1e-6)
    assert not any(n.startswith("watch.full.") and n != f"watch.full.{final}" for n in trace.arrays)


def test_a_pattern_matching_nothing_is_refused_with_close_names() -> None:
    bundle = tiny_bundle("llama")
    with pytest.raises(UsageError) as err:
        run(bundle, PROMPT, CaptureSpec(watch=("model.layers.*.mlp.act",)), OPTIONS)
    words = str(err.value)
    assert "model.layers.*.mlp.act" in words and "matches no module" in words
    assert "model.layers.0.mlp.act_fn" in words  # difflib's closest
    assert words.count(".") >= 2 and "\n" not in words


def test_a_module_whose_output_is_not_per_token_is_refused() -> None:
    bundle = tiny_bundle("llama")
    # the rotary embedding gives (cos, sin) of [1, T, d]: fine; the embedding's weight-free
    # root "model" gives a ModelOutput, which is not a tensor
    with pytest.raises(UsageError, match="not a tensor"):
        run(bundle, PROMPT, CaptureSpec(watch=("model",)), OPTIONS)


def test_a_snapshot_keeps_the_watch_rows_names_and_spec(tmp_path) -> None:
    bundle = tiny_bundle("gpt2")
    spec = CaptureSpec(watch=("transformer.h.*.mlp",), watch_full=("transformer.ln_f",))
    trace = run(bundle, PROMPT, spec, OPTIONS)
    path = save_snapshot(trace, tmp_path / "watch.nsnap")
    back = load_snapshot(path)
    assert back.spec.watch == spec.watch and back.spec.watch_full == spec.watch_full
    assert back.notes["watch_modules"] == trace.notes["watch_modules"]
    for name, values in trace.arrays.items():
        if name.startswith("watch."):
            np.testing.assert_array_equal(back.get(name), values)


def test_an_old_spec_without_watch_keys_watches_nothing() -> None:
    old = CaptureSpec().to_dict()
    del old["watch"], old["watch_full"]
    spec = CaptureSpec.from_dict(old)
    assert spec.watch == () and spec.watch_full == ()


def test_per_block_patterns_become_heatmap_metrics_and_export_rows(tmp_path) -> None:
    from neuroscope_tui.analysis.exports import table_function
    from neuroscope_tui.analysis.metrics import heatmap_table
    from neuroscope_tui.analysis.watch_metrics import watch_metrics

    bundle = tiny_bundle("llama")
    spec = CaptureSpec(watch=("model.layers.*.mlp.act_fn",), watch_full=("model.norm",))
    trace = load_snapshot(save_snapshot(run(bundle, PROMPT, spec, OPTIONS), tmp_path / "w.ns"))
    metrics = {m.name: m for m in watch_metrics(trace)}
    # model.norm sits outside the blocks: saved and exported, but no [layer, token] metric
    assert sorted(metrics) == sorted(
        f"watch:model.layers.*.mlp.act_fn:{s}" for s in ("norm", "max_abs", "mean", "zero_frac")
    )
    norm = metrics["watch:model.layers.*.mlp.act_fn:norm"]
    assert norm.label == "watch: model.layers.*.mlp.act_fn norm"
    np.testing.assert_array_equal(norm.fn(trace), trace.get("watch.norm")[:2])
    heat = heatmap_table(trace)
    assert "watch:model.layers.*.mlp.act_fn:mean" in heat.columns
    table = table_function("watch")(trace)
    modules = {row[0]: row[1] for row in table.rows}
    assert modules == {
        "model.layers.0.mlp.act_fn": 0,
        "model.layers.1.mlp.act_fn": 1,
        "model.norm": -1,
    }
    assert len(table.rows) == 3 * trace.n_tokens


@pytest.mark.parametrize("full_dtype", ["float32", "float16"])
def test_the_memory_estimate_counts_the_watched_rows(full_dtype: str) -> None:
    from neuroscope_tui.capture.memory import estimate, weight_bytes
    from neuroscope_tui.capture.run import model_info
    from neuroscope_tui.capture.watch import watch_size

    bundle = tiny_bundle("llama")
    spec = CaptureSpec(
        watch=("*.mlp.act_fn",), watch_full=("*.self_attn.k_proj",), full_dtype=full_dtype
    )
    size = watch_size(bundle, spec)
    assert size.modules == 4 and size.full_width == 2 * 16  # two k_proj of width 16
    trace = run(bundle, PROMPT, spec, OPTIONS)
    info, weights = model_info(bundle), weight_bytes(bundle.model)
    est = estimate(info, spec, trace.n_prompt, 4, weights=weights, watch=size)
    held = sum(a.nbytes for a in trace.arrays.values())
    assert sum(est.trace_parts.values()) == held
    watched = sum(a.nbytes for n, a in trace.arrays.items() if n.startswith("watch."))
    assert est.trace_parts["watch"] == watched


@pytest.mark.parametrize("arch", ARCHS)
def test_watching_the_mlp_modules_equals_the_recorders_mlp_rows(arch: str) -> None:
    """On every architecture: the MLP modules the anatomy found, watched by name, give the
    same four summaries as the recorder's own mlp.* rows (OPT's MLP gives [T, D] rows)."""
    bundle = tiny_bundle(arch)
    name_of = {id(m): n for n, m in bundle.model.named_modules()}
    names = [name_of[id(m)] for m in bundle.anatomy.mlp]
    spec = CaptureSpec(watch=tuple(names), lens_positions=())
    trace = run(bundle, PROMPT, spec, OPTIONS)
    assert trace.notes["watch_modules"] == names
    for stat in ("norm", "max_abs", "mean", "zero_frac"):
        np.testing.assert_allclose(
            trace.get(f"watch.{stat}"), trace.get(f"mlp.{stat}"), rtol=1e-5, atol=1e-6
        )


def test_a_snapshot_whose_watch_rows_do_not_fit_its_module_names_is_refused(tmp_path) -> None:
    from neuroscope_tui.errors import SnapshotError

    bundle = tiny_bundle("gpt2")
    spec = CaptureSpec(watch=("transformer.h.*.mlp",), watch_full=("transformer.ln_f",))
    trace = run(bundle, PROMPT, spec, OPTIONS)
    trace.notes["watch_modules"] = trace.notes["watch_modules"][:1]  # 3 rows, 1 name
    path = save_snapshot(trace, tmp_path / "bad.nscope")
    with pytest.raises(SnapshotError, match=r"names no watched module|notes\.watch_modules has 1"):
        load_snapshot(path)
