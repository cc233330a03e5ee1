"""SynthDrive: procedural driving clips with exact dense ground truth (labels, flow, occlusion).

A clip is one coherent camera drive down a street: a perspective road with lane markings,
pavements, building facades in several rows (parallax), trees, fences, signs, thin poles, parked
and moving cars, pedestrians and bicyclists that move independently, enter and leave the view and
occlude each other. Appearance is randomised per clip (procedural multi-scale textures, palette,
hue, brightness, sky) and changes within a clip (illumination drift, sensor noise, optional motion
blur), so colour alone does not give the class away.

Every surface is a textured plane in a small 3D world (see ``_synth_render``), so for each pixel
we know its 3D point and the rigid motion of the object it belongs to. Flow is that point
projected into the neighbouring frame, exact up to float32:

* ``flow_bwd[t]`` (2, H, W): for pixel (x, y) of frame t, where the same surface point is in frame
  t - 1, as (dx, dy) in pixels, channel 0 = dx. This is the backward flow of
  :mod:`evss.models.warp`: ``warp(frame[t-1], flow_bwd[t]) ~= frame[t]`` on visible pixels.
  ``flow_bwd[0]`` is zero.
* ``flow_fwd[t]``: the same towards frame t + 1 (``warp(frame[t+1], flow_fwd[t]) ~= frame[t]``);
  ``flow_fwd[T-1]`` is zero.
* ``occlusion[t]``: True where the surface point of pixel (x, y) in frame t is not seen in frame
  t - 1: it is outside that frame or behind the camera, or the pixel nearest to its projection in
  t - 1 shows another object, or the same object more than 3 % nearer (self-occlusion). The test is
  at pixel resolution, so it also marks the one-pixel rims where sub-pixel motion moves an edge
  across a pixel centre. ``occlusion[0]`` is all False.
* Where the point lies behind the camera in the other frame the flow is meaningless (it is
  occluded) and is clamped to +-4 * max(H, W) so it stays finite, also in float16 on disk.
* Sky is at infinite distance: its flow is the pure camera rotation.

Simplifications that keep the flow exact: every object is rigid (people glide in a mid-stride pose
rather than swing their legs), objects are flat textured planes or boxes of them (cars), shading is
baked into textures, and the street is straight (the camera yaws and sways on it).

Labels are CamVid-11 ids in CamVid order (``evss.classes.CAMVID``), so SynthDrive and CamVid
share a label space. Road markings are Road (CamVid-11 merges them). Void (255) is rare and
deliberate: unlabelled street furniture (bins, bollards, cabinets), like CamVid's void objects.

``instances[t]`` holds an object id per pixel, stable over the clip: 0 = sky, 1 = ground, then one
id per building, tree, pole, fence, car, person, ...; ``Clip.moving_instances`` lists the ids that
move in the world (cars, pedestrians and bicyclists in motion).

On-disk layout written by :func:`write_dataset` (``T`` frames per clip, ``tttttt`` = frame index)::

    out/manifest.json                      written last (temp file + rename); see write_dataset
    out/preview.png                        optional contact sheet
    out/clip_0000/frames/tttttt.png        RGB, 8 bit
    out/clip_0000/labels/tttttt.png        8-bit grey, CamVid-11 ids, 255 = void
    out/clip_0000/flow_bwd/tttttt.npy      float16 (2, H, W), dx then dy, pixels, as flow_bwd above
    out/clip_0000/flow_fwd/tttttt.npy      float16 (2, H, W)
    out/clip_0000/occlusion/tttttt.png     8-bit grey, 255 = occluded
    out/clip_0000/instances/tttttt.png     16-bit grey object ids

float16 rounds flow by at most 1/2048 of its size (0.0005 px at 1 px, 0.016 px at 32 px); in
memory it is float32. A default 256x512 frame takes about 1.2 MiB on disk, so the default training
set (200 clips x 30 frames) takes about 7 GiB.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from evss.classes import CAMVID, IGNORE_INDEX
from evss.data import _synth_render as R
from evss.data._paths import safe_join
from evss.errors import ConfigError, DataError

GENERATOR_VERSION = "1.0"
_OCCLUSION_DEPTH_TOL = 0.03  # same object but >3 % nearer at the target pixel: self-occlusion


@dataclass(frozen=True)
class SynthDriveConfig:
    """How clips look and move. ``difficulty`` (0 = calm, 1 = default, 2 = hard) scales ego speed
    and shake, camera yaw, traffic density, illumination change, sensor noise and palette jitter."""

    height: int = 256  # frame height in pixels
    width: int = 512  # frame width in pixels
    frames: int = 30  # frames per clip
    fps: float = 15.0  # frame rate; motion per frame is speed / fps
    difficulty: float = 1.0  # scales object count, speeds, illumination changes, noise
    motion_blur: bool = False  # blur each frame along its flow (labels stay sharp)
    hfov_deg: float = 60.0  # horizontal field of view of the dash camera
    max_speed: float = 14.0  # m/s; ego speed never exceeds max_speed * min(difficulty, 1.5)
    noise_std: float = 2.0  # Gaussian sensor noise, 8-bit levels, times difficulty
    illumination: float = 0.12  # relative brightness drift within a clip, times difficulty
    traffic: float = 1.0  # multiplies the number of cars, pedestrians and bicyclists
    clutter: bool = True  # add unlabelled street furniture (void, 255)
    exposure: float = 0.5  # motion-blur shutter time as a fraction of the frame interval


@dataclass
class Clip:
    """One generated clip with its ground truth (see the module docstring for conventions)."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    labels: np.ndarray  # (T, H, W) uint8, CamVid-11 ids 0..10, 255 = void
    flow_bwd: np.ndarray  # (T, 2, H, W) float32, frame t -> t-1, zeros for t = 0
    flow_fwd: np.ndarray  # (T, 2, H, W) float32, frame t -> t+1, zeros for t = T-1
    occlusion: np.ndarray  # (T, H, W) bool, pixel of t not visible in t-1; t = 0 all False
    instances: np.ndarray | None = None  # (T, H, W) int32 object ids
    moving_instances: tuple[int, ...] = ()  # ids of objects that move in the world

    def moving_mask(self) -> np.ndarray:
        """(T, H, W) bool: pixels of independently moving objects (needs ``instances``)."""
        if self.instances is None:
            raise DataError("this clip has no instance ids, so moving pixels are unknown")
        return np.isin(self.instances, np.asarray(self.moving_instances, np.int32))


def clip_seed(seed: int, index: int) -> int:
    """The seed of clip ``index`` in a dataset with ``seed`` (write_dataset and the dataset agree)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def check_config(config: SynthDriveConfig) -> None:
    """Raise ConfigError naming the first impossible value."""
    if config.height < 16 or config.width < 16:
        raise ConfigError(f"SynthDrive frames must be at least 16x16, "
                          f"got {config.height}x{config.width}")
    if config.frames < 1:
        raise ConfigError(f"SynthDrive clips need at least 1 frame, got frames={config.frames}")
    if not config.fps > 0:
        raise ConfigError(f"fps must be positive, got {config.fps}")
    if not 0 <= config.difficulty <= 4:
        raise ConfigError(f"difficulty must be in [0, 4], got {config.difficulty}")
    if not 10 <= config.hfov_deg <= 120:
        raise ConfigError(f"hfov_deg must be in [10, 120], got {config.hfov_deg}")
    for name in ("max_speed", "noise_std", "illumination", "traffic"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(config, name)}")
    if not 0 <= config.exposure <= 1:
        raise ConfigError(f"exposure must be in [0, 1], got {config.exposure}")


# ---------------------------------------------------------------------------------------------
# Rendering a frame, flow and occlusion


def _flow(scene: R.Scene, fb: R.FrameBuffers, t: int, o: int,
          other: R.FrameBuffers | None) -> tuple[np.ndarray, np.ndarray | None]:
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
    bvec[R.SKY_OBJ] = 0.0  # sky is infinitely far: rotation only
    sky = fb.obj == R.SKY_OBJ
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
    out = (u2 < -0.5) | (u2 > w - 0.5) | (v2 < -0.5) | (v2 > h - 0.5) | (p[2] <= R.NEAR)
    ni = np.clip(np.rint(v2), 0, h - 1).astype(np.int64)
    nj = np.clip(np.rint(u2), 0, w - 1).astype(np.int64)
    flat = ni * w + nj  # nearest pixel of frame o
    seen_obj = other.obj.ravel()[flat]
    seen_inv = other.inv_depth.ravel()[flat]
    occ = out | (seen_obj != fb.obj) | (seen_inv * p[2] > 1.0 / (1.0 - _OCCLUSION_DEPTH_TOL))
    return flow, occ


def _finish(scene: R.Scene, cfg: SynthDriveConfig, rgb: np.ndarray, t: int,
            blur_flow: np.ndarray | None, noise: np.ndarray | None,
            rng: np.random.Generator) -> np.ndarray:
    """Camera effects on the rendered radiance: lens and motion blur, colour and illumination,
    vignette, sensor noise. ``noise`` is a per-clip bank (2, H + 16, W + 16, 3) of unit Gaussian
    noise; each frame reads it at a random offset and sign, which is as good as fresh noise to a
    network and costs nothing per frame."""
    h, w = rgb.shape[:2]
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.6)  # lens blur; also softens texture aliasing
    if blur_flow is not None:
        # Average samples along the pixel's motion during the exposure (half before t, half after).
        xs = np.arange(w, dtype=np.float32)[None, :]
        ys = np.arange(h, dtype=np.float32)[:, None]
        acc = np.zeros_like(rgb)
        fracs = (np.linspace(-0.5, 0.5, 5) * cfg.exposure).astype(np.float32)
        for f in fracs:
            acc += cv2.remap(rgb, xs + f * blur_flow[0], ys + f * blur_flow[1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        rgb = acc / len(fracs)
    img = cv2.transform(rgb, scene.colour[t] * 255.0)  # (H, W, 3) per-pixel 3x3 colour matrix
    img *= scene.vignette
    if noise is not None:
        k, dy, dx = rng.integers(2), rng.integers(17), rng.integers(17)
        sigma = np.float32(cfg.noise_std * cfg.difficulty * (1 if rng.random() < 0.5 else -1))
        img += noise[k, dy:dy + h, dx:dx + w] * sigma
    img += 0.5
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def generate_clip(config: SynthDriveConfig, seed: int) -> Clip:
    """Render one clip; the result depends only on (config, seed)."""
    check_config(config)
    scene = R.build_scene(config, seed)
    noise_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2]))
    T, H, W = config.frames, config.height, config.width
    noise = None
    if config.noise_std * config.difficulty > 0:
        noise = noise_rng.standard_normal((2, H + 16, W + 16, 3), dtype=np.float32)
    frames = np.empty((T, H, W, 3), np.uint8)
    labels = np.empty((T, H, W), np.uint8)
    instances = np.empty((T, H, W), np.int32)
    flow_bwd = np.zeros((T, 2, H, W), np.float32)
    flow_fwd = np.zeros((T, 2, H, W), np.float32)
    occlusion = np.zeros((T, H, W), bool)
    prev = None
    for t in range(T):
        fb = R.render_frame(scene, t)
        if t > 0:
            flow_bwd[t], occlusion[t] = _flow(scene, fb, t, t - 1, prev)
        if t < T - 1:
            flow_fwd[t], _ = _flow(scene, fb, t, t + 1, None)
        blur = None
        if config.motion_blur and T > 1:
            blur = flow_bwd[t] if t > 0 else -flow_fwd[t]
        frames[t] = _finish(scene, config, fb.rgb, t, blur, noise, noise_rng)
        labels[t] = fb.label
        instances[t] = fb.obj
        prev = fb
    moving = tuple(int(i) for i in np.flatnonzero(scene.moving))
    return Clip(frames=frames, labels=labels, flow_bwd=flow_bwd, flow_fwd=flow_fwd,
                occlusion=occlusion, instances=instances, moving_instances=moving)


# ---------------------------------------------------------------------------------------------
# Checks and statistics


def warp_check(prev_frame: np.ndarray, frame: np.ndarray, prev_label: np.ndarray, label: np.ndarray,
               flow_bwd: np.ndarray, occlusion: np.ndarray) -> tuple[float, float]:
    """(mean absolute RGB error in 8-bit levels, label agreement) of frame t against frame t-1
    warped by ``flow_bwd`` (bilinear for colour, nearest for labels), on non-occluded pixels.
    The sampling of :func:`evss.models.warp.warp` (pixel centres on integers, border clamp), done
    with OpenCV for speed."""
    h, w = label.shape
    mx = np.arange(w, dtype=np.float32)[None, :] + flow_bwd[0]
    my = np.arange(h, dtype=np.float32)[:, None] + flow_bwd[1]
    vis = ~occlusion
    if not vis.any():
        return 0.0, 1.0
    warped = cv2.remap(prev_frame.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)  # (H, W, 3)
    err = float(np.abs(warped - frame.astype(np.float32))[vis].mean())
    ni = np.clip(np.rint(my), 0, h - 1).astype(np.int64)
    nj = np.clip(np.rint(mx), 0, w - 1).astype(np.int64)
    agree = float((prev_label[ni, nj] == label)[vis].mean())
    return err, agree


def clip_stats(clip: Clip) -> dict:
    """Per-frame fractions of thin-object, occluded and moving-object pixels, the flow check
    (photometric error, label agreement on non-occluded pixels) and per-class pixel counts."""
    thin = np.isin(clip.labels, np.asarray(CAMVID.thin, np.uint8)).mean(axis=(1, 2))  # (T,)
    occ = clip.occlusion.mean(axis=(1, 2))
    moving = clip.moving_mask().mean(axis=(1, 2)) if clip.instances is not None else np.zeros(len(thin))
    errs, agrees = [], []
    for t in range(1, len(clip.frames)):
        e, a = warp_check(clip.frames[t - 1], clip.frames[t], clip.labels[t - 1], clip.labels[t],
                          clip.flow_bwd[t], clip.occlusion[t])
        errs.append(e)
        agrees.append(a)
    counts = np.bincount(clip.labels.ravel(), minlength=256)
    return {
        "thin_fraction": [round(float(x), 5) for x in thin],
        "occluded_fraction": [round(float(x), 5) for x in occ],
        "moving_fraction": [round(float(x), 5) for x in moving],
        "photometric_error": [round(x, 3) for x in errs],
        "label_agreement": [round(x, 5) for x in agrees],
        "class_pixels": {n: int(counts[i]) for i, n in enumerate(CAMVID.names)}
        | {"void": int(counts[IGNORE_INDEX])},
    }


def _summary(values: list[float]) -> dict:
    a = np.asarray(values, float)
    if a.size == 0:
        return {"mean": None, "min": None, "max": None}
    return {"mean": round(float(a.mean()), 5), "min": round(float(a.min()), 5),
            "max": round(float(a.max()), 5)}


# ---------------------------------------------------------------------------------------------
# Storage


_KINDS = ("frames", "labels", "flow_bwd", "flow_fwd", "occlusion", "instances")
_EXT = {"frames": ".png", "labels": ".png", "flow_bwd": ".npy", "flow_fwd": ".npy", "occlusion": ".png",
        "instances": ".png"}
# Fast lossless PNG: level 1 with run-length matching is quicker and smaller than zlib's default
# strategy on noisy frames, and label/occlusion maps still shrink to a few KiB.
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def _clip_name(i: int) -> str:
    return f"clip_{i:04d}"


def _write_png(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img, _PNG):
        raise DataError(f"could not write {path}")


def _write_clip(folder: Path, clip: Clip) -> None:
    for kind in _KINDS:
        if kind != "instances" or clip.instances is not None:
            (folder / kind).mkdir(parents=True, exist_ok=True)
    for t in range(len(clip.frames)):
        name = f"{t:06d}"
        _write_png(folder / "frames" / f"{name}.png", np.ascontiguousarray(clip.frames[t, :, :, ::-1]))
        _write_png(folder / "labels" / f"{name}.png", clip.labels[t])
        np.save(folder / "flow_bwd" / f"{name}.npy", clip.flow_bwd[t].astype(np.float16))
        np.save(folder / "flow_fwd" / f"{name}.npy", clip.flow_fwd[t].astype(np.float16))
        _write_png(folder / "occlusion" / f"{name}.png", clip.occlusion[t].astype(np.uint8) * 255)
        if clip.instances is not None:
            _write_png(folder / "instances" / f"{name}.png", clip.instances[t].astype(np.uint16))


def _write_clip_atomic(out: Path, i: int, clip: Clip) -> None:
    tmp = out / f"{_clip_name(i)}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    _write_clip(tmp, clip)
    tmp.rename(out / _clip_name(i))


def _read(path: Path, kind: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"missing SynthDrive file {path}")
    if path.suffix == ".npy":
        try:
            arr = np.load(path)  # allow_pickle=False: a .npy that holds objects is refused
        except Exception as e:  # noqa: BLE001 - ValueError, OSError, EOFError ... on a damaged file
            raise DataError(f"unreadable flow file {path}: {' '.join(str(e).split())}") from None
        if arr.ndim != 3 or arr.shape[0] != 2:
            raise DataError(f"{path} holds shape {arr.shape}, expected (2, H, W) flow")
        return arr.astype(np.float32)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"unreadable image {path}")
    if kind == "frames":
        if img.ndim != 3:
            raise DataError(f"{path} is not an RGB image")
        return np.ascontiguousarray(img[:, :, ::-1])
    if img.ndim != 2:
        raise DataError(f"{path} should be a single-channel image, got shape {img.shape}")
    if kind == "labels":
        return check_label_ids(img, path)
    if kind == "occlusion":
        return img > 127
    if kind == "instances":
        return img.astype(np.int32)
    return img


def check_label_ids(ids: np.ndarray, path: Path) -> np.ndarray:
    """(H, W) CamVid-11 ids 0..10 or 255 (void) as uint8; DataError naming the file for others."""
    bad = (ids >= CAMVID.num_classes) & (ids != IGNORE_INDEX)
    if bad.any():
        values = np.unique(ids[bad])
        shown = ", ".join(str(int(v)) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise DataError(f"label {path} has ids {shown} outside SynthDrive's CamVid-11 ids "
                        f"(0..{CAMVID.num_classes - 1}, {IGNORE_INDEX} = void)")
    return ids.astype(np.uint8)


def read_label(path: Path) -> np.ndarray:
    """One SynthDrive label PNG: (H, W) uint8 CamVid-11 ids, 255 = void; DataError naming the file."""
    from evss.data.pairs import read_label_ids
    return check_label_ids(read_label_ids(path), path)


def write_dataset(out: str | Path, *, clips: int, seed: int,
                  config: SynthDriveConfig = SynthDriveConfig(), preview: bool = False,
                  progress: bool = True) -> Path:
    """Generate ``clips`` clips into ``out`` (layout in the module docstring); return the manifest.

    Clip i uses ``clip_seed(seed, i)``, so :class:`SynthDriveDataset` without a root yields the same
    samples. Each clip is written to ``clip_XXXX.tmp`` and renamed when complete; the manifest is
    removed first and written last (temp file + rename), so after a crash no manifest claims
    unfinished clips. Re-running into the same folder replaces its contents.
    """
    check_config(config)
    if clips < 1:
        raise ConfigError(f"clips must be at least 1, got {clips}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder")
    manifest_path = out / "manifest.json"
    if out.exists():
        foreign = [p.name for p in out.iterdir()
                   if not (p.name.startswith("clip_") or p.name in ("manifest.json", "preview.png")
                           or p.name.startswith((".manifest", ".preview")))]
        if manifest_path.exists():
            try:
                ours = json.loads(manifest_path.read_text()).get("format") == "synthdrive"
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                ours = False
            if not ours:
                raise DataError(f"{manifest_path} is not a SynthDrive manifest; refusing to "
                                "overwrite that folder")
        elif foreign:
            raise DataError(f"{out} is not empty and is not a SynthDrive folder (it holds "
                            f"{foreign[:3]}); choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    (out / "preview.png").unlink(missing_ok=True)
    for stale in out.glob("clip_*"):  # from an earlier run; the manifest no longer claims them
        shutil.rmtree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink()
    records, totals, previews = [], np.zeros(12, np.int64), []
    bar = tqdm(range(clips), desc="synthdrive", unit="clip", disable=not progress)
    # PNG encoding releases the GIL: one writer thread encodes clip i while clip i + 1 renders.
    # At most one clip waits, which bounds memory to about two clips.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future | None = None
        for i in bar:
            s = clip_seed(seed, i)
            clip = generate_clip(config, s)
            if pending is not None:
                pending.result()  # re-raises a failed write
            pending = pool.submit(_write_clip_atomic, out, i, clip)
            stats = clip_stats(clip)
            records.append({"name": _clip_name(i), "seed": s, "frames": int(len(clip.frames)),
                            "moving_instances": list(clip.moving_instances), "stats": stats})
            totals += np.array(list(stats["class_pixels"].values()), np.int64)
            if preview and i < 4:
                previews.append(_preview_row(clip))
            bar.set_postfix(occl=f"{np.mean(stats['occluded_fraction'][1:] or [0]):.3f}",
                            err=f"{np.mean(stats['photometric_error'] or [0]):.2f}")
        if pending is not None:
            pending.result()
    if preview:
        tmp = out / ".preview.tmp.png"  # the suffix tells OpenCV the format
        _write_png(tmp, np.ascontiguousarray(_contact_sheet(previews)[:, :, ::-1]))
        os.replace(tmp, out / "preview.png")
    names = list(CAMVID.names) + ["void"]
    labelled = max(int(totals[:11].sum()), 1)
    per_frame = {k: [x for r in records for x in r["stats"][k][(1 if k == "occluded_fraction" else 0):]]
                 for k in ("thin_fraction", "occluded_fraction", "moving_fraction", "photometric_error",
                           "label_agreement")}
    manifest = {
        "format": "synthdrive",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "config": asdict(config),
        "label_space": CAMVID.name,
        "classes": list(CAMVID.names),
        "ignore_index": IGNORE_INDEX,
        "layout": {k: f"clip_XXXX/{k}/tttttt{_EXT[k]}" for k in _KINDS},
        "flow": "float16 (2, H, W): channel 0 = dx, 1 = dy in pixels; backward flow of "
                "evss.models.warp (flow_bwd[t]: t -> t-1, flow_fwd[t]: t -> t+1)",
        "occlusion": "255 where the pixel of frame t is not visible in frame t-1",
        "clips": records,
        "class_stats": {
            "pixels_per_class": {n: int(c) for n, c in zip(names, totals)},
            "fraction_of_labelled": {n: round(int(c) / labelled, 6)
                                     for n, c in zip(names[:11], totals[:11])},
            "void_fraction": round(int(totals[11]) / max(int(totals.sum()), 1), 6),
        },
        "frame_stats": {k: _summary(v) for k, v in per_frame.items()},
        "frame_stats_notes": {
            "thin_fraction": "pixels labelled Pole, Pedestrian or Bicyclist (CAMVID.thin)",
            "occluded_fraction": "occlusion mask, frames t >= 1",
            "moving_fraction": "pixels of objects moving in the world (cars, people, bicyclists)",
            "photometric_error": "mean |frame t - bilinear warp(frame t-1, flow_bwd t)| in 8-bit "
                                 "levels on non-occluded pixels (includes sensor noise and "
                                 "illumination drift)",
            "label_agreement": "labels of t-1 warped by nearest sampling vs labels of t, "
                               "non-occluded pixels",
        },
    }
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, manifest_path)
    return manifest_path


def read_manifest(root: str | Path) -> dict:
    """Load and validate ``root/manifest.json``; DataError naming the problem otherwise.

    The manifest is data: clip names are joined with ``root`` through
    :func:`evss.data._paths.safe_join`, so an entry cannot point outside the folder.
    """
    from evss.config import from_dict
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise DataError(f"no manifest.json in {root}: not a SynthDrive folder, "
                        "or its writer did not finish")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "synthdrive":
        raise DataError(f"{path} is not a SynthDrive manifest (format must be 'synthdrive')")
    for key in ("generator_version", "seed", "config", "clips"):
        if key not in manifest:
            raise DataError(f"{path} lacks the key '{key}'")
    if not isinstance(manifest["config"], dict):
        raise DataError(f"{path}: 'config' is {type(manifest['config']).__name__}, expected an object")
    known = {f.name for f in fields(SynthDriveConfig)}
    unknown = set(manifest["config"]) - known
    if unknown:
        raise DataError(f"{path} has unknown config keys {sorted(unknown)} "
                        "(written by a newer generator?)")
    try:
        check_config(from_dict(SynthDriveConfig, manifest["config"], where=f"{path} config"))
    except ConfigError as e:
        raise DataError(str(e)) from None
    if not isinstance(manifest["seed"], int) or isinstance(manifest["seed"], bool):
        raise DataError(f"{path}: seed {manifest['seed']!r} is not an integer")
    if not isinstance(manifest["clips"], list):
        raise DataError(f"{path}: 'clips' is {type(manifest['clips']).__name__}, expected a list")
    for rec in manifest["clips"]:
        if not isinstance(rec, dict) or not {"name", "frames"} <= set(rec):
            raise DataError(f"{path}: clip record {rec!r} needs 'name' and 'frames'")
        frames = rec["frames"]
        if not isinstance(frames, int) or isinstance(frames, bool) or frames < 0:
            raise DataError(f"{path}: clip {rec['name']!r} has frames {frames!r}, expected an integer >= 0")
        folder = safe_join(root, rec["name"], source=path)
        if not folder.is_dir():
            raise DataError(f"{path} lists {rec['name']} but {folder} is missing")
    return manifest


class SynthDriveDataset(torch.utils.data.Dataset):
    """A sequence of SynthDrive clips, read from a folder written by :func:`write_dataset` or, with
    ``root=None``, generated on the fly: clip i is ``generate_clip(config, clip_seed(seed, i))``
    with its flow rounded through float16 like the stored files, so both modes give identical
    samples for the same seed and config.

    ``dataset[i]`` is a :class:`Clip`; :meth:`frame` returns one frame's arrays. Given a root, the
    manifest decides clips, seed and config and the keyword arguments are ignored. On-the-fly
    generation keeps the last generated clip, so frame-by-frame access does not regenerate it.
    """

    def __init__(self, root: str | Path | None = None, *, clips: int = 200, seed: int = 0,
                 config: SynthDriveConfig = SynthDriveConfig()) -> None:
        self.root = None if root is None else Path(root)
        self._cached: tuple[int, Clip] | None = None
        if self.root is None:
            check_config(config)
            if clips < 0:
                raise ConfigError(f"clips must be >= 0, got {clips}")
            self.config, self.seed = config, seed
            self._records = [{"name": _clip_name(i), "seed": clip_seed(seed, i),
                              "frames": config.frames} for i in range(clips)]
            self.manifest = None
        else:
            self.manifest = read_manifest(self.root)
            from evss.config import from_dict
            self.config = from_dict(SynthDriveConfig, self.manifest["config"], where="manifest config")
            self.seed = int(self.manifest["seed"])
            self._records = self.manifest["clips"]

    def __len__(self) -> int:
        return len(self._records)

    def _check(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip {i} out of range for {len(self)} clips")
        return self._records[i]

    def num_frames(self, i: int) -> int:
        return int(self._check(i)["frames"])

    def clip(self, i: int) -> Clip:
        rec = self._check(i)
        if self.root is None:
            if self._cached is None or self._cached[0] != i % len(self):
                c = generate_clip(self.config, rec["seed"])
                c.flow_bwd = c.flow_bwd.astype(np.float16).astype(np.float32)  # as on disk
                c.flow_fwd = c.flow_fwd.astype(np.float16).astype(np.float32)
                self._cached = (i % len(self), c)
            return self._cached[1]
        folder = safe_join(self.root, rec["name"], source=self.root / "manifest.json")
        arrays = {k: [] for k in _KINDS}
        has_inst = (folder / "instances").is_dir()
        for t in range(int(rec["frames"])):
            for k in _KINDS:
                if k != "instances" or has_inst:
                    arrays[k].append(_read(folder / k / f"{t:06d}{_EXT[k]}", k))
        moving = tuple(rec.get("moving_instances", ()))
        return Clip(frames=np.stack(arrays["frames"]), labels=np.stack(arrays["labels"]),
                    flow_bwd=np.stack(arrays["flow_bwd"]), flow_fwd=np.stack(arrays["flow_fwd"]),
                    occlusion=np.stack(arrays["occlusion"]),
                    instances=np.stack(arrays["instances"]) if has_inst else None,
                    moving_instances=moving)

    def frame(self, i: int, t: int) -> dict[str, np.ndarray]:
        """One frame's arrays: frame (H, W, 3) uint8, label (H, W) uint8, flow_bwd / flow_fwd
        (2, H, W) float32, occlusion (H, W) bool, instances (H, W) int32 when stored. Reads only
        that frame's files from a folder."""
        rec = self._check(i)
        if not 0 <= t < int(rec["frames"]):
            raise IndexError(f"frame {t} out of range: {rec['name']} has {rec['frames']} frames")
        if self.root is None:
            c = self.clip(i)
            out = {"frame": c.frames[t], "label": c.labels[t], "flow_bwd": c.flow_bwd[t],
                   "flow_fwd": c.flow_fwd[t], "occlusion": c.occlusion[t]}
            if c.instances is not None:
                out["instances"] = c.instances[t]
            return out
        folder = safe_join(self.root, rec["name"], source=self.root / "manifest.json")
        names = {"frames": "frame", "labels": "label"}
        return {names.get(k, k): _read(folder / k / f"{t:06d}{_EXT[k]}", k) for k in _KINDS
                if k != "instances" or (folder / "instances").is_dir()}

    def __getitem__(self, i: int) -> Clip:
        return self.clip(i)


# ---------------------------------------------------------------------------------------------
# Preview


def flow_to_rgb(flow: np.ndarray, max_mag: float | None = None) -> np.ndarray:
    """(2, H, W) flow -> (H, W, 3) uint8 colour-wheel image: hue = direction, saturation = speed
    relative to ``max_mag`` (default: the 99th percentile), white = no motion."""
    dx, dy = flow[0], flow[1]
    mag = np.hypot(dx, dy)
    if max_mag is None:
        max_mag = float(np.percentile(mag, 99)) + 1e-6
    hsv = np.empty(flow.shape[1:] + (3,), np.float32)
    hsv[..., 0] = (np.degrees(np.arctan2(dy, dx)) + 360) % 360
    hsv[..., 1] = np.clip(mag / max_mag, 0, 1)
    hsv[..., 2] = 1.0
    return (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255 + 0.5).astype(np.uint8)


def _preview_row(clip: Clip) -> list[np.ndarray]:
    T = len(clip.frames)
    t = min(T - 1, max(1, T // 2))
    frame = clip.frames[t]
    labels = CAMVID.colorize(clip.labels[t])
    overlay = (0.35 * frame + 0.65 * labels).astype(np.uint8)
    flow = flow_to_rgb(clip.flow_bwd[t])
    h, w = frame.shape[:2]
    r = max(8, min(h, w) // 8)  # colour-wheel legend in the corner
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
    wheel = flow_to_rgb(np.stack([xx, yy]), max_mag=float(r))
    inside = xx ** 2 + yy ** 2 <= r * r
    flow[2:2 + 2 * r + 1, w - 2 * r - 3:w - 2][inside] = wheel[inside]
    occ = (frame * 0.4).astype(np.uint8)
    occ[clip.occlusion[t]] = (255, 0, 255)
    return [clip.frames[0], frame, overlay, flow, occ]


def _contact_sheet(rows: list[list[np.ndarray]]) -> np.ndarray:
    titles = ("frame 0", "frame t", "labels t", "flow t->t-1", "occlusion t")
    h, w = rows[0][0].shape[:2]
    scale = min(1.0, 384 / w)
    th, tw = max(1, int(h * scale)), max(1, int(w * scale))
    head = 22
    sheet = np.full((head + len(rows) * (th + 4), len(titles) * (tw + 4), 3), 255, np.uint8)
    for j, title in enumerate(titles):
        cv2.putText(sheet, title, (j * (tw + 4) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = head + i * (th + 4), j * (tw + 4)
            sheet[y:y + th, x:x + tw] = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
    return sheet


def make_preview(clips: list[Clip]) -> np.ndarray:
    """(H', W', 3) uint8 RGB contact sheet: one row per clip (frame 0, mid frame, its labels,
    backward flow with a colour-wheel legend, occlusion in magenta)."""
    if not clips:
        raise ConfigError("make_preview needs at least one clip")
    return _contact_sheet([_preview_row(c) for c in clips])
