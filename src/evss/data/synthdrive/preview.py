"""A contact sheet of SynthDrive clips (frames, labels, flow, occlusion) and the flow colour wheel."""

from __future__ import annotations

import cv2
import numpy as np

from evss.classes import CAMVID
from evss.data.synthdrive.clip import Clip
from evss.errors import ConfigError


def flow_to_rgb(flow: np.ndarray, max_mag: float | None = None) -> np.ndarray:
    """(2, H, W) flow -> (H, W, 3) uint8 colour-wheel image: hue = direction, saturation = speed
    relative to ``max_mag`` (default: the 99th percentile), white = no motion."""
    dx, dy = flow[0], flow[1]
    mag = np.hypot(dx, dy)
    if max_mag is None:
        max_mag = float(np.percentile(mag, 99)) + 1e-6
    hsv = np.empty(flow.shape[1:] + (3,), np.float32)
    hsv[..., 0] = (np.degrees(np.arctan2(dy, dx)) + 360) % 360
    hsv[..., 1] = np.clip(mag / max_mag, 0, 1)
    hsv[..., 2] = 1.0
    return (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255 + 0.5).astype(np.uint8)


def preview_row(clip: Clip) -> list[np.ndarray]:
    """The five (H, W, 3) uint8 panels of one clip's row, titled in :func:`contact_sheet`."""
    T = len(clip.frames)
    t = min(T - 1, max(1, T // 2))
    frame = clip.frames[t]
    labels = CAMVID.colorize(clip.labels[t])
    overlay = (0.35 * frame + 0.65 * labels).astype(np.uint8)
    flow = flow_to_rgb(clip.flow_bwd[t])
    h, w = frame.shape[:2]
    r = max(8, min(h, w) // 8)  # colour-wheel legend in the corner
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
    wheel = flow_to_rgb(np.stack([xx, yy]), max_mag=float(r))
    inside = xx ** 2 + yy ** 2 <= r * r
    flow[2:2 + 2 * r + 1, w - 2 * r - 3:w - 2][inside] = wheel[inside]
    occ = (frame * 0.4).astype(np.uint8)
    occ[clip.occlusion[t]] = (255, 0, 255)
    return [clip.frames[0], frame, overlay, flow, occ]


def contact_sheet(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of :func:`preview_row` panels, scaled to at most 384 px wide, under a title line."""
    titles = ("frame 0", "frame t", "labels t", "flow t->t-1", "occlusion t")
    h, w = rows[0][0].shape[:2]
    scale = min(1.0, 384 / w)
    th, tw = max(1, int(h * scale)), max(1, int(w * scale))
    head = 22
    sheet = np.full((head + len(rows) * (th + 4), len(titles) * (tw + 4), 3), 255, np.uint8)
    for j, title in enumerate(titles):
        cv2.putText(sheet, title, (j * (tw + 4) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = head + i * (th + 4), j * (tw + 4)
            sheet[y:y + th, x:x + tw] = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
    return sheet


def make_preview(clips: list[Clip]) -> np.ndarray:
    """(H', W', 3) uint8 RGB contact sheet: one row per clip (frame 0, mid frame, its labels,
    backward flow with a colour-wheel legend, occlusion in magenta)."""
    if not clips:
        raise ConfigError("make_preview needs at least one clip")
    return contact_sheet([preview_row(c) for c in clips])
