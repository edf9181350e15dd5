"""Patching sweeps and the side-by-side logit difference on tiny models, against plain hooks.

- a sweep cell's logit difference equals one forward of the corrupted prompt with that cell
  overwritten by hand (transformers' own hidden state for resid, captured tensors otherwise);
- where both prompts hold the same token, patching the stream before block 0 recovers nothing;
- a cancel returns the sweep so far, marked partial; bad input is one sentence;
- the teacher-forced logit difference of an intervention equals two plain forwards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope_tui.analysis.patching import PatchSweep, patching_table
from neuroscope_tui.capture.interventions import Ablation, InterventionError
from neuroscope_tui.capture.patching import patch_sweep
from neuroscope_tui.capture.run import GenerationOptions, model_info, run
from neuroscope_tui.capture.side_by_side import intervened_logit_difference
from neuroscope_tui.errors import PromptError
from neuroscope_tui.snapshot import load_snapshot, save_snapshot
from neuroscope_tui.tasks import TaskContext
from tiny_models import tiny_bundle

CLEAN = "The cat sat on the mat and the cat looked at the dog"
CORRUPT = "The dog sat on the mat and the cat looked at the cat"


@pytest.fixture(scope="module", params=["llama", "gpt2", "gpt_neox"])
def bundle(request):
    return tiny_bundle(request.param)


def _ids(bundle, text):
    return torch.tensor([bundle.tokenizer(text)["input_ids"]])


def _last_logits(bundle, ids):
    with torch.no_grad():
        return bundle.model(input_ids=ids, use_cache=False).logits[0, -1]


def _by_hand(bundle, module, change, *, pre: bool, kwargs: bool = False):
    """The corrupted prompt's last logits with `change` applied to a module's tensor."""

    def pre_hook(m, args, kw=None):
        if args:
            return (
                (change(args[0].clone()), *args[1:])
                if kw is None
                else (
                    (change(args[0].clone()), *args[1:]),
                    kw,
                )
            )
        return args, {**kw, "hidden_states": change(kw["hidden_states"].clone())}

    def out_hook(m, args, out):
        if isinstance(out, torch.Tensor):
            return change(out.clone())
        return (change(out[0].clone()), *out[1:])

    if pre:
        handle = module.register_forward_pre_hook(pre_hook, with_kwargs=kwargs)
    else:
        handle = module.register_forward_hook(out_hook)
    try:
        return _last_logits(bundle, _ids(bundle, CORRUPT))
    finally:
        handle.remove()


def _capture(bundle, module, *, pre: bool):
    seen = {}
    if pre:
        handle = module.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].clone()))
    else:
        handle = module.register_forward_hook(
            lambda m, a, o: seen.setdefault(
                "x", (o if isinstance(o, torch.Tensor) else o[0]).clone()
            )
        )
    try:
        _last_logits(bundle, _ids(bundle, CLEAN))
    finally:
        handle.remove()
    return seen["x"]


def _diff(sweep: PatchSweep, logits) -> float:
    return float(logits[sweep.target_id] - logits[sweep.foil_id])


def test_resid_cells_equal_writing_the_clean_hidden_state_by_hand(bundle):
    sweep = patch_sweep(bundle, CLEAN, CORRUPT, site="resid", batch_tokens=64)
    with torch.no_grad():
        hidden = bundle.model(
            input_ids=_ids(bundle, CLEAN), use_cache=False, output_hidden_states=True
        ).hidden_states
    assert _diff(sweep, _last_logits(bundle, _ids(bundle, CLEAN))) == pytest.approx(
        sweep.clean_diff, abs=1e-5
    )
    assert _diff(sweep, _last_logits(bundle, _ids(bundle, CORRUPT))) == pytest.approx(
        sweep.corrupt_diff, abs=1e-5
    )
    n = len(sweep.tokens)
    for layer, pos in [(0, 1), (1, n - 1), (1, 4)]:

        def write(x, layer=layer, pos=pos):
            x[0, pos] = hidden[layer][0, pos]
            return x

        block = bundle.anatomy.blocks[layer]
        logits = _by_hand(bundle, block, write, pre=True, kwargs=True)
        assert sweep.logit_diff[layer, pos] == pytest.approx(_diff(sweep, logits), abs=1e-4)
    assert sweep.recovered.shape == (bundle.anatomy.n_layers, n)
    # before block 0 the stream is the token's embedding: where the prompts agree, nothing moves
    same = [t for t in range(n) if _ids(bundle, CLEAN)[0, t] == _ids(bundle, CORRUPT)[0, t]]
    np.testing.assert_allclose(sweep.recovered[0, same], 0.0, atol=1e-4)


@pytest.mark.parametrize("site", ["heads", "mlp"])
def test_head_and_mlp_cells_equal_copying_the_clean_activation_by_hand(bundle, site):
    a = bundle.anatomy
    sweep = patch_sweep(bundle, CLEAN, CORRUPT, site=site)
    layer, head, pos = a.n_layers - 1, 1, len(sweep.tokens) - 1
    if site == "heads":
        module, dh = a.out_proj[layer], a.d_head
        clean = _capture(bundle, module, pre=True)
        cols = slice(head * dh, (head + 1) * dh)
        row = sweep.rows.index(f"L{layer}.H{head}")
    else:
        module = a.mlp[layer]
        clean = _capture(bundle, module, pre=False)
        cols = slice(None)
        row = sweep.rows.index(f"L{layer}")
    n = len(sweep.tokens)

    def write(x):
        shaped, src = x.reshape(1, n, -1), clean.reshape(1, n, -1)
        shaped[0, pos, cols] = src[0, pos, cols]
        return x

    logits = _by_hand(bundle, module, write, pre=site == "heads")
    assert sweep.logit_diff[row, pos] == pytest.approx(_diff(sweep, logits), abs=1e-4)


def test_a_cancelled_sweep_is_partial():
    bundle = tiny_bundle("llama")
    task = TaskContext()
    calls = []

    def cancel_after_first():
        calls.append(task.take())
        task.cancel()

    task.notify = cancel_after_first
    sweep = patch_sweep(bundle, CLEAN, CORRUPT, task=task, batch_tokens=40)
    assert sweep.partial and calls
    assert 0 < sweep.done() < sweep.recovered.size
    assert np.isnan(sweep.recovered).any()


def test_named_target_and_foil_and_the_sweep_file(tmp_path):
    bundle = tiny_bundle("llama")
    sweep = patch_sweep(bundle, CLEAN, CORRUPT, site="mlp", target=" dog", foil=" cat")
    tok = bundle.tokenizer
    assert sweep.target_id == tok(" dog", add_special_tokens=False)["input_ids"][0]
    assert sweep.foil_id == tok(" cat", add_special_tokens=False)["input_ids"][0]
    ids = tok(CORRUPT)["input_ids"]
    path = save_snapshot(sweep.to_trace(model_info(bundle), ids), tmp_path / "s.nscope")
    back = PatchSweep.from_trace(load_snapshot(path))
    np.testing.assert_array_equal(back.recovered, sweep.recovered)
    assert back.rows == sweep.rows and back.target == sweep.target
    table = patching_table(load_snapshot(path))
    assert len(table.rows) == sweep.recovered.size
    assert table.rows[0][:4] == ["L0", 0, None, 0]


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(corrupt="The dog"), InterventionError, "same token length"),
        (dict(corrupt="  "), PromptError, "corrupted prompt"),
        (dict(site="neurons"), InterventionError, "cannot sweep"),
        (dict(target=" cat", foil=" cat"), InterventionError, "same token"),
    ],
)
def test_bad_sweeps_are_one_sentence(kwargs, error, words):
    bundle = tiny_bundle("llama")
    args = dict(clean=CLEAN, corrupt=CORRUPT) | kwargs
    with pytest.raises(error, match=words) as err:
        patch_sweep(bundle, args.pop("clean"), args.pop("corrupt"), **args)
    assert "\n" not in str(err.value)


def test_logit_difference_is_two_plain_forwards(bundle):
    clean = run(bundle, CLEAN, options=GenerationOptions(max_new_tokens=3))
    layer = bundle.anatomy.n_layers - 1
    got = intervened_logit_difference(bundle, clean, [Ablation("attn", layer)])
    ids = torch.tensor([clean.token_ids])
    with torch.no_grad():
        plain = bundle.model(input_ids=ids, use_cache=False).logits[0]

        def zero(m, a, out):
            return (torch.zeros_like(out[0]), *out[1:])

        handle = bundle.anatomy.attention[layer].register_forward_hook(zero)
        try:
            ablated = bundle.model(input_ids=ids, use_cache=False).logits[0]
        finally:
            handle.remove()
    nxt = clean.token_ids[1:]
    want = [float(ablated[t, nxt[t]] - plain[t, nxt[t]]) for t in range(len(nxt))]
    np.testing.assert_allclose(got[:-1], want, atol=1e-4)
    top = int(clean.get("logits.top_ids")[-1, 0])
    assert got[-1] == pytest.approx(float(ablated[-1, top] - plain[-1, top]), abs=1e-4)
    assert got.shape == (clean.n_tokens,)
