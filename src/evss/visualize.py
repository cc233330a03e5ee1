"""Pictures a person would rather look at than read: colour-coded labels and contact sheets."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from evss.classes import LABEL_SPACES


def overlay(frame: np.ndarray, labels: np.ndarray, *, label_space: str = "camvid", alpha: float = 0.5) -> np.ndarray:
    """Blend colour-coded labels (H, W) over an RGB frame (H, W, 3) uint8."""
    color = LABEL_SPACES[label_space].colorize(labels)  # (H, W, 3)
    return (frame.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha).astype(np.uint8)


def gray(m: np.ndarray) -> np.ndarray:
    """(H, W) map in [0, 1] -> (H, W, 3) uint8 grey."""
    g = (np.clip(m, 0, 1) * 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def contact_sheet(path: str | Path, frames: Sequence[np.ndarray], results: Sequence, gt: Sequence[np.ndarray] | None,
                  *, label_space: str = "camvid", rows: int = 5) -> Path:
    """One row per sampled frame: frame, prediction, fine distortion map, ground truth."""
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
    atomic_write(path, lambda tmp: cv2.imwrite(str(tmp.with_suffix(".png")), sheet[:, :, ::-1]) and
                 Path(tmp.with_suffix(".png")).replace(tmp))
    return path
