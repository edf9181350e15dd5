"""`neuroscope-tui export FILE heatmap`: the table, CSV/JSON round trips and every user mistake."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuroscope_tui.analysis.exports import EXPORTS
from neuroscope_tui.analysis.metrics import METRICS, heatmap_table
from neuroscope_tui.cli import main
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.snapshot import save_snapshot
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

TOKENS = ["The", " capital", ",", "\n", ' "quoted"', " Paris"]


def make_trace(layers: tuple[int, ...] | None = None, drop: tuple[str, ...] = ()) -> Trace:
    """A 4-layer trace of 6 tokens (4 prompt, 2 generated) with every heatmap array."""
    rng = np.random.default_rng(7)
    n_rows = 4 if layers is None else len(layers)
    trace = Trace(
        model=ModelInfo(name="tiny", n_layers=4),
        spec=CaptureSpec(layers=layers),
        n_prompt=4,
        prompt="The capital,\n",
    )
    arrays = {
        m.array: (rng.random((n_rows, len(TOKENS))) * 10).astype(np.float32)
        for m in METRICS.values()
        if m.array not in drop
    }
    if "resid.norm" in arrays:
        arrays["resid.norm"][1, 2] = np.nan  # a cell that was not recorded
    trace.append(list(range(len(TOKENS))), TOKENS, arrays)
    return trace


def test_table_has_one_row_per_layer_and_token_with_every_metric():
    trace = make_trace()
    table = heatmap_table(trace)
    assert table.columns == ["layer", "token_index", "token_text", "is_generated", *METRICS]
    assert len(table.rows) == 4 * len(TOKENS)
    for layer, t, text, generated, *values in table.rows:
        assert text == TOKENS[t]
        assert generated == (t >= 4)
        for name, value in zip(METRICS, values, strict=True):
            expected = trace.arrays[METRICS[name].array][layer, t]
            assert value == pytest.approx(float(expected), nan_ok=True)


def test_table_uses_the_models_layer_numbers_and_nan_for_unrecorded_metrics():
    table = heatmap_table(make_trace(layers=(1, 3), drop=("resid.delta",)))
    assert sorted({row[0] for row in table.rows}) == [1, 3]
    delta = table.columns.index("resid.delta")
    assert all(np.isnan(row[delta]) for row in table.rows)


def test_table_refuses_a_trace_without_any_heatmap_metric():
    trace = make_trace(drop=tuple(m.array for m in METRICS.values()))
    with pytest.raises(SnapshotError, match="none of the heatmap"):
        heatmap_table(trace)


def test_heatmap_is_the_first_registered_export():
    assert next(iter(EXPORTS)) == "heatmap"


@pytest.fixture
def snapshot(tmp_path: Path) -> tuple[Path, Trace]:
    trace = make_trace()
    return save_snapshot(trace, tmp_path / "run.nscope"), trace


def _check_against_trace(records: list[dict], trace: Trace) -> None:
    assert len(records) == 4 * len(TOKENS)
    for rec in records:
        layer, t = int(rec["layer"]), int(rec["token_index"])
        assert rec["token_text"] == TOKENS[t]
        for name, metric in METRICS.items():
            expected = trace.arrays[metric.array][layer, t]
            got = rec[name]
            if np.isnan(expected):
                assert got in ("", None)
            else:
                assert np.float32(got) == expected  # exact: 9 digits round-trip float32


def test_csv_to_stdout_round_trips_exactly(snapshot, capsys):
    path, trace = snapshot
    assert main(["export", str(path), "heatmap"]) == 0
    out = capsys.readouterr().out
    records = list(csv.DictReader(io.StringIO(out)))
    _check_against_trace(records, trace)
    assert {r["is_generated"] for r in records} == {"true", "false"}
    assert records[3]["token_text"] == "\n"  # newlines and quotes survive CSV quoting


def test_json_file_round_trips_with_nan_as_null(snapshot, tmp_path, capsys):
    path, trace = snapshot
    out = tmp_path / "heatmap.json"
    assert main(["export", str(path), "heatmap", "-o", str(out)]) == 0
    assert "wrote 24 rows" in capsys.readouterr().err
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["view"] == "heatmap" and doc["columns"][0] == "layer"
    _check_against_trace(doc["records"], trace)
    assert doc["records"][1 * len(TOKENS) + 2]["resid.norm"] is None


def test_format_flag_beats_the_suffix_and_csv_file_is_written(snapshot, tmp_path):
    path, trace = snapshot
    out = tmp_path / "table.txt"
    assert main(["export", str(path), "heatmap", "-o", str(out), "--format", "json"]) == 0
    assert json.loads(out.read_text())["view"] == "heatmap"
    csv_out = tmp_path / "t.csv"
    assert main(["export", str(path), "heatmap", "-o", str(csv_out)]) == 0
    _check_against_trace(list(csv.DictReader(csv_out.open(encoding="utf-8"))), trace)


def test_list_names_every_view(capsys):
    assert main(["export", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("heatmap")
    for name in EXPORTS:
        assert name in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["VIEW_UNKNOWN"], "known views: heatmap"),
        (["heatmap", "-o", "{tmp}/out.xlsx"], "name it .csv or .json"),
        (["heatmap", "-o", "{tmp}/missing/out.csv"], "does not exist"),
        (["heatmap", "-o", "{tmp}", "--format", "csv"], "is a folder"),
        (["heatmap", "-o", "{tmp}/old.csv"], "already exists"),
    ],
)
def test_user_mistakes_are_one_sentence_and_exit_2(snapshot, tmp_path, capsys, argv, message):
    path, _ = snapshot
    (tmp_path / "old.csv").write_text("keep me")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["export", str(path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert (tmp_path / "old.csv").read_text() == "keep me"  # nothing overwritten


def test_missing_view_and_corrupted_snapshot_exit_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "x.nscope")]) == 2
    assert "export --list" in capsys.readouterr().err
    bad = tmp_path / "bad.nscope"
    bad.write_bytes(b"not a snapshot at all")
    assert main(["export", str(bad), "heatmap"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuroscope-tui: ") and len(err.strip().splitlines()) == 1


def test_export_runs_without_importing_torch(snapshot):
    path, _ = snapshot
    code = (
        "import sys; from neuroscope_tui.cli import main; "
        f"rc = main(['export', {str(path)!r}, 'heatmap']); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("layer,token_index,token_text,is_generated,resid.norm")
