"""tui/views/lens.py: the KL plot and text never show "-0.00" (issue 9 item 22): a KL
divergence is never negative; float32 rounding just below zero is shown as 0."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.views.lens import kl_shown
from neuroscope_tui.tui.widgets.colorbar import format_value

pytestmark = pytest.mark.anyio


def test_kl_shown_floors_rounding_at_zero_and_keeps_nan():
    got = kl_shown(np.array([-1e-9, 0.0, 0.25, np.nan], dtype=np.float32))
    assert got[0] == 0.0 and not np.signbit(got[0]) and got[2] == 0.25 and np.isnan(got[3])
    assert format_value(-0.0) == "0" and format_value(-1e-9 + 1e-9) == "0"


async def test_kl_plot_of_a_token_where_every_layer_agrees_shows_no_minus_zero(tmp_path):
    trace = synthetic_trace()
    kl = trace.arrays["lens.kl"].copy()
    kl[:, 0] = [-3e-9, -1e-9, 0.0, -2e-9, 0.0, -1e-9]  # the final layer agrees with itself
    trace.arrays["lens.kl"] = kl
    app = NeuroscopeApp(snapshot=trace, snapshot_path=str(SCAN_FIXTURE), save_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        await pilot.pause(0.3)
        svg = app.export_screenshot()
        assert "KL(final || layer) at token 0" in svg.replace("&#160;", " ")
        assert "-0.0" not in svg and "-0" not in svg.replace("&#160;", " ").split("KL(final")[1]
