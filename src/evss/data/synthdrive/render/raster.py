"""The planar-quad rasteriser: textured quads, the ground and the sky into per-pixel buffers.

For a plane the map from pixel to (s, t) is a homography and ``1 / depth`` is affine in the pixel,
so a quad is drawn exactly and without per-pixel ray tracing: evaluate three affine maps over its
screen box, divide, test. The frame keeps an inverse-depth buffer (0 = nothing, i.e. sky) and an
object-id buffer; :mod:`.flow` turns them into exact flow and occlusion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from evss.data.synthdrive.render.camera import NEAR, Camera
from evss.data.synthdrive.render.ground_sky import GroundLook, SkyLook
from evss.data.synthdrive.render.scene import GROUND_OBJ, Scene
from evss.data.synthdrive.render.textures import SKY, TRANSPARENT, Texture

_QUAD_ST = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # corner (s, t)


@dataclass
class FrameBuffers:
    """What one rendered frame holds per pixel."""

    rgb: np.ndarray  # (H, W, 3) float32
    inv_depth: np.ndarray  # (H, W) float32, 1 / camera z; 0 where nothing was drawn (sky)
    obj: np.ndarray  # (H, W) int32 object id; 0 = sky
    label: np.ndarray  # (H, W) uint8 class id

    @staticmethod
    def empty(h: int, w: int) -> "FrameBuffers":
        return FrameBuffers(rgb=np.zeros((h, w, 3), np.float32), inv_depth=np.zeros((h, w), np.float32),
                            obj=np.zeros((h, w), np.int32), label=np.zeros((h, w), np.uint8))


def _affine(m: np.ndarray, row: int, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    return (m[row, 0] * us)[None, :] + (m[row, 1] * vs + m[row, 2])[:, None]  # (h, w)


def _sample(mips: list[np.ndarray], mx: np.ndarray, my: np.ndarray, level: np.ndarray | int,
            border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Bilinear colour at level-0 texel coordinates (mx, my) (texel centres on integers) with a
    per-pixel mip level; each level is sampled only over the box where it is used."""
    def at(lv: int, sl: tuple[slice, slice]) -> np.ndarray:
        img = mips[lv]
        if lv == 0:
            return cv2.remap(img, mx[sl], my[sl], cv2.INTER_LINEAR, borderMode=border)
        fx = img.shape[1] / mips[0].shape[1]
        fy = img.shape[0] / mips[0].shape[0]
        return cv2.remap(img, (mx[sl] + 0.5) * fx - 0.5, (my[sl] + 0.5) * fy - 0.5, cv2.INTER_LINEAR,
                         borderMode=border)

    full = (slice(None), slice(None))
    if np.isscalar(level):
        return at(int(level), full)
    lo, hi = int(level.min()), int(level.max())
    if lo == hi:
        return at(lo, full)
    out = np.empty(mx.shape + (3,), np.float32)
    for lv in range(lo, hi + 1):
        mask = level == lv
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            continue
        sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        np.copyto(out[sl], at(lv, sl), where=mask[sl][..., None])
    return out


def _mip_level(inv_z: np.ndarray, per_texel: float, n: int) -> np.ndarray:
    """Mip level from a footprint of ``1 / (inv_z * per_texel)`` texels per pixel."""
    with np.errstate(divide="ignore"):
        lv = np.floor(-np.log2(np.maximum(inv_z, 1e-9) * per_texel))
    return np.clip(lv, 0, n - 1).astype(np.int8)


def screen_box(pc: np.ndarray, cam: Camera) -> tuple[int, int, int, int] | None:
    """Pixel box [x0, x1) x [y0, y1) of a polygon given in camera coordinates (N, 3), after
    clipping it at the near plane; None if nothing is in view."""
    z = pc[:, 2]
    if (z <= NEAR).all():
        return None
    if (z <= NEAR).any():  # Sutherland-Hodgman against z = NEAR
        pts = []
        for i in range(len(pc)):
            a, b = pc[i], pc[(i + 1) % len(pc)]
            if a[2] > NEAR:
                pts.append(a)
            if (a[2] > NEAR) != (b[2] > NEAR):
                pts.append(a + (b - a) * (NEAR - a[2]) / (b[2] - a[2]))
        pc = np.array(pts)
    u = cam.focal * pc[:, 0] / pc[:, 2] + cam.cx
    v = cam.focal * pc[:, 1] / pc[:, 2] + cam.cy
    x0, x1 = max(0, math.ceil(u.min())), min(cam.width, math.floor(u.max()) + 1)
    y0, y1 = max(0, math.ceil(v.min())), min(cam.height, math.floor(v.max()) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, x1, y0, y1


def draw_quad(fb: FrameBuffers, m: np.ndarray, box: tuple[int, int, int, int], tex: Texture,
              obj: int, per_texel: float, max_inv: float) -> None:
    """Z-buffered draw of a textured quad inside screen ``box``.

    ``m`` is the quad's :meth:`Camera.plane_map`; ``per_texel`` is focal * |u| / texture width
    (pixels per texel at depth 1, for the mip level); ``max_inv`` bounds the quad's inverse
    depth, so a box already covered by nearer surfaces is skipped without per-pixel work.
    """
    x0, x1, y0, y1 = box
    zbuf = fb.inv_depth[y0:y1, x0:x1]
    if zbuf.min() >= max_inv:
        return
    us = np.arange(x0, x1, dtype=np.float64)
    vs = np.arange(y0, y1, dtype=np.float64)
    inv_z = _affine(m, 2, us, vs).astype(np.float32)  # (h, w) 1 / depth
    front = (inv_z > zbuf) & (inv_z < 1.0 / NEAR)
    if not front.any():
        return
    th, tw = tex.label.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        rz = 1.0 / inv_z
        mx = _affine(m * tw, 0, us, vs).astype(np.float32) * rz - 0.5  # (h, w) texel coordinates
        my = _affine(m * th, 1, us, vs).astype(np.float32) * rz - 0.5
    # The nearest texel decides coverage and class; outside the quad reads TRANSPARENT.
    lab = cv2.remap(tex.label, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=TRANSPARENT)  # (h, w)
    win = front & (lab != TRANSPARENT)
    if not win.any():
        return
    n = len(tex.mips)
    level = _mip_level(inv_z[win], per_texel, n)
    if level.min() == level.max():
        col = _sample(tex.mips, mx, my, int(level[0]))
    else:
        col = _sample(tex.mips, mx, my, _mip_level(inv_z, per_texel, n))
    np.copyto(zbuf, inv_z, where=win)
    np.copyto(fb.rgb[y0:y1, x0:x1], col, where=win[..., None])
    np.copyto(fb.label[y0:y1, x0:x1], lab, where=win)
    fb.obj[y0:y1, x0:x1][win] = obj


def draw_ground(fb: FrameBuffers, cam: Camera, look: GroundLook, obj: int) -> None:
    """The plane Y = 0 under everything else: class per X column, colour from the wrapped tile."""
    m = cam.plane_map(np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 0, 1.0]))  # (s, t) = (X, Z)
    if m is None:
        return
    w, h = cam.width, cam.height
    # inverse depth is affine in (u, v); find the first row where any column sees the ground
    a, b, c = m[2]
    if abs(b) < 1e-12:
        y0 = 0
    else:
        rows = [-(a * uu + c) / b for uu in (0.0, w - 1.0)]
        y0 = int(np.clip(math.floor(min(rows)) if b > 0 else 0, 0, h))
    if y0 >= h:
        return
    us, vs = np.arange(w, dtype=np.float64), np.arange(y0, h, dtype=np.float64)
    inv_z = _affine(m, 2, us, vs).astype(np.float32)  # (h', w)
    zbuf = fb.inv_depth[y0:]
    win = (inv_z > zbuf) & (inv_z < 1.0 / NEAR)
    with np.errstate(divide="ignore", invalid="ignore"):
        rz = 1.0 / inv_z
        gx = _affine(m, 0, us, vs).astype(np.float32) * rz  # (h', w) world X
        gz = _affine(m, 1, us, vs).astype(np.float32) * rz  # world Z
    gx = np.where(win, gx, 0.0).astype(np.float32)
    gz = np.where(win, gz, 0.0).astype(np.float32)
    th, tw = look.mips[0].shape[:2]
    mx = np.clip((gx + look.half_width) / look.texel, 0.0, tw - 1.0) - 0.5  # (h', w) texel coords
    my = (gz / look.texel) % th - 0.5  # wraps along Z
    # Ground is seen at a grazing angle: footprint ~ z / f across and z^2 / (f * height) along.
    cam_h = max(float(cam.centre[1]), 0.1)
    with np.errstate(divide="ignore"):
        foot = np.sqrt(np.maximum(rz, 0) ** 3 / cam_h) / (cam.focal * look.texel)  # texels / px
        lv = np.clip(np.floor(np.log2(np.maximum(foot, 1e-6))), 0, len(look.mips) - 1)
    lv = np.where(win, lv, 0).astype(np.int8)
    col = _sample(look.mips, mx.astype(np.float32), my.astype(np.float32), lv,
                  border=cv2.BORDER_WRAP)  # (h', w, 3)
    mh, mw = look.mod.shape[:2]
    mod = cv2.remap(look.mod, (gx / look.mod_texel) % mw, (gz / look.mod_texel) % mh,
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)  # (h', w, 2)
    col *= (mod[..., 0] * mod[..., 1])[..., None]
    lab = look.label_lut[np.clip((mx + 0.5).astype(np.int32), 0, tw - 1)]
    np.copyto(zbuf, inv_z, where=win)
    np.copyto(fb.rgb[y0:], col, where=win[..., None])
    np.copyto(fb.label[y0:], lab, where=win)
    fb.obj[y0:][win] = obj


def draw_sky(fb: FrameBuffers, cam: Camera, look: SkyLook) -> None:
    """Fill every pixel nothing else covered with the sky, coloured by world direction."""
    empty = fb.inv_depth == 0  # (H, W)
    rows = np.flatnonzero(empty.any(axis=1))
    if rows.size == 0:
        return
    y1 = rows[-1] + 1
    xn = (np.arange(cam.width) - cam.cx) / cam.focal
    yn = (np.arange(y1) - cam.cy) / cam.focal
    rt = cam.rot.T  # camera -> world
    d = [(rt[i, 0] * xn)[None, :] + (rt[i, 1] * yn + rt[i, 2])[:, None] for i in range(3)]  # world dir
    dz = np.maximum(d[2], 1e-3)
    a = (d[0] / dz).astype(np.float32)  # tan of azimuth-ish: a function of direction only
    b = (d[1] / dz).astype(np.float32)  # tan of elevation-ish
    mix = np.clip(b / 0.6, 0, 1)[..., None] ** 0.7  # (y1, W, 1) horizon -> top gradient
    col = look.horizon[None, None] * (1 - mix) + look.top[None, None] * mix
    n = cv2.remap(look.tile, (a * look.scale) % 256, (b * look.scale * 2) % 256, cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_WRAP)  # (y1, W)
    cloud = np.clip((n + 1.2 * look.cover - 0.6) * 0.8, 0, 1)[..., None]
    col = (col * (1 - cloud) + look.cloud[None, None] * (0.85 + 0.15 * n[..., None]) * cloud)
    np.copyto(fb.rgb[:y1], col.astype(np.float32), where=empty[:y1, :, None])
    fb.label[:y1][empty[:y1]] = SKY


def render_frame(scene: Scene, t: int) -> FrameBuffers:
    """Draw frame t: quads front to back (z-buffered), then the ground, then the sky."""
    cam = scene.cams[t]
    fb = FrameBuffers.empty(cam.height, cam.width)
    origin = scene.q_origin + scene.obj_pos[scene.q_obj, t]  # (N, 3) world
    corners = origin[:, None, :] + _QUAD_ST[None, :, :1] * scene.q_u[:, None, :] \
        + _QUAD_ST[None, :, 1:] * scene.q_v[:, None, :]  # (N, 4, 3)
    pc = (corners - cam.centre) @ cam.rot.T  # (N, 4, 3) camera coordinates
    z = pc[..., 2]
    in_front = (z > NEAR).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pu = cam.focal * pc[..., 0] / z + cam.cx  # (N, 4)
        pv = cam.focal * pc[..., 1] / z + cam.cy
    x0 = np.ceil(pu.min(1)).clip(0, cam.width)
    x1 = (np.floor(pu.max(1)) + 1).clip(0, cam.width)
    y0 = np.ceil(pv.min(1)).clip(0, cam.height)
    y1 = (np.floor(pv.max(1)) + 1).clip(0, cam.height)
    simple = in_front & (x0 < x1) & (y0 < y1)
    clipped = ~in_front & (z > NEAR).any(axis=1)  # straddles the near plane
    todo = np.flatnonzero(simple | clipped)
    zmin = np.where(z > NEAR, z, np.inf).min(axis=1)  # (N,)
    todo = todo[np.argsort(zmin[todo], kind="stable")]  # front to back: far quads fail early
    # Plane maps of all candidate quads at once: inv(K R [u | v | origin - C]).
    cols = np.stack([scene.q_u[todo], scene.q_v[todo], origin[todo] - cam.centre], axis=2)  # (n, 3, 3)
    mats = (cam.k @ cam.rot) @ cols
    scale = np.abs(mats).max(axis=(1, 2)) ** 3
    ok = np.abs(np.linalg.det(mats)) > 1e-9 * scale  # edge-on planes cover no pixel centre
    inv = np.zeros_like(mats)
    inv[ok] = np.linalg.inv(mats[ok])
    for j, i in enumerate(todo):
        if not ok[j]:
            continue
        if simple[i]:
            box = (int(x0[i]), int(x1[i]), int(y0[i]), int(y1[i]))
            max_inv = 1.0 / zmin[i]
        else:
            box = screen_box(pc[i], cam)
            if box is None:
                continue
            max_inv = 1.0 / NEAR
        draw_quad(fb, inv[j], box, scene.textures[scene.q_tex[i]], int(scene.q_obj[i]),
                  cam.focal * scene.q_texel[i], max_inv)
    draw_ground(fb, cam, scene.ground, GROUND_OBJ)
    draw_sky(fb, cam, scene.sky)
    return fb
