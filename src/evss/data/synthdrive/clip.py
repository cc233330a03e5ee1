"""One SynthDrive clip: its frames and exact dense ground truth, generated from (config, seed).

Every surface is a textured plane in a small 3D world (see :mod:`.render`), so for each pixel
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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evss.data.synthdrive.config import SynthDriveConfig, check_config
from evss.data.synthdrive.render.flow import flow_between
from evss.data.synthdrive.render.raster import render_frame
from evss.data.synthdrive.render.sensor import finish_frame
from evss.data.synthdrive.render.street import build_scene
from evss.errors import DataError

GENERATOR_VERSION = "1.0"  # written into every manifest (storage.write_dataset)


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


def generate_clip(config: SynthDriveConfig, seed: int) -> Clip:
    """Render one clip; the result depends only on (config, seed)."""
    check_config(config)
    scene = build_scene(config, seed)
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
        fb = render_frame(scene, t)
        if t > 0:
            flow_bwd[t], occlusion[t] = flow_between(scene, fb, t, t - 1, prev)
        if t < T - 1:
            flow_fwd[t], _ = flow_between(scene, fb, t, t + 1, None)
        blur = None
        if config.motion_blur and T > 1:
            blur = flow_bwd[t] if t > 0 else -flow_fwd[t]
        frames[t] = finish_frame(scene, config, fb.rgb, t, blur, noise, noise_rng)
        labels[t] = fb.label
        instances[t] = fb.obj
        prev = fb
    moving = tuple(int(i) for i in np.flatnonzero(scene.moving))
    return Clip(frames=frames, labels=labels, flow_bwd=flow_bwd, flow_fwd=flow_fwd,
                occlusion=occlusion, instances=instances, moving_instances=moving)
