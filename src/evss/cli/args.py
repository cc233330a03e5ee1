"""Argument types shared by every command: parsed once, here, so every flag reads values the same way.

Only the standard library is imported: building the parser must stay fast (``evss --help``).
"""

from __future__ import annotations

import argparse


def size(text: str) -> tuple[int, int]:
    """``HxW`` (e.g. ``512x1024``) -> (H, W), both >= 1."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HxW, e.g. 256x512") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return h, w


def optional_size(text: str) -> tuple[int, int] | None:
    """``HxW``, or an empty string / ``none`` for "not at all"."""
    return None if text.strip().lower() in ("", "none") else size(text)


def unit_float(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not in [0, 1]")
    return value


def inference_size(text: str) -> int:
    """``--inference-size``: pixels of the longer side (at least 64), or ``full`` (0: the frames' own size)."""
    if text.strip().lower() == "full":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of pixels or 'full'") from None
    if value < 64:
        raise argparse.ArgumentTypeError(f"{text!r}: the longer side must be at least 64 pixels (or full)")
    return value


def override(text: str) -> str:
    """``KEY=VALUE`` (the value is read later, by :func:`evss.config.parse_override`)."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. distortion.w_f=0.3)")
    return text


def int_list(text: str) -> tuple[int, ...]:
    """``1,5,9`` or a range ``1-9`` (or both: ``1-3,5``) -> sorted unique positive ints."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi) + 1) if sep else (int(lo),))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of integers such as 1,5,9 or 1-9") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be >= 1")
    return tuple(sorted(out))


# Literal copies of evss.backends.BACKENDS and PRECISIONS (tests/apps/test_flags.py checks they agree):
# flag modules must not import torch.
BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8")
# Literal copy of evss.segmenter.PROPAGATIONS (checked by the same test).
PROPAGATIONS = ("composed", "chained", "merged")


BACKEND_HELP = ("torch (default), onnxruntime (the keyframe network; CPU, float32; pip install onnxruntime onnx "
                "onnxscript) or openvino (the keyframe, correction and flow networks; CPU; pip install "
                "'evss[openvino]'); graphs are converted once per frame size and cached under $EVSS_CACHE "
                "(default ~/.cache/evss)")
PRECISION_HELP = ("fp32 (default), or int8 with --backend openvino: NNCF post-training quantisation, calibrated "
                  "once per frame size on generated SynthDrive frames or the images of $EVSS_CALIBRATION")


def add_backend_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, *, several: bool = False) -> None:
    """``--backend`` and ``--precision``: one value each, or (``several``, `evss bench`) one or more."""
    if several:
        p.add_argument("--backend", nargs="+", choices=BACKENDS, default=["torch"], metavar="BACKEND",
                       help="time each of these backends in one run, e.g. torch openvino: " + BACKEND_HELP)
        p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["fp32"], metavar="PRECISION",
                       help="time each of these precisions (int8 applies to openvino only): " + PRECISION_HELP)
        return
    p.add_argument("--backend", choices=BACKENDS, default="torch", help="run the networks with " + BACKEND_HELP)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP)
