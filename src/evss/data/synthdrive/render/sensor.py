"""The camera's effects on a rendered frame: lens and motion blur, colour grade and illumination,
vignette, sensor noise; float radiance in, 8-bit RGB out. Labels and flow never see them."""

from __future__ import annotations

import cv2
import numpy as np

from evss.data.synthdrive.config import SynthDriveConfig
from evss.data.synthdrive.render.scene import Scene


def finish_frame(scene: Scene, cfg: SynthDriveConfig, rgb: np.ndarray, t: int,
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
