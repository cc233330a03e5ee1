"""Pictures a person would rather look at than read: colour-coded labels, panels and contact sheets.

Every function takes and returns (H, W, 3) uint8 RGB arrays, ready for a video writer or a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from evss.classes import LABEL_SPACES
from evss.media.atomic import atomic_write
from evss.media.resize import gray_u8

LAYOUTS = ("overlay", "side")


# Rows per strip when rendering: the float temporaries stay near 8 MB however large the frame.
STRIP_PIXELS = 1 << 21


def _strips(height: int, width: int) -> range:
    return range(0, height, max(1, STRIP_PIXELS // max(1, width)))


def overlay(frame: np.ndarray, labels: np.ndarray, *, label_space: str = "camvid", alpha: float = 0.5) -> np.ndarray:
    """Blend colour-coded labels (H, W) over an RGB frame (H, W, 3) uint8; ``alpha`` = label weight.

    Rendered in strips of rows, so a huge frame costs its output and a few MB, not 8x its size in floats.
    """
    space = LABEL_SPACES[label_space]
    h, w = frame.shape[:2]
    out = np.empty_like(frame)  # (H, W, 3) uint8
    step = max(1, STRIP_PIXELS // max(1, w))
    for y in _strips(h, w):
        color = space.colorize(labels[y:y + step])  # (rows, W, 3)
        # saturating uint8 blend, rounded to nearest, without float copies of the strip
        cv2.addWeighted(np.ascontiguousarray(frame[y:y + step]), 1 - alpha, color, alpha, 0.0, dst=out[y:y + step])
    return out


def side_by_side(frame: np.ndarray, labels: np.ndarray, *, label_space: str = "camvid") -> np.ndarray:
    """The frame and its colour-coded labels next to each other: (H, 2W, 3)."""
    space = LABEL_SPACES[label_space]
    h, w = frame.shape[:2]
    out = np.empty((h, 2 * w, 3), dtype=np.uint8)
    out[:, :w] = frame
    step = max(1, STRIP_PIXELS // max(1, w))
    for y in _strips(h, w):
        out[y:y + step, w:] = space.colorize(labels[y:y + step])
    return out


def draw_legend(img: np.ndarray, label_space: str = "camvid") -> np.ndarray:
    """Draw a colour legend of ``label_space``'s classes (CamVid's 11, Cityscapes' 19) in the
    bottom-left corner, in place; skipped on frames too small to hold it readably (under 240 px wide
    or 160 px high)."""
    h, w = img.shape[:2]
    if w < 240 or h < 160:
        return img
    space = LABEL_SPACES[label_space]
    scale = min(0.45, max(0.3, h / 1200))
    (tw, th), base = cv2.getTextSize(max(space.names, key=len), cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    row = th + base + 3
    # the fewest columns (up to 3, e.g. Cityscapes' 19 classes on a small frame) that keep the legend
    # under 60 % of the height and inside the width; 2 where none does
    n = space.num_classes
    cols = next((c for c in (1, 2, 3) if row * -(-n // c) < h * 0.6 and (tw + row + 8) * c <= w), 2)
    per_col = -(-n // cols)
    box_w, box_h = (tw + row + 8) * cols, row * per_col + 4
    y0 = h - box_h
    region = img[y0:h, 0:box_w]
    region[:] = (region.astype(np.float32) * 0.35).astype(np.uint8)  # darken behind the text
    for i, (name, color) in enumerate(zip(space.names, space.palette)):
        x = (i // per_col) * (tw + row + 8) + 3
        y = y0 + 2 + (i % per_col) * row
        cv2.rectangle(img, (x, y + 1), (x + row - 4, y + row - 3), tuple(int(c) for c in color), thickness=-1)
        cv2.putText(img, name, (x + row, y + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def render(frame: np.ndarray, labels: np.ndarray, *, layout: str = "overlay", label_space: str = "camvid",
           alpha: float = 0.5, legend: bool = True) -> np.ndarray:
    """One output frame of ``evss segment``: ``layout`` is "overlay" (H, W) or "side" (H, 2W),
    with a colour legend of the classes unless ``legend`` is False."""
    if layout == "overlay":
        out = overlay(frame, labels, label_space=label_space, alpha=alpha)
    elif layout == "side":
        out = side_by_side(frame, labels, label_space=label_space)
    else:
        raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")
    return draw_legend(out, label_space) if legend else out


def gray(m: np.ndarray) -> np.ndarray:
    """(H, W) map in [0, 1] (or already quantised: uint8 0-255) -> (H, W, 3) uint8 grey."""
    return np.repeat(gray_u8(m)[:, :, None], 3, axis=2)


def caption(img: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner (white on a dark box), on a copy."""
    out = img.copy()
    scale = max(0.35, min(img.shape[0], img.shape[1] * 0.5) / 500)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (tw + 6, th + base + 6), (0, 0, 0), thickness=-1)
    cv2.putText(out, text, (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def panel(frame: np.ndarray, prediction: np.ndarray, *, ground_truth: np.ndarray | None = None,
          fine_map: np.ndarray | None = None, label_space: str = "camvid",
          is_keyframe: bool | None = None) -> np.ndarray:
    """A 2x2 panel: frame | ground truth / prediction | fine distortion map, each captioned.

    Missing parts are black; the result is (2H, 2W, 3).
    """
    space = LABEL_SPACES[label_space]
    black = np.zeros_like(frame)
    key = "" if is_keyframe is None else (" (keyframe)" if is_keyframe else " (propagated)")
    cells = [
        caption(frame, "frame"),
        caption(space.colorize(ground_truth), "ground truth") if ground_truth is not None else black,
        caption(space.colorize(prediction), "prediction" + key),
        caption(gray(fine_map), "fine distortion map") if fine_map is not None else black,
    ]
    return np.concatenate([np.concatenate(cells[:2], axis=1), np.concatenate(cells[2:], axis=1)], axis=0)


def contact_sheet(path: str | Path, frames: Sequence[np.ndarray], results: Sequence, gt: Sequence[np.ndarray] | None,
                  *, label_space: str = "camvid", rows: int = 5) -> Path:
    """A PNG with one row per sampled frame: frame, prediction, fine distortion map, ground truth."""
    space = LABEL_SPACES[label_space]
    idx = np.linspace(0, len(results) - 1, num=min(rows, len(results))).round().astype(int)
    lines = []
    for i in idx:
        r = results[i]
        cells = [frames[i], space.colorize(r.labels), gray(r.maps.get("fine", np.zeros(r.labels.shape)))]
        if gt is not None:
            cells.append(space.colorize(gt[i]))
        lines.append(np.concatenate(cells, axis=1))
    sheet = np.concatenate(lines, axis=0)
    path = Path(path)

    def write(tmp: Path) -> None:
        ok, buf = cv2.imencode(".png", sheet[:, :, ::-1])
        if not ok:
            raise OSError(f"{path}: PNG encoding failed")
        tmp.write_bytes(buf.tobytes())

    atomic_write(path, write)
    return path
