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
  flow to the previous frame, which is always the segmenter's reference (Algorithm 1, line 20).
"""

from __future__ import annotations

import math

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
    """(3, H, W) RGB in [0, 1] -> (H, W) uint8 luma (BT.601)."""
    w = x.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (x.float() * w.float()).sum(0).mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


class DISFlow:
    """OpenCV DIS optical flow as a :class:`FlowEstimator`.

    ``scale`` resizes the grey frames before DIS (1.0 = full resolution; DIS then works down its
    own pyramid, to 1/4 at its finest level for the "fast" preset). The dense result is averaged
    onto the 1/4 grid and converted to 1/4-grid pixels. DIS(I0=current, I1=reference) gives
    current(x) ~ reference(x + flow(x)): the backward flow of the warp convention.
    """

    PRESETS = ("ultrafast", "fast", "medium")

    def __init__(self, *, preset: str = "fast", scale: float = 1.0) -> None:
        import cv2
        if preset not in self.PRESETS:
            raise EvssError(f"DIS preset {preset!r} is not one of {self.PRESETS}")
        if not 0 < scale <= 1:
            raise EvssError(f"DIS scale must lie in (0, 1], got {scale}")
        code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
        self.preset, self.scale = preset, scale
        self._dis = cv2.DISOpticalFlow_create(code)

    def __call__(self, reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        import cv2
        n, _, h, w = current.shape
        gh, gw = math.ceil(h / 4), math.ceil(w / 4)
        sh, sw = max(8, round(h * self.scale)), max(8, round(w * self.scale))
        out = np.empty((n, 2, gh, gw), np.float32)
        for b in range(n):
            cur, ref = _grey_u8(current[b]), _grey_u8(reference[b])  # (H, W)
            if (sh, sw) != (h, w):
                cur = cv2.resize(cur, (sw, sh), interpolation=cv2.INTER_AREA)
                ref = cv2.resize(ref, (sw, sh), interpolation=cv2.INTER_AREA)
            flow = self._dis.calc(cur, ref, None)  # (sh, sw, 2) pixels at this scale
            flow = cv2.resize(flow, (gw, gh), interpolation=cv2.INTER_AREA)  # (gh, gw, 2)
            out[b, 0] = flow[..., 0] * (gw / sw)  # -> 1/4-grid pixels
            out[b, 1] = flow[..., 1] * (gh / sh)
        return torch.from_numpy(out).to(device=current.device, dtype=current.dtype)  # (N, 2, h/4, w/4)


def vectors_to_flow(vectors: np.ndarray, height: int, width: int, *, past_distance: int = 1,
                    future_distance: int | None = None, fill: np.ndarray | None = None) -> np.ndarray:
    """Rasterise a frame's codec motion vectors into a dense backward flow to the previous frame.

    ``vectors`` is FFmpeg's ``AVMotionVector`` array (PyAV ``MotionVectors.to_ndarray()``): each
    row is a ``w`` x ``h`` block centred at ``(dst_x, dst_y)`` in this frame whose content comes
    from ``src = dst + motion / motion_scale`` in a reference frame, in the past (``source < 0``)
    or the future (``source > 0``). ``src - dst`` is already a backward displacement, so a past
    vector over ``past_distance`` frames gives ``(src - dst) / past_distance`` per frame step and a
    future one ``-(src - dst) / future_distance`` (constant velocity); vectors of bi-predicted
    blocks are averaged. Cells no vector covers (intra blocks) take ``fill`` (the previous frame's
    field) or zero.

    Returns (2, ceil(H/4), ceil(W/4)) float32 in 1/4-grid pixels. FFmpeg does not say which of
    several past references a block uses, so multi-reference streams are read as if every past
    vector pointed to the nearest anchor frame.
    """
    gh, gw = math.ceil(height / 4), math.ceil(width / 4)
    total = np.zeros((2, gh * gw), np.float64)
    count = np.zeros(gh * gw, np.float64)
    if vectors is not None and len(vectors):
        v = vectors
        scale = np.maximum(v["motion_scale"].astype(np.float64), 1.0)
        dx = v["motion_x"] / scale  # src - dst, full-resolution pixels
        dy = v["motion_y"] / scale
        src = v["source"]
        step = np.where(src < 0, 1.0 / max(past_distance, 1),
                        -1.0 / future_distance if future_distance else 0.0)
        keep = (src < 0) | ((src > 0) & bool(future_distance))
        bw, bh = v["w"].astype(np.int64), v["h"].astype(np.int64)
        x0 = v["dst_x"].astype(np.int64) - bw // 2  # block corner, full resolution
        y0 = v["dst_y"].astype(np.int64) - bh // 2
        for (cw, ch) in set(zip((bw[keep] + 3) // 4, (bh[keep] + 3) // 4)):  # one pass per block size
            sel = keep & ((bw + 3) // 4 == cw) & ((bh + 3) // 4 == ch)
            oy, ox = np.meshgrid(np.arange(ch), np.arange(cw), indexing="ij")
            cy = (y0[sel] // 4)[:, None] + oy.ravel()[None]  # (B, ch*cw) cell rows
            cx = (x0[sel] // 4)[:, None] + ox.ravel()[None]
            inside = (cy >= 0) & (cy < gh) & (cx >= 0) & (cx < gw)
            idx = (cy * gw + cx)[inside]
            fx = np.broadcast_to((dx[sel] * step[sel])[:, None], cy.shape)[inside] / 4.0  # -> 1/4-grid pixels
            fy = np.broadcast_to((dy[sel] * step[sel])[:, None], cy.shape)[inside] / 4.0
            total[0] += np.bincount(idx, weights=fx, minlength=gh * gw)
            total[1] += np.bincount(idx, weights=fy, minlength=gh * gw)
            count += np.bincount(idx, minlength=gh * gw)
    flow = np.where(count > 0, total / np.maximum(count, 1), 0.0).reshape(2, gh, gw).astype(np.float32)
    if fill is not None:
        if fill.shape != flow.shape:
            raise ValueError(f"fill field {fill.shape} does not match the flow {flow.shape}")
        empty = (count == 0).reshape(gh, gw)
        flow[:, empty] = fill[:, empty]
    return flow


def b_frame_distances(vectors: np.ndarray | None, past_max: int, future_max: int | None) -> tuple[int, int | None]:
    """Guess how many frames back and ahead a B frame's two references lie.

    FFmpeg exports only the direction of a vector, and with B-pyramids (x264's default) a B frame
    may reference a neighbouring B frame rather than the anchors. Bi-predicted blocks carry a past
    and a future vector of one motion, so their length ratio |future| / |past| estimates
    ``future / past`` distance; the pair of distances within the anchors' span that fits it best
    wins, ties going to the farther pair (the anchors). Without such blocks: the anchors.
    """
    if not future_max or vectors is None or len(vectors) < 2:
        return past_max, future_max
    v = vectors
    block = [tuple(b) for b in np.stack([v["dst_x"], v["dst_y"], v["w"], v["h"]], axis=1).tolist()]
    scale = np.maximum(v["motion_scale"], 1)
    mag = ((np.abs(v["motion_x"]) + np.abs(v["motion_y"])) / scale).tolist()  # L1 length, pixels
    past = {b: m for b, m, s in zip(block, mag, v["source"]) if s < 0}
    pairs = [(past[b], m) for b, m, s in zip(block, mag, v["source"]) if s > 0 and b in past]
    pairs = [(p, f) for p, f in pairs if p + f >= 1.0]  # a pixel of motion at least, or the ratio is noise
    if len(pairs) < 4:
        return past_max, future_max
    p_sum, f_sum = sum(p for p, _ in pairs), sum(f for _, f in pairs)
    if p_sum <= 0 or f_sum <= 0:
        return past_max, future_max
    ratio = math.log(f_sum / p_sum)
    candidates = [(abs(math.log(df / dp) - ratio), -(dp + df), dp, df)
                  for dp in range(1, past_max + 1) for df in range(1, future_max + 1)]
    _, _, dp, df = min(candidates, key=lambda c: (round(c[0], 1), c[1]))
    return dp, df


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
