"""Resizing frames, labels, maps and flow fields, and turning them upright.

Images are averaged down (area) and interpolated up (bilinear); class ids are never averaged
(nearest neighbour); a flow field's vectors are scaled with its grid.
"""

from __future__ import annotations

import cv2
import numpy as np


def output_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """Scale (height, width) down so the longer side is at most ``max_size``; never up."""
    if not max_size or max(height, width) <= max_size:
        return height, width
    s = max_size / max(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def resize_image(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (H, W, 3) uint8 frame at (height, width): area averaging down, bilinear up."""
    if img.shape[:2] == (height, width):
        return img
    up = height * width > img.shape[0] * img.shape[1]
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR if up else cv2.INTER_AREA)


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) uint8 class ids at (height, width), nearest neighbour (ids are not averaged)."""
    if labels.shape[:2] == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def gray_u8(m: np.ndarray) -> np.ndarray:
    """An (h, w) map in [0, 1] quantised to uint8 0-255 (a map already uint8 is returned as it is)."""
    return m if m.dtype == np.uint8 else (np.clip(m, 0, 1) * 255 + 0.5).astype(np.uint8)


def resize_map(m: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (h, w) map in [0, 1] as uint8 grey at (height, width), bilinear (quantised first: 1 byte a pixel)."""
    g = gray_u8(m)
    return g if g.shape[:2] == (height, width) else cv2.resize(g, (width, height), interpolation=cv2.INTER_LINEAR)


def rotate_image(img: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate counter-clockwise by a multiple of 90 degrees."""
    k = (degrees // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def rotate_flow(flow: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate a (2, H, W) flow field counter-clockwise by a multiple of 90 degrees, like its frame.

    ``np.rot90`` maps old pixel (x, y) to (y, W-1-x), so a displacement (dx, dy) becomes (dy, -dx).
    """
    out = flow
    for _ in range((degrees // 90) % 4):
        dx, dy = out[0], out[1]
        out = np.stack([np.rot90(dy), -np.rot90(dx)])  # (2, W, H)
    return np.ascontiguousarray(out)


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample a (2, h, w) flow field to (2, height, width) grid cells, scaling the vectors too."""
    _, h, w = flow.shape
    if (h, w) == (height, width):
        return flow
    out = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in flow])
    out[0] *= width / w
    out[1] *= height / h
    return out.astype(np.float32)
