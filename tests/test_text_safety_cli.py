"""Hostile texts on the command line: `info` and `export` print no raw control bytes.

The snapshot is the hostile run of tests/_fixtures_hostile.py (token texts, vocabulary texts,
model name, notes, attribution target with terminal escapes, bidi overrides and markup),
written with the real `save_snapshot` and read by the real CLI in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from _fixtures_hostile import HOSTILE, MODEL_NAME, hostile_trace
from neuroscope_tui.snapshot import save_snapshot

# UTF-8 bytes of the characters a terminal must never receive raw from a file's text
RAW_BYTES = {
    "ESC": b"\x1b",
    "BEL": b"\x07",
    "NUL": b"\x00",
    "DEL": b"\x7f",
    "CR": b"\r",
    "CSI (U+009B)": "\x9b".encode(),
    "RLO (U+202E)": "\u202e".encode(),
    "LRI (U+2066)": "\u2066".encode(),
}


@pytest.fixture(scope="module")
def hostile_file(tmp_path_factory):
    return save_snapshot(hostile_trace(), tmp_path_factory.mktemp("hostile") / "pwn.nscope")


def cli_bytes(*args) -> subprocess.CompletedProcess:
    """`neuroscope-tui ARGS` in a fresh process; stdout and stderr as the raw bytes."""
    return subprocess.run(
        [sys.executable, "-m", "neuroscope_tui", *map(str, args)],
        capture_output=True,
        timeout=120,
        check=False,
    )


def raw_controls(data: bytes) -> list[str]:
    return [name for name, raw in RAW_BYTES.items() if raw in data]


def test_info_shows_every_text_of_a_hostile_snapshot_with_escapes(hostile_file):
    done = cli_bytes("info", hostile_file)
    assert done.returncode == 0, done.stderr.decode()
    assert raw_controls(done.stdout + done.stderr) == []
    out = done.stdout.decode()
    assert "model      \\x1b]0;pwned\\x07[@click=app.quit][/]" in out
    assert "note       \\x1b[31mnote[/]: [@click=app.quit]\\x1b]0;pwned\\x07\\u202e" in out
    assert "stop: \\x1b[2J[/]" in out


def test_info_json_keeps_the_exact_texts_escaped(hostile_file):
    done = cli_bytes("info", hostile_file, "--json")
    assert done.returncode == 0, done.stderr.decode()
    assert raw_controls(done.stdout) == []
    info = json.loads(done.stdout)
    assert info["model"]["name"] == MODEL_NAME
    assert info["notes"]["\x1b[31mnote[/]"] == "[@click=app.quit]\x1b]0;pwned\x07\u202e"


def test_export_lens_csv_to_stdout_writes_escapes_not_control_bytes(hostile_file):
    done = cli_bytes("export", hostile_file, "lens")
    assert done.returncode == 0, done.stderr.decode()
    assert raw_controls(done.stdout) == []
    out = done.stdout.decode()
    assert "\\x1b]0;pwned\\x07" in out and "\\u202eevil" in out and "\\x9b31m" in out


def test_export_json_to_stdout_keeps_the_exact_token_texts(hostile_file):
    done = cli_bytes("export", hostile_file, "heatmap", "--format", "json")
    assert done.returncode == 0, done.stderr.decode()
    assert raw_controls(done.stdout) == []
    texts = {r["token_text"] for r in json.loads(done.stdout)["records"]}
    assert set(HOSTILE) <= texts


def test_an_error_naming_a_hostile_path_prints_it_escaped(tmp_path):
    done = cli_bytes("info", tmp_path / "no\x1b]0;pwned\x07such.nscope")
    assert done.returncode == 2
    assert raw_controls(done.stderr) == []
    assert "no\\x1b]0;pwned\\x07such.nscope" in done.stderr.decode()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_every_export_of_a_hostile_snapshot_is_printable(hostile_file, fmt):
    from neuroscope_tui.analysis.exports import EXPORTS
    from neuroscope_tui.cli.export import build_table, table_csv, table_json
    from neuroscope_tui.errors import NeuroscopeError
    from neuroscope_tui.snapshot import load_snapshot

    trace = load_snapshot(hostile_file)
    written = 0
    for view in EXPORTS:
        try:
            table = build_table(trace, view)
        except NeuroscopeError:
            continue  # a view this run cannot export: said in one sentence elsewhere
        text = table_csv(table) if fmt == "csv" else table_json(table, view)
        assert raw_controls(text.encode()) == [], view
        written += 1
    assert written >= 7
