"""Tiny sequence sources for the evaluation tests (the ``SequenceSource`` protocol the evaluation reads)."""

from __future__ import annotations

import numpy as np

from conftest import panning_clip, smooth_frames, smooth_images


class PanSource:
    """One clip of ``panning_clip`` (4 px per frame to the left), every frame labelled."""

    def __init__(self, length=5, h=64, w=96):
        self.frames = panning_clip(length, h, w)

    def num_sequences(self):
        return 1

    def sequence_length(self, s):
        return len(self.frames)

    def labelled_indices(self, s):
        return range(len(self.frames))

    def frame(self, s, t):
        return self.frames[t]

    def label(self, s, t):
        return (self.frames[t][:, :, 1] // 26).astype(np.uint8)  # any labels in 0..9


class FakeSource:
    """Two short panning sequences, every frame labelled."""

    def __init__(self, n=2, length=8, h=64, w=96, static=False):
        rng = np.random.default_rng(0)
        self.frames = []
        for _ in range(n):
            base = rng.integers(0, 256, (h, w + 2 * length, 3), dtype=np.uint8)
            self.frames.append([base[:, (0 if static else 2 * t):(0 if static else 2 * t) + w].copy()
                                for t in range(length)])
        self.labels = [[(f[:, :, 0] // 64).astype(np.uint8) for f in seq] for seq in self.frames]

    def num_sequences(self):
        return len(self.frames)

    def sequence_length(self, s):
        return len(self.frames[s])

    def labelled_indices(self, s):
        return range(len(self.frames[s]))

    def frame(self, s, t):
        return self.frames[s][t]

    def label(self, s, t):
        return self.labels[s][t]


class JumpSource(PanSource):
    """Still shots that cut to another texture at t = 5 and t = 10; ``n`` such clips."""

    def __init__(self, n=2, h=64, w=96):
        shots = [smooth_frames(1, h, w, seed=k)[0] for k in range(3)]  # (h, w, 3) uint8 each
        self.frames = [shots[t // 5] for t in range(11)]
        self.n = n

    def num_sequences(self):
        return self.n


class SingleFrames:
    """Three one-frame sequences (as the pix2pix Cityscapes files), labelled in 19 classes."""

    def __init__(self, h=64, w=96):
        images = smooth_images(3, h, w, seed=4)  # (3, 3, h, w) in [0, 1]
        self.frames = [(im.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for im in images]

    def num_sequences(self):
        return len(self.frames)

    def sequence_length(self, s):
        return 1

    def labelled_indices(self, s):
        return (0,)

    def frame(self, s, t):
        return self.frames[s]

    def label(self, s, t):
        return (self.frames[s][:, :, 0] // 14).astype(np.uint8)  # ids 0..18
