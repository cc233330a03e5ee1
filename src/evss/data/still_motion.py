"""Short clips made from labelled stills by a simulated forward drive (training data for CoNet).

CamVid's training split is labelled at 1 Hz with no frames in between, so the EVSS stage cannot
take pairs a few frames apart in its city. :class:`StillMotionClips` turns every labelled still
into a clip of ``frames`` frames: frame ``t`` is the still seen by a camera that has moved forward
``t`` steps (a crop that shrinks by ``zoom`` per frame around a focus point that drifts sideways
by ``pan`` of the width per frame), resampled to the still's size. Labels follow with nearest
neighbour, so every frame is labelled. The motion is global (no independently moving objects, no
parallax): these pairs teach CoNet the look of the target city and the blur of repeated warps;
moving objects come from the other sources of a run (videos, SynthDrive).

Implements :class:`evss.data.sources.SequenceSource`; frames are made on demand (a few ms each).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from evss.classes import IGNORE_INDEX


@dataclass(frozen=True)
class StillMotionConfig:
    frames: int = 6  # frames per clip (pairs need |i - k| < frames)
    zoom: float = 0.03  # the crop shrinks by this fraction per frame (forward motion)
    pan: float = 0.01  # the focus point drifts this fraction of the width per frame (left or right)

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"still-motion clips need at least 2 frames, got {self.frames}")
        if not 0.0 <= self.zoom <= 0.2:
            raise ValueError(f"still-motion zoom must be in [0, 0.2] per frame, got {self.zoom}")
        if not 0.0 <= self.pan <= 0.1:
            raise ValueError(f"still-motion pan must be in [0, 0.1] of the width per frame, got {self.pan}")


def view_matrix(height: int, width: int, t: int, *, focus: tuple[float, float], direction: float,
                config: StillMotionConfig) -> np.ndarray:
    """(2, 3) map from frame-``t`` pixel centres to still coordinates (cv2's inverse map).

    Frame 0 is the still itself; frame ``t`` magnifies by ``(1 + zoom)^t`` about a focus point
    that has drifted ``t * pan * width`` pixels in ``direction`` (+1 right, -1 left). The view is
    clamped so it never leaves the still: every frame is made of real pixels.
    """
    scale = (1.0 + config.zoom) ** t  # magnification of frame t
    fx, fy = focus
    fx += direction * config.pan * width * t
    # frame pixel p maps to focus + (p - focus) / scale; keep that view inside [0, W-1] x [0, H-1]
    inv = 1.0 / scale
    x0 = np.clip(fx - fx * inv, 0.0, (width - 1) * (1.0 - inv))
    y0 = np.clip(fy - fy * inv, 0.0, (height - 1) * (1.0 - inv))
    return np.array([[inv, 0.0, x0], [0.0, inv, y0]], dtype=np.float64)


class StillMotionClips:
    """One clip per labelled frame of ``stills`` (a SequenceSource), ``config.frames`` long."""

    def __init__(self, stills: Any, *, config: StillMotionConfig = StillMotionConfig(), seed: int = 0) -> None:
        self.stills = stills
        self.config = config
        self.items: tuple[tuple[int, int], ...] = tuple(
            (s, t) for s in range(stills.num_sequences()) for t in stills.labelled_indices(s))
        if not self.items:
            raise ValueError("still-motion clips need labelled frames; the source has none")
        rng = np.random.default_rng(seed)
        # focus near the middle (the vanishing point of a forward-looking camera) and a drift side
        self._focus = rng.uniform(0.35, 0.65, size=(len(self.items), 2))
        self._direction = rng.choice([-1.0, 1.0], size=len(self.items))
        self._read: tuple[int, np.ndarray, np.ndarray | None] | None = None  # the last still read

    def _still(self, s: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(image, label) of clip ``s``'s still, read once for the pair's key frame, frame and label."""
        if self._read is None or self._read[0] != s:
            self._read = (s, self.stills.frame(*self.items[s]), self.stills.label(*self.items[s]))
        return self._read[1], self._read[2]

    def num_sequences(self) -> int:
        return len(self.items)

    def sequence_length(self, s: int) -> int:
        return self.config.frames

    def labelled_indices(self, s: int) -> Sequence[int]:
        return range(self.config.frames)

    def _matrix(self, s: int, t: int, shape: tuple[int, ...]) -> np.ndarray:
        if not 0 <= t < self.config.frames:
            raise IndexError(f"frame {t} of a {self.config.frames}-frame still-motion clip")
        h, w = shape[:2]
        fx, fy = self._focus[s]
        return view_matrix(h, w, t, focus=(fx * (w - 1), fy * (h - 1)), direction=float(self._direction[s]),
                           config=self.config)

    def frame(self, s: int, t: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB, bilinear."""
        still = self._still(s)[0]
        m = self._matrix(s, t, still.shape)
        h, w = still.shape[:2]
        return cv2.warpAffine(still, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    def label(self, s: int, t: int) -> np.ndarray:
        """(H, W) uint8 ids, nearest neighbour; 255 = ignore as in the still."""
        still = self._still(s)[1]
        if still is None:  # labelled_indices promised a label
            raise ValueError(f"still {self.items[s]} has no label")
        m = self._matrix(s, t, still.shape)
        h, w = still.shape[:2]
        return cv2.warpAffine(still, m, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_INDEX)
