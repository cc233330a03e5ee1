"""SynthDrive contact sheet (evss.data.synthdrive.preview)."""

from __future__ import annotations

import numpy as np

from evss.data.synthdrive import SynthDriveConfig, generate_clip, make_preview

SMALL = SynthDriveConfig(height=64, width=128, frames=4)


def test_preview_is_an_rgb_sheet() -> None:
    clip = generate_clip(SMALL, seed=3)
    sheet = make_preview([clip, clip])
    assert sheet.ndim == 3 and sheet.shape[2] == 3 and sheet.dtype == np.uint8
    assert sheet.shape[0] > 2 * SMALL.height and sheet.shape[1] > 4 * SMALL.width
