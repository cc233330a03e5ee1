"""Flow sources for N_flow besides the learned FlowNet: OpenCV DIS and codec motion vectors.

Each source meets :class:`evss.models.flow.FlowEstimator`: ``source(reference, current)`` with
frames (N, 3, H, W) in [0, 1] returns the backward flow of ``current`` to ``reference`` at
(N, 2, ceil(H/4), ceil(W/4)) in 1/4-grid pixels (convention of :mod:`evss.models.warp`).

* ``learned``: the model's FlowNet (the paper's N_flow).
* ``dis``: OpenCV's DIS optical flow (Kroeger et al., ECCV 2016); no training, fast on a CPU.
* ``mv``: the block motion vectors the video decoder already has (``flags2=+export_mvs``). They
  cost nothing to compute but belong to the decoded stream, not to the pixels handed in, so
  :class:`MVFlow` is *fed* each frame's field by the reader (``Frame.motion``) before the
  segmenter steps; the frames passed to ``__call__`` only fix the output size. The field is the
  flow to the previous frame, which is always the segmenter's reference (Algorithm 1, line 20);
  :mod:`evss.media.motion_vectors` builds it from the decoder's vectors.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from evss.errors import EvssError
from evss.models.flow import FlowEstimator

FLOW_SOURCES = ("learned", "dis", "mv")


def make_flow_source(name: str, model: nn.Module | None = None) -> FlowEstimator:
    """``learned`` -> ``model.flow``; ``dis`` -> :class:`DISFlow`; ``mv`` -> :class:`MVFlow` (feed it)."""
    if name == "learned":
        if model is None:
            raise EvssError("the learned flow source needs a model")
        return model.flow
    if name == "dis":
        return DISFlow()
    if name == "mv":
        return MVFlow()
    raise EvssError(f"flow source {name!r} is not one of {FLOW_SOURCES}")


def _grey_u8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] -> (H, W) uint8 luma (BT.601), rounded to nearest."""
    x = x.float()
    g = x[0] * (0.299 * 255)  # (H, W): one pass per channel, in place (2.5x faster than a weighted sum)
    g.add_(x[1], alpha=0.587 * 255).add_(x[2], alpha=0.114 * 255)
    return g.add_(0.5).clamp_(0, 255).to(torch.uint8).cpu().numpy()


def _version(x: torch.Tensor) -> int:
    """In-place changes bump a tensor's version (inference tensors have none: -1)."""
    return -1 if x.is_inference() else x._version


class DISFlow:
    """OpenCV DIS optical flow as a :class:`FlowEstimator`.

    ``scale`` resizes the grey frames before DIS (1.0 = full resolution; DIS then works down its
    own pyramid). The default preset is "ultrafast" at full resolution: chosen on the dash-cam clips
    (warp-only agreement with the per-frame labels, ``benchmarks/dis_presets.py``), where it matched
    or beat "fast" and "medium" at half the cost of "fast". The dense result is averaged
    onto the 1/4 grid and converted to 1/4-grid pixels. DIS(I0=current, I1=reference) gives
    current(x) ~ reference(x + flow(x)): the backward flow of the warp convention.
    """

    PRESETS = ("ultrafast", "fast", "medium")

    def __init__(self, *, preset: str = "ultrafast", scale: float = 1.0) -> None:
        if preset not in self.PRESETS:
            raise EvssError(f"DIS preset {preset!r} is not one of {self.PRESETS}")
        if not 0 < scale <= 1:
            raise EvssError(f"DIS scale must lie in (0, 1], got {scale}")
        code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
        self.preset, self.scale = preset, scale
        self._dis = cv2.DISOpticalFlow_create(code)
        # The grey image of the last ``current`` batch: streaming passes it back as the next
        # ``reference``, so each frame is converted once. Held (not an address) so it cannot be stale.
        self._last: tuple[torch.Tensor, int, list[np.ndarray]] | None = None

    def _greys(self, x: torch.Tensor) -> list[np.ndarray]:
        if self._last is not None and self._last[0] is x and self._last[1] == _version(x):
            return self._last[2]
        return [_grey_u8(x[b]) for b in range(x.shape[0])]

    def __call__(self, reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        n, _, h, w = current.shape
        gh, gw = math.ceil(h / 4), math.ceil(w / 4)
        sh, sw = max(8, round(h * self.scale)), max(8, round(w * self.scale))
        out = np.empty((n, 2, gh, gw), np.float32)
        refs, curs = self._greys(reference), self._greys(current)  # N x (H, W) uint8
        self._last = (current, _version(current), curs)
        for b in range(n):
            cur, ref = curs[b], refs[b]  # (H, W)
            if (sh, sw) != (h, w):
                cur = cv2.resize(cur, (sw, sh), interpolation=cv2.INTER_AREA)
                ref = cv2.resize(ref, (sw, sh), interpolation=cv2.INTER_AREA)
            flow = self._dis.calc(cur, ref, None)  # (sh, sw, 2) pixels at this scale
            flow = cv2.resize(flow, (gw, gh), interpolation=cv2.INTER_AREA)  # (gh, gw, 2)
            out[b, 0] = flow[..., 0] * (gw / sw)  # -> 1/4-grid pixels
            out[b, 1] = flow[..., 1] * (gh / sh)
        return torch.from_numpy(out).to(device=current.device, dtype=current.dtype)  # (N, 2, h/4, w/4)


class MVFlow:
    """Codec motion vectors as a :class:`FlowEstimator`: ``feed(frame.motion)`` before each step.

    The fed field covers the unpadded frame; the segmenter pads frames at the bottom/right by
    edge replication, so the field is edge-replicated onto the padded 1/4 grid the same way. With
    nothing fed (a first frame, an I frame at the start) the flow is zero.
    """

    def __init__(self) -> None:
        self._motion: np.ndarray | None = None

    def feed(self, motion: np.ndarray | None) -> None:
        """The current frame's backward flow to the previous frame, (2, h, w) in 1/4-grid pixels."""
        self._motion = motion

    def __call__(self, reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        n, _, h, w = current.shape
        gh, gw = math.ceil(h / 4), math.ceil(w / 4)
        if self._motion is None:
            return current.new_zeros(n, 2, gh, gw)
        m = torch.from_numpy(np.ascontiguousarray(self._motion)).to(device=current.device, dtype=current.dtype)
        mh, mw = m.shape[-2:]
        if mh > gh or mw > gw:
            raise EvssError(f"motion field {mh}x{mw} is larger than the frame's 1/4 grid {gh}x{gw}: "
                            "was it fed for another frame size?")
        m = F.pad(m[None], (0, gw - mw, 0, gh - mh), mode="replicate") if (mh, mw) != (gh, gw) else m[None]
        return m.expand(n, 2, gh, gw)  # (N, 2, h/4, w/4)
