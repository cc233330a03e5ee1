"""Codec motion vectors as a dense backward flow: what ``flags2=+export_mvs`` gives, per frame.

:class:`MotionTracker` turns each decoded frame's vectors into the backward flow to the previous
frame, upright and on the output's 1/4 grid, in the convention of :mod:`evss.models.warp`, ready
for :class:`evss.flow_sources.MVFlow`; :func:`vectors_to_flow` rasterises one frame's vectors and
:func:`b_frame_distances` scales a B frame's.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from evss.media.reader import Undecoded, VideoInfo
from evss.media.resize import resize_flow, rotate_flow


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


def with_anchor_distances(frames: Iterator, with_vectors: bool) -> Iterator:
    """Yield (frame, vectors, (past_distance, future_distance)) in display order.

    A P frame's vectors point to the previous anchor (I or P) frame, a B frame's to the anchors
    on either side; FFmpeg exports only the direction. To scale vectors to one frame step, B frames
    wait here until the next anchor is decoded (a bounded look-ahead: the encoder's B-frame run).
    """
    if not with_vectors:
        for f in frames:
            yield f, None, (1, None)
        return
    last_anchor: int | None = None
    held: list = []  # B frames waiting for the next anchor: (index, frame, vectors)
    for i, f in enumerate(frames):
        if isinstance(f, Undecoded):  # no picture, no vectors: the frames after it start a new chain
            for j, fb, mb in held:
                yield fb, mb, (j - last_anchor if last_anchor is not None else 1, None)
            held.clear()
            yield f, None, (1, None)
            last_anchor = None
            continue
        sd = f.side_data.get("MOTION_VECTORS")
        mvs = sd.to_ndarray() if sd is not None and len(sd) else None
        if int(f.pict_type) == 3:  # B
            held.append((i, f, mvs))
            continue
        for j, fb, mb in held:
            yield fb, mb, (j - last_anchor if last_anchor is not None else 1, i - j)
        held.clear()
        yield f, mvs, (i - last_anchor if last_anchor is not None else 1, None)
        last_anchor = i
    for j, fb, mb in held:  # a stream that ends on B frames
        yield fb, mb, (j - last_anchor if last_anchor is not None else 1, None)


class MotionTracker:
    """Turns each frame's motion vectors into the upright, resized backward flow to the previous frame."""

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self.grid = (math.ceil(info.source_height / 4), math.ceil(info.source_width / 4))
        self.previous: np.ndarray | None = None  # on the source 1/4 grid

    def update(self, vectors: np.ndarray | None, past: int, future: int | None) -> tuple[np.ndarray, str]:
        info = self.info
        if vectors is None:
            # An I frame (or a codec that exports nothing): keep the last motion, a constant-velocity guess.
            kind = "previous" if self.previous is not None else "none"
            flow = self.previous if self.previous is not None else np.zeros((2, *self.grid), np.float32)
        else:
            past, future = b_frame_distances(vectors, past, future)
            flow = vectors_to_flow(vectors, info.source_height, info.source_width, past_distance=past,
                                   future_distance=future, fill=self.previous)
            kind = "vectors"
            self.previous = flow
        out = rotate_flow(flow, info.rotation)
        out = resize_flow(out, math.ceil(info.height / 4), math.ceil(info.width / 4))
        return out, kind
