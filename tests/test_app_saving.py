"""Saving from the app (tui/saving.py): `s` on a full disk is a notice, and file names made
from any model name (a NUL byte, 300 characters, slashes) are safe for `s` and the `x` CSV key."""

from __future__ import annotations

import re

import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from _fixtures_features import ViewHost, projection_trace
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.saving import NAME_LIMIT, default_file_name, safe_name
from test_atomic_file import big_trace, leftovers, small_disk  # noqa: F401 (fixture)
from test_features_views import settle

pytestmark = pytest.mark.anyio

HOSTILE_NAMES = ["model\x00name", "m" * 300, "../../etc/passwd", "a/b\\c\x1b[31m", "..", "é" * 200]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_file_names_from_any_model_name_are_safe(name):
    part = safe_name(name)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", part) and not part.startswith(".")
    assert 0 < len(part) <= NAME_LIMIT
    assert "/" not in default_file_name(name, ".nscope", when=0)


async def test_save_key_on_a_full_disk_is_a_notice(small_disk):  # noqa: F811
    old = small_disk / "keep.nscope"
    old.write_bytes(b"old")
    app = NeuroscopeApp(snapshot=big_trace(), snapshot_path=str(SCAN_FIXTURE), save_dir=small_disk)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        assert app.last_saved is None and app.is_running
        notes = [n.message for n in app._notifications]
        assert any(m.startswith("not saved:") and "No space left on device" in m for m in notes)
    assert old.read_bytes() == b"old"
    assert leftovers(small_disk) == [] and sorted(p.name for p in small_disk.iterdir()) == [
        "keep.nscope"
    ]


@pytest.mark.parametrize("name", ["model\x00name", "m" * 300])
async def test_csv_key_with_a_hostile_model_name(tmp_path, name):
    from neuroscope_tui.tui.views.projection import ProjectionView

    trace = projection_trace()
    trace.model.name = name
    view = ProjectionView()
    host = ViewHost(view, trace)
    host.save_dir = tmp_path
    async with host.run_test(size=(120, 36)) as pilot:
        await settle(pilot, view)
        await pilot.press("x")
        await pilot.pause()
    (csv,) = tmp_path.glob("*.csv")
    assert csv.name.startswith(safe_name(name) + "-projection-")
    assert csv.read_text().startswith("token,text,")


async def test_save_key_with_a_hostile_model_name(tmp_path):
    trace = synthetic_trace()
    trace.model.name = "bad\x00/" + "x" * 300
    app = NeuroscopeApp(snapshot=trace, snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        assert app.last_saved is not None and app.last_saved.parent == tmp_path
