"""What one clip's world holds: cameras, textured quads, object tracks, ground, sky, colour grade.

Every surface other than the ground and the sky is a textured quad ``origin + s * u + t * v`` with
(s, t) in [0, 1]^2 that belongs to an object; an object is rigid and moves along a straight track,
so per frame its quads are offset by the object's position. :func:`.street.build_scene` fills a
:class:`SceneBuilder` and returns a :class:`Scene`; :func:`.raster.render_frame` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evss.data.synthdrive.render.camera import Camera
from evss.data.synthdrive.render.ground_sky import GroundLook, SkyLook
from evss.data.synthdrive.render.textures import Texture

SKY_OBJ, GROUND_OBJ = 0, 1  # object ids; every other object gets its own id from 2 on


@dataclass
class Scene:
    """Everything needed to render any frame of a clip: cameras, textured quads, object tracks."""

    cams: list[Camera]  # one per frame
    textures: list[Texture]
    q_origin: np.ndarray  # (N, 3) quad origin relative to its object's position
    q_u: np.ndarray  # (N, 3)
    q_v: np.ndarray  # (N, 3)
    q_obj: np.ndarray  # (N,) int object id
    q_tex: np.ndarray  # (N,) int texture index
    q_texel: np.ndarray  # (N,) metres per texel along u (for the mip level)
    obj_pos: np.ndarray  # (n_obj, T, 3) world offset of every object per frame
    moving: np.ndarray  # (n_obj,) bool
    ground: GroundLook
    sky: SkyLook
    colour: np.ndarray  # (T, 3, 3) per-frame colour matrix (palette, hue, illumination)
    vignette: np.ndarray  # (H, W, 1) float32


class SceneBuilder:
    """Collects textures, quads and object tracks while a scene is laid out."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.textures: list[Texture] = []
        self.quads: list[tuple] = []
        self.pos: list[np.ndarray] = [np.zeros((frames, 3)), np.zeros((frames, 3))]  # SKY_OBJ, GROUND_OBJ
        self.moving: list[bool] = [False, False]

    def obj(self, start, velocity=(0.0, 0.0, 0.0), dt: float = 0.0) -> int:
        steps = np.arange(self.frames)[:, None] * dt  # (T, 1) seconds
        track = np.asarray(start, float)[None, :] + steps * np.asarray(velocity, float)[None, :]
        self.pos.append(track)  # (T, 3)
        self.moving.append(bool(np.any(np.asarray(velocity) != 0)))
        return len(self.pos) - 1

    def tex(self, texture: Texture) -> int:
        self.textures.append(texture)
        return len(self.textures) - 1

    def quad(self, obj: int, tex: int, origin, u, v) -> None:
        self.quads.append((np.asarray(origin, float), np.asarray(u, float), np.asarray(v, float),
                           obj, tex))

    def billboard(self, obj: int, tex: int, width: float, height: float, mirror: bool = False) -> None:
        """An upright sprite facing -Z (towards the camera), bottom centre at the object position."""
        if mirror:
            self.quad(obj, tex, (width / 2, height, 0.0), (-width, 0, 0), (0, -height, 0))
        else:
            self.quad(obj, tex, (-width / 2, height, 0.0), (width, 0, 0), (0, -height, 0))
