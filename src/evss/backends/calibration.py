"""int8 for the OpenVINO backend: the calibration frames and NNCF's post-training quantisation.

NNCF measures each layer's activation range on a few inputs and quantises weights and activations
to int8 (its default "performance" preset, with the fast bias correction). The first convolution of
each part, the one that reads the image, stays float32: on the `camvid` keyframe network that alone
takes the labels' agreement with float32 on CamVid val frames from 97.3 % to 98.3 % (the last
convolution, the depthwise ones or NNCF's "mixed" preset changed little). The inputs are frames
the project has, so nothing is downloaded: by default SynthDrive clips generated on the spot
(:mod:`evss.data.synthdrive`, fixed seeds: the same frames on every machine); with
``EVSS_CALIBRATION=DIR`` the images of that folder (e.g. CamVid's train frames, closer to real
footage), resized to the compiled size. Either way :data:`PAIRS` pairs of consecutive frames:
the keyframe network sees the later frames, FlowNet the pairs, and the correction network the later
frame beside the keyframe network's logits of the earlier one (F^w under a zero flow). The IR name
carries :func:`calibration_id`, so other calibration frames make another int8 model.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evss.errors import EvssError

ENV = "EVSS_CALIBRATION"
PAIRS = 32  # the measurement quantised on 31 frames; NNCF's default subset is 300
CLIPS = 8  # SynthDrive: PAIRS pairs from this many clips of PAIRS / CLIPS + 1 frames


def import_nncf() -> Any:
    """The nncf module, or the one-line error that names the extra installing it."""
    try:
        import nncf
    except ImportError:
        raise EvssError("--precision int8 needs the nncf package (NNCF, OpenVINO's quantiser): "
                        "pip install 'evss[openvino]' (or use --precision fp32)") from None
    return nncf


def _folder() -> Path | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    folder = Path(value)
    if not folder.is_dir():
        raise EvssError(f"{ENV}={value}: not a folder of frames")
    return folder


def _folder_frames(folder: Path) -> list[Path]:
    from evss.media import list_images
    files = list_images(folder)
    if len(files) < 2:
        raise EvssError(f"{ENV}={folder}: needs at least 2 images to calibrate on, found {len(files)}")
    return files


def calibration_id() -> str:
    """Names the calibration frames in the int8 IR's file name: ``synthdrive`` or ``dir-<hash>`` of the
    folder's file names, sizes and times."""
    folder = _folder()
    if folder is None:
        return "synthdrive"
    h = hashlib.sha256(str(folder.resolve()).encode())
    for p in _folder_frames(folder):
        st = p.stat()
        h.update(f"{p.name} {st.st_size} {st.st_mtime_ns}".encode())
    return f"dir-{h.hexdigest()[:10]}"


def _pairs_from_folder(folder: Path) -> list[np.ndarray]:
    """PAIRS pairs of consecutive images spread over the folder, as a list (a0, b0, a1, b1, ...)."""
    from PIL import Image
    files = _folder_frames(folder)
    starts = np.unique(np.linspace(0, len(files) - 2, PAIRS).round().astype(int))
    out = []
    for i in starts:
        for p in (files[i], files[i + 1]):
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
    return out


def _pairs_from_synthdrive(height: int, width: int) -> list[np.ndarray]:
    from evss.data.synthdrive import SynthDriveConfig, generate_clip
    per_clip = PAIRS // CLIPS + 1
    out = []
    for seed in range(CLIPS):
        frames = generate_clip(SynthDriveConfig(height=height, width=width, frames=per_clip), seed=seed).frames
        for a, b in zip(frames[:-1], frames[1:]):
            out += [a, b]
    return out


@functools.lru_cache(maxsize=1)
def _frames_at(height: int, width: int, source: str) -> tuple[np.ndarray, ...]:
    from evss.media import resize_image
    folder = _folder()
    frames = _pairs_from_folder(folder) if folder is not None else _pairs_from_synthdrive(height, width)
    return tuple(resize_image(f, height, width) for f in frames)


def calibration_frames(height: int, width: int) -> list[torch.Tensor]:
    """The calibration frames at (height, width) as (1, 3, H, W) float32 in [0, 1], in pairs:
    frames 2i and 2i + 1 are consecutive."""
    from evss.tensors import to_tensor
    return [to_tensor(f, torch.device("cpu"), torch.float32)
            for f in _frames_at(height, width, calibration_id())]


def quantise(model: Any, samples: list[tuple[np.ndarray, ...]]) -> Any:
    """``model`` (an OpenVINO model) quantised to int8 by NNCF on ``samples`` (its inputs), quietly;
    its first convolution stays float32."""
    nncf = import_nncf()
    nncf.set_log_level(logging.ERROR)
    first = next((op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"),
                 None)
    ignored = nncf.IgnoredScope(names=[first], validate=False) if first else None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):  # NNCF's progress bars
        warnings.simplefilter("ignore")
        return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples), fast_bias_correction=True,
                             ignored_scope=ignored)
