"""Exact flow and occlusion between two rendered frames of a scene.

Every pixel's buffers give its 3D point (inverse depth) and its object, whose rigid motion between
frames the scene knows; flow is that point projected into the other frame, exact up to float32.
The conventions (direction, units, channel order, clamping) are those of
:class:`evss.data.synthdrive.clip.Clip`.
"""

from __future__ import annotations

import numpy as np

from evss.data.synthdrive.render.camera import NEAR
from evss.data.synthdrive.render.raster import FrameBuffers
from evss.data.synthdrive.render.scene import SKY_OBJ, Scene

_OCCLUSION_DEPTH_TOL = 0.03  # same object but >3 % nearer at the target pixel: self-occlusion


def flow_between(scene: Scene, fb: FrameBuffers, t: int, o: int,
                 other: FrameBuffers | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Flow (2, H, W) from frame t to frame o (= t +- 1) and, given frame o's buffers, occlusion.

    A pixel's camera point is ``z * r`` with ``r = K^-1 (u, v, 1)``; in frame o it is
    ``A (z r) + b_obj`` with ``A = R_o R_t^T`` and ``b_obj = R_o (C_t - C_o + p_obj(o) - p_obj(t))``,
    i.e. the camera motion plus the rigid translation of the object the pixel belongs to.
    """
    cam_t, cam_o = scene.cams[t], scene.cams[o]
    h, w = fb.obj.shape
    a = cam_o.rot @ cam_t.rot.T  # (3, 3)
    delta = scene.obj_pos[:, o] - scene.obj_pos[:, t]  # (n_obj, 3)
    bvec = (cam_t.centre - cam_o.centre + delta) @ cam_o.rot.T  # (n_obj, 3)
    bvec[SKY_OBJ] = 0.0  # sky is infinitely far: rotation only
    sky = fb.obj == SKY_OBJ
    with np.errstate(divide="ignore"):
        z = np.where(sky, np.float32(1.0), 1.0 / fb.inv_depth)  # (H, W)
    xn = ((np.arange(w) - cam_t.cx) / cam_t.focal)
    yn = ((np.arange(h) - cam_t.cy) / cam_t.focal)
    p = []
    for k in range(3):
        ar = ((a[k, 0] * xn)[None, :] + (a[k, 1] * yn + a[k, 2])[:, None]).astype(np.float32)  # (H, W)
        p.append(z * ar + bvec[:, k].astype(np.float32)[fb.obj])
    pz = np.maximum(p[2], 1e-3)
    lim = 4.0 * max(h, w)
    u2 = cam_o.focal * p[0] / pz + cam_o.cx  # (H, W) position in frame o
    v2 = cam_o.focal * p[1] / pz + cam_o.cy
    dx = np.clip(u2 - np.arange(w, dtype=np.float32)[None, :], -lim, lim)
    dy = np.clip(v2 - np.arange(h, dtype=np.float32)[:, None], -lim, lim)
    flow = np.stack([dx, dy]).astype(np.float32)  # (2, H, W)
    if other is None:
        return flow, None
    out = (u2 < -0.5) | (u2 > w - 0.5) | (v2 < -0.5) | (v2 > h - 0.5) | (p[2] <= NEAR)
    ni = np.clip(np.rint(v2), 0, h - 1).astype(np.int64)
    nj = np.clip(np.rint(u2), 0, w - 1).astype(np.int64)
    flat = ni * w + nj  # nearest pixel of frame o
    seen_obj = other.obj.ravel()[flat]
    seen_inv = other.inv_depth.ravel()[flat]
    occ = out | (seen_obj != fb.obj) | (seen_inv * p[2] > 1.0 / (1.0 - _OCCLUSION_DEPTH_TOL))
    return flow, occ
