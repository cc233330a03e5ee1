"""Pictures a person would rather look at than read: colour-coded labels, panels and contact sheets.

Every function takes and returns (H, W, 3) uint8 RGB arrays, ready for a video writer or a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from evss.classes import LABEL_SPACES

LAYOUTS = ("overlay", "side")


def overlay(frame: np.ndarray, labels: np.ndarray, *, label_space: str = "camvid", alpha: float = 0.5) -> np.ndarray:
    """Blend colour-coded labels (H, W) over an RGB frame (H, W, 3) uint8; ``alpha`` = label weight."""
    color = LABEL_SPACES[label_space].colorize(labels)  # (H, W, 3)
    out = frame.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha
    return (out + 0.5).astype(np.uint8)


def side_by_side(frame: np.ndarray, labels: np.ndarray, *, label_space: str = "camvid") -> np.ndarray:
    """The frame and its colour-coded labels next to each other: (H, 2W, 3)."""
    return np.concatenate([frame, LABEL_SPACES[label_space].colorize(labels)], axis=1)


def render(frame: np.ndarray, labels: np.ndarray, *, layout: str = "overlay", label_space: str = "camvid",
           alpha: float = 0.5) -> np.ndarray:
    """One output frame of ``evss segment``: ``layout`` is "overlay" (H, W) or "side" (H, 2W)."""
    if layout == "overlay":
        return overlay(frame, labels, label_space=label_space, alpha=alpha)
    if layout == "side":
        return side_by_side(frame, labels, label_space=label_space)
    raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")


def gray(m: np.ndarray) -> np.ndarray:
    """(H, W) map in [0, 1] -> (H, W, 3) uint8 grey."""
    g = (np.clip(m, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def caption(img: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner (white on a dark box), on a copy."""
    import cv2
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
    import cv2

    from evss.checkpoint import atomic_write

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
