"""tui/help.py: the help screen names keys by the characters a user types (issue 9 item 22)."""

from __future__ import annotations

import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.help import HelpScreen, key_label

pytestmark = pytest.mark.anyio


def test_key_labels_are_what_a_user_types():
    assert key_label("plus,equals_sign") == "+ / ="
    assert key_label("full_stop") == "."
    assert key_label("comma") == ","
    assert key_label("escape,q,question_mark") == "Esc / q / ?"
    assert key_label("left,h") == "left / h"
    assert key_label("S,ctrl+s") == "S / ctrl+s"
    assert key_label("tilde") == "~"  # the drift view's key


async def test_help_on_every_view_shows_no_raw_key_names(tmp_path):
    from neuroscope_tui.tui.views.registry import VIEWS

    app = NeuroscopeApp(
        snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path
    )
    async with app.run_test(size=(120, 40)) as pilot:
        for entry in VIEWS:
            await pilot.press(entry.key, "question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            keys = [k for _, rows in app.screen.sections for k, _ in rows]
            raw = [k for k in keys if "_" in k or any(w in k for w in ("stop", "sign"))]
            assert not raw, (entry.name, raw)
            if entry.name == "projection":
                rows = dict((w, k) for _, r in app.screen.sections for k, w in r)
                assert rows["k+1"] == "+ / =" and rows["next token"] == "."
            await pilot.press("escape")
            await pilot.pause()
