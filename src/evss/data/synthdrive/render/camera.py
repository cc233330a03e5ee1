"""The dash camera: a pinhole with OpenCV axes, and the world-to-camera rotation.

* World: X to the right of the road, Y up, Z along the road (metres). The ground is Y = 0.
* Camera: OpenCV axes (x right, y down, z forward), ``p_cam = rot @ (P_world - centre)``; a pixel
  centre sits on integer (u, v) with ``u = focal * x / z + cx`` and ``cx = (W - 1) / 2``, which is the
  ``align_corners=True`` grid of :func:`evss.models.warp.warp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEAR = 0.25  # metres; nearer surfaces are clipped away


@dataclass(frozen=True)
class Camera:
    """A pinhole camera in one frame (axes and pixel grid in the module docstring)."""

    rot: np.ndarray  # (3, 3) world -> camera
    centre: np.ndarray  # (3,) world position
    focal: float  # pixels
    width: int
    height: int

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2

    @property
    def k(self) -> np.ndarray:
        return np.array([[self.focal, 0, self.cx], [0, self.focal, self.cy], [0, 0, 1.0]])

    def plane_map(self, origin: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
        """3x3 map from pixel (u, v, 1) to (s, t, 1) / depth for the plane origin + s u + t v.

        Row 2 of the result, applied to a pixel, is the inverse camera depth of the plane there.
        None when the camera lies in the plane (it is seen edge-on and covers no pixel centre).
        """
        m = self.k @ self.rot @ np.column_stack([u, v, origin - self.centre])  # (3, 3)
        if abs(np.linalg.det(m)) < 1e-9 * np.abs(m).max() ** 3:
            return None
        return np.linalg.inv(m)


def world_to_camera(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World (X right, Y up, Z forward) -> camera (x right, y down, z forward); pitch > 0 looks down."""
    b = np.diag([1.0, -1.0, 1.0])
    cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), \
        math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry @ b
