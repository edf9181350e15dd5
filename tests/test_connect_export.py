"""`neuroscope-tui export FILE VIEW` for the connectivity, residual, flow and lens views."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from _fixtures_connect import fixture_path, load_fixture
from neuroscope_tui.analysis.connectivity import cka_matrix
from neuroscope_tui.analysis.flow import rollout
from neuroscope_tui.cli import main


def export(view: str, fmt: str, capsys) -> str:
    assert main(["export", str(fixture_path()), view, "--format", fmt]) == 0
    return capsys.readouterr().out


def test_connectivity_json_holds_every_measure(capsys):
    out = json.loads(export("connectivity", "json", capsys))
    trace = load_fixture()
    cka = cka_matrix(trace.get("resid.full"))
    recs = [r for r in out["records"] if r["measure"] == "cka"]
    assert len(recs) == 9
    for r in recs:
        assert r["value"] == pytest.approx(cka[r["layer_a"], r["layer_b"]], abs=1e-6)
    corr = np.corrcoef(trace.get("attn.norm").astype(float))
    rec = next(
        r for r in out["records"] if r["measure"] == "corr attn.norm" and r["layer_a"] == 2
        and r["layer_b"] == 0
    )  # fmt: skip
    assert rec["value"] == pytest.approx(corr[2, 0], abs=1e-6)


def test_residual_csv_matches_the_arrays(capsys):
    rows = list(csv.DictReader(io.StringIO(export("residual", "csv", capsys))))
    trace = load_fixture()
    assert len(rows) == 3 * trace.n_tokens
    row = next(r for r in rows if r["layer"] == "2" and r["token_index"] == "5")
    expected = trace.get("mlp.norm")[2, 5] / trace.get("resid.norm")[1, 5]
    assert float(row["mlp_ratio"]) == pytest.approx(expected, rel=1e-5)
    assert row["dominant"] in ("skip", "attn", "mlp")


def test_flow_json_rollout_rows_sum_to_one(capsys):
    out = json.loads(export("flow", "json", capsys))
    trace = load_fixture()
    last = trace.n_tokens - 1
    pats = np.stack([trace.get(f"pattern.{layer}.-1") for layer in range(3)]).astype(float)
    expected = rollout(pats, last)
    for layer in range(3):
        vals = [
            r["value"] for r in out["records"] if r["method"] == "rollout" and r["layer"] == layer
        ]
        assert np.allclose(vals, expected[layer], atol=1e-6) and sum(vals) == pytest.approx(1)
    assert {r["method"] for r in out["records"]} == {"rollout", "flow"}


def test_lens_csv_top1_and_first_layer(capsys):
    rows = list(csv.DictReader(io.StringIO(export("lens", "csv", capsys))))
    trace = load_fixture()
    top = trace.get("lens.top_ids")
    for r in rows[::7]:
        layer, t = int(r["layer"]), int(r["token_index"])
        assert int(r["top1_id"]) == top[layer, t, 0]
        ranks = trace.get("lens.pred_rank")[:, t]
        assert int(r["first_pred_top1_layer"]) == int(np.argmax(ranks == 0))
