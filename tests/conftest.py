"""Shared test fixtures: the read-only reference data beside the project, and tiny models.

The tiny models are *vivid*: a freshly initialised network, whose BatchNorm layers still hold the
identity statistics, predicts one class on every pixel for any input, which makes every streaming
test blind to how features and predictions carry from frame to frame. ``vivid_tiny_model``
recalibrates the BatchNorm statistics of a seeded tiny model on smooth random colour images, so
its logits vary across the image (about ten of the eleven classes on a SynthDrive frame) and move
with the content, its FlowNet gives a non-zero flow and CoNet's edge map and updated features
differ from the warped ones. ``colour_model`` goes further for tests that need exact answers: its
backbone is a fixed per-pixel function of colour, so its labels shift exactly with the image.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference" / "official_evss"
DATA = SHARED / "data"


def ci_from_env(environ) -> bool:
    """CI systems set CI=true (GitHub, GitLab, ...); .ci/run sets it too."""
    return environ.get("CI", "").strip().lower() in ("1", "true", "yes")


IN_CI = ci_from_env(os.environ)


@pytest.fixture(autouse=True)
def one_thread_seeded():
    """Every test starts with one torch thread and the same global seeds, whatever ran before it.

    One thread: the tiny models gain nothing from more, and on a shared machine a second spinning
    thread makes a test tens of times slower (training tests set their own count through
    ``--threads``; this puts it back). Seeds: a test that draws from the global generators
    (``torch.rand``) sees the same numbers alone, in a subset or in the whole suite.
    """
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    yield


def missing(why: str) -> None:
    """Skip a test whose inputs are absent; in CI (``CI=true``) that is a failure instead."""
    if IN_CI:
        pytest.fail(f"{why} (CI=true: every test must run in CI)", pytrace=False)
    pytest.skip(why)


def need_path(path: Path, what: str) -> Path:
    """``path`` if it exists, else skip (fail in CI) naming ``what``."""
    if not path.exists():
        missing(f"{what} not found at {path}")
    return path


def need_module(name: str):
    """``importlib.import_module(name)``, else skip (fail in CI): pytest.importorskip that CI cannot skip."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"module {name} is not installed ({exc})")


@pytest.fixture(scope="session")
def reference():
    """(vectors npz, gen_weights module) from ../shared/reference/official_evss."""
    need_path(REFERENCE / "vectors.npz", "official conformance vectors")
    spec = importlib.util.spec_from_file_location("gen_weights", REFERENCE / "gen_weights.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return np.load(REFERENCE / "vectors.npz"), gen


# ---- tiny models whose predictions vary -----------------------------------------------------------

def smooth_images(n: int, h: int = 64, w: int = 128, *, seed: int = 0) -> torch.Tensor:
    """(n, 3, h, w) smooth random colour fields in [0, 1]: blobs a few pixels to tens of pixels wide."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, max(2, h // 8), max(2, w // 8), generator=g)
    fine = torch.rand(n, 3, max(2, h // 2), max(2, w // 2), generator=g)
    up = lambda x: nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return (0.75 * up(coarse) + 0.25 * up(fine)).clamp(0, 1)


@torch.no_grad()
def calibrate_batchnorm(module: nn.Module, run) -> None:
    """Set every BatchNorm's running statistics to those of the activations ``run()`` produces."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    module.train()
    run()
    module.eval()
    for bn in norms:
        bn.momentum = 0.1


def vivid_tiny_model(seed: int = 0, label_space: str = "camvid"):
    """The ``tiny`` preset (seeded) with BatchNorm calibrated so that its outputs vary; eval mode.
    ``label_space="cityscapes"``: the 19-class model (as the streets weights)."""
    from evss.config import build_model, preset
    torch.manual_seed(seed)
    model = build_model(preset("tiny", label_space=label_space))
    # the preset's CoNet starts at F^u = F^w (passthrough head); the tests need one that corrects
    model.correction.predict_cc.reset_parameters()
    images = smooth_images(8, seed=seed)  # (8, 3, 64, 128)
    calibrate_batchnorm(model.backbone, lambda: model.backbone(images))
    calibrate_batchnorm(model.flow, lambda: model.flow(images[:4], images[4:]))
    with torch.no_grad():
        logits = model.backbone(images)  # (8, C, 16, 32)
    calibrate_batchnorm(model.correction, lambda: model.correction(images, logits))
    return model.eval()


_VIVID: dict[int, dict[str, torch.Tensor]] = {}


def vivid_state(seed: int = 0) -> dict[str, torch.Tensor]:
    if seed not in _VIVID:
        _VIVID[seed] = {k: v.clone() for k, v in vivid_tiny_model(seed).state_dict().items()}
    return _VIVID[seed]


@pytest.fixture
def tiny_model():
    """A fresh vivid tiny EVSSNet (11 classes, eval mode) for each test."""
    from evss.config import build_model, preset
    model = build_model(preset("tiny"))
    model.load_state_dict(vivid_state(0))
    return model.eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """The vivid tiny model as an evss checkpoint, for tests of the command line."""
    from evss.checkpoint import save_model
    from evss.config import build_model, preset
    model = build_model(preset("tiny"))
    model.load_state_dict(vivid_state(0))
    return save_model(tmp_path_factory.mktemp("weights") / "tiny.safetensors", model.eval(), preset("tiny"))


@pytest.fixture
def tiny_streets_model():
    """A vivid tiny EVSSNet in the Cityscapes-19 label space (eval mode), fresh for each test."""
    return vivid_tiny_model(0, label_space="cityscapes")


@pytest.fixture(scope="session")
def tiny_streets_weights(tmp_path_factory) -> Path:
    """The vivid tiny 19-class model as an evss checkpoint, for tests of the command line."""
    from evss.checkpoint import save_model
    from evss.config import preset
    return save_model(tmp_path_factory.mktemp("weights") / "tiny19.safetensors",
                      vivid_tiny_model(0, label_space="cityscapes"), preset("tiny", label_space="cityscapes"))


@pytest.fixture(scope="session")
def openvino_cache(tmp_path_factory) -> Path:
    """One ``EVSS_CACHE`` for the tests that run the OpenVINO backend on the same tiny weights and
    sizes: each part is converted once in a session (tests of the cache itself use their own)."""
    return tmp_path_factory.mktemp("evss-cache")


class ColourClasses(nn.Module):
    """Per-pixel logits that are a fixed function of colour: class c scores -|rgb - palette[c]|^2.

    Every pixel takes the class of the nearest palette colour, so a frame shifted by s pixels has
    its labels shifted by exactly s pixels (away from the border).
    """

    def __init__(self, num_classes: int = 11) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.register_buffer("palette", torch.rand(num_classes, 3, generator=g))  # (C, 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        d = image.unsqueeze(1) - self.palette[None, :, :, None, None]  # (N, C, 3, H, W)
        return -20.0 * (d * d).sum(dim=2)  # (N, C, H, W)


def colour_model():
    """A vivid tiny EVSSNet whose backbone is :class:`ColourClasses` at stride 4 (``SegmenterBackbone``)."""
    from evss.config import build_model, preset
    from evss.models.backbone import SegmenterBackbone
    from evss.models.evss import EVSSNet
    base = build_model(preset("tiny"))
    base.load_state_dict(vivid_state(0))

    class Quarter(nn.Module):  # colour classes on the 4x4 block means: exact 1/4-grid labels
        def __init__(self) -> None:
            super().__init__()
            self.colour = ColourClasses(11)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.colour(nn.functional.avg_pool2d(image, 4, ceil_mode=True))

    backbone = SegmenterBackbone(Quarter(), num_classes=11)
    return EVSSNet(backbone=backbone, flow=copy.deepcopy(base.flow), correction=copy.deepcopy(base.correction),
                   distortion=base.distortion).eval()


# ---- clips with known motion -------------------------------------------------------------------

def panning_clip(n: int, h: int, w: int, *, step: int = 4, seed: int = 0) -> list[np.ndarray]:
    """n frames (h, w, 3) uint8 of a smooth colour texture moving ``step`` pixels left per frame.

    Pixel x of frame t shows what pixel x + step showed in frame t - 1: the backward flow is
    (+step, 0) everywhere (the last ``step`` columns are new content).
    """
    texture = smooth_images(1, h, w + step * n, seed=seed)[0]  # (3, h, w + step n)
    base = (texture.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return [np.ascontiguousarray(base[:, step * t:step * t + w]) for t in range(n)]


def smooth_frames(n: int, h: int, w: int, *, step: int = 0, seed: int = 0) -> np.ndarray:
    """A smooth random texture panning ``step`` pixels right per frame: (n, h, w, 3) uint8 (for codecs)."""
    import cv2
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, ((h + 16) // 4 + 1, (w + abs(step) * n + 16) // 4 + 1, 3), dtype=np.uint8)
    big = cv2.GaussianBlur(cv2.resize(big, (big.shape[1] * 4, big.shape[0] * 4)), (5, 5), 1.5)
    x0 = abs(step) * n + 8
    return np.stack([big[8:8 + h, x0 - step * t:x0 - step * t + w] for t in range(n)])


@pytest.fixture(scope="session")
def synth_clip():
    """A SynthDrive clip, 8 frames of 64x128: real camera and object motion with exact flow."""
    from evss.data.synthdrive import SynthDriveConfig, generate_clip
    return generate_clip(SynthDriveConfig(height=64, width=128, frames=8), seed=1)


def pan_flow(step_quarter: float = 1.0):
    """A FlowEstimator giving the true flow of :func:`panning_clip`: (+step/4, 0) on the 1/4 grid."""
    def flow(reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        n, _, h, w = reference.shape
        out = torch.zeros(n, 2, -(-h // 4), -(-w // 4), dtype=reference.dtype)
        out[:, 0] = step_quarter
        return out  # (N, 2, h/4, w/4)
    return flow


# ---- Algorithm 1, written out line by line ------------------------------------------------------

def algorithm1_reference(model, frames, interval: int, *, flow=None, propagate: str = "warped",
                         update_pred: bool = True) -> list[dict[str, np.ndarray]]:
    """Algorithm 1 on frames whose sides are multiples of 32 (no padding), one dict per frame.

    ``labels`` and ``warped`` (the argmax of F^w, both at input resolution, uint8) and the 1/4-grid
    ``coarse`` map. ``propagate="warped"`` is line 18 as written (the segmenter's "chained");
    ``propagate="composed"`` warps F^b_k once along the frame-to-frame flows composed back to the
    keyframe; ``propagate="merged"`` carries F^m instead of F^w (the segmenter's "merged", not in
    the paper). ``propagate="keyframe"`` and ``update_pred=False`` compute two wrong variants
    (the keyframe's features warped again and again; P_k never updated) so that a test can show it
    would see them.
    """
    import torch.nn.functional as F

    from evss.models.distortion import coarse_map, fine_map, fuse
    from evss.models.warp import warp
    flow = flow or model.flow
    up = lambda x: F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    label = lambda x: up(x).argmax(1)[0].to(torch.uint8).numpy()
    out = []
    with torch.no_grad():
        for i, f in enumerate(frames):
            img = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
            if i % interval == 0:
                feat = model.backbone(img)  # lines 3-6: F_k^b
                pred, key_img, acc = feat.argmax(1), img, None  # P_k, I_k, O_{i->k}
                out.append({"labels": label(feat), "warped": label(feat), "coarse": np.zeros(feat.shape[-2:])})
                continue
            step = flow(key_img, img)  # O_{i->i-1}
            if propagate == "composed":
                acc = step if acc is None else step + warp(acc, step)  # O_{i->k}
            fw = warp(feat, acc if propagate == "composed" else step)  # line 8, Eq. (1)
            fu, edge_scores = model.correction(img, fw)  # lines 9-10, Eq. (2)
            mc = coarse_map(fw, pred)  # lines 11-12, Eq. (3)
            me = model.correction.edge_probability(edge_scores)  # line 13
            mf = fine_map(mc, me, model.distortion)  # line 14, Eq. (4)
            fm = fuse(fw, fu, mf, model.distortion)  # line 15, Eq. (5)
            out.append({"labels": label(fm), "warped": label(fw), "coarse": mc[0, 0].numpy()})  # lines 16-17
            if propagate == "warped":
                feat = fw  # line 18: F_k <- F^w
            elif propagate == "merged":
                feat = fm  # not in the paper: F_k <- F^m
            if update_pred:
                pred = fm.argmax(1)  # line 19: P_k <- P_i
            key_img = img  # line 20: I_k <- I_i
    return out
