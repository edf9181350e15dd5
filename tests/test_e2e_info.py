"""`neuroscope-tui info` on a snapshot whose notes hold whole analysis records: one short line
per note on screen, everything in --json."""

from __future__ import annotations

import json

from _fixtures_app import synthetic_trace
from _fixtures_e2e import run_cli
from neuroscope_tui.snapshot import save_snapshot


def test_info_prints_one_short_line_per_note_and_json_keeps_them_whole(tmp_path):
    trace = synthetic_trace()
    big = {f"projection.pca.L{i}": {"explained": [0.5, 0.25, 0.125] * 10} for i in range(6)}
    trace.notes.update(
        truncated="the prompt was cut from the left to the last 127 tokens to fit the context",
        features=big,
        attribution={
            "position": 10,
            "target_text": " big",
            "foil_text": " small",
            "methods": {"integrated_gradients": {"relative_gap": 0.0123, "steps": 64}},
        },
    )
    snap = save_snapshot(trace, tmp_path / "notes.nscope")
    proc = run_cli("info", snap)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note ")]
    assert len(notes) == 3 and all(len(line) < 160 for line in notes)
    text = "\n".join(notes)
    assert "truncated: the prompt was cut from the left" in text
    assert "why ' big' at position 10 rather than ' small'" in text
    assert "integrated gradients gap 1.2%" in text
    assert "info --json shows it all" in text
    doc = json.loads(run_cli("info", snap, "--json").stdout)
    assert doc["notes"]["features"] == big  # nothing lost in JSON
