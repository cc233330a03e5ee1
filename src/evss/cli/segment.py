"""Flags of `evss segment`."""

from __future__ import annotations

import argparse
from pathlib import Path

from evss.cli.args import PROPAGATIONS, add_backend_arguments, inference_size, unit_float

# Literal copies of evss.checkpoint.DEFAULT_WEIGHTS, evss.flow_sources.FLOW_SOURCES,
# evss.visualize.LAYOUTS and evss.pipeline.outputs.MAP_NAMES (a test checks they agree): the parser is
# built for every `evss` command and must not import torch.
DEFAULT_WEIGHTS = "camvid"
FLOW_SOURCES = ("learned", "dis", "mv")
LAYOUTS = ("overlay", "side")
MAP_NAMES = ("fine", "coarse", "edge")


def _map_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in MAP_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--maps takes a comma list of {', '.join(MAP_NAMES)}, got {text!r}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="*",
                   help="video file (anything FFmpeg reads), folder of frames, or a quoted glob; several inputs, a "
                        "folder of videos or a glob of videos make a batch (see --workers)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output video (.mp4); for a batch, the folder that gets one DIR/<name>.mp4 per input and "
                        "the manifest DIR/evss-batch.jsonl")
    b = p.add_argument_group("many inputs")
    b.add_argument("--list", type=Path, metavar="FILE", dest="list_file",
                   help="also segment the inputs listed in FILE, one path per line (# comments)")
    b.add_argument("--workers", type=int, default=None,
                   help="a batch's worker processes, each loading the model once (default: one per CPU core, "
                        "with --threads 1 each unless --threads says otherwise)")
    b.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the batch on a Ray cluster at ADDRESS (no address: a local Ray runtime); outputs must be "
                        "on a filesystem every node sees; needs pip install 'evss[cluster]'")
    g = p.add_argument_group("output")
    g.add_argument("--layout", choices=LAYOUTS, default="overlay",
                   help="overlay: labels blended over the frame; side: frame and labels side by side")
    g.add_argument("--alpha", type=unit_float, default=0.5, help="label opacity for --layout overlay (default 0.5)")
    g.add_argument("--save-labels", type=Path, metavar="DIR",
                   help="also write one palette PNG of class ids per frame (000000.png, ...); the folder is filled "
                        "as .DIR.partial and renamed when done, replacing an earlier output of evss there")
    g.add_argument("--save-maps", type=Path, metavar="DIR|VIDEO",
                   help="also write distortion maps: greyscale PNGs in DIR/<map>/, or videos if this ends in .mp4")
    g.add_argument("--maps", type=_map_list, default=("fine",),
                   help="which maps --save-maps writes: comma list of fine, coarse, edge (default fine)")
    g.add_argument("--pix-fmt", choices=("yuv420p", "yuv444p"), default="yuv420p",
                   help="yuv420p plays everywhere but pads odd sizes by a pixel; yuv444p keeps odd sizes exactly")
    g.add_argument("--crf", type=int, default=20, help="H.264 quality, lower is better (default 20)")
    m = p.add_argument_group("model")
    m.add_argument("--weights", default=None,
                   help=f"built-in name, evss checkpoint or the authors' .pth (default {DEFAULT_WEIGHTS})")
    m.add_argument("--keyframe-interval", type=int, default=5, help="a keyframe every N frames (default 5)")
    m.add_argument("--mode", choices=("evss", "warp_only", "per_frame"), default=None,
                   help="evss: Algorithm 1 (warp + CoNet rectification); warp_only: propagate the keyframe's "
                        "features along the flow; per_frame: the keyframe network on every frame; default: the "
                        "weights' default_mode (the built-in camvid: warp_only, see the README)")
    m.add_argument("--flow", choices=FLOW_SOURCES, default=None,
                   help="flow source: the learned FlowNet, OpenCV DIS, or the video's motion vectors (mv); "
                        "default: the one the weights' CoNet was trained with (their config's flow_source)")
    m.add_argument("--propagation", choices=PROPAGATIONS, default="composed",
                   help="composed (default): warp the keyframe's features once along the frame-to-frame flows "
                        "composed back to it; chained: warp the previous frame's warped features again, as "
                        "Algorithm 1 line 18 is written (blurs with every bilinear resample); merged: warp the "
                        "previous frame's merged features F^m (not in the paper; an ablation of line 18, far less "
                        "accurate: README)")
    m.add_argument("--adaptive", action="store_true",
                   help="start keyframes when the fine distortion map says propagation degraded; "
                        "--keyframe-interval is then unused and --max-interval bounds the gap")
    m.add_argument("--max-interval", type=int, default=10,
                   help="--adaptive: longest run without a keyframe (default 10)")
    m.add_argument("--share", type=unit_float, default=0.25,
                   help="--adaptive: keyframe when more than this share of pixels has M^f > 0.5 (default 0.25)")
    m.add_argument("--residual", type=unit_float, default=0.08,
                   help="--adaptive: keyframe when the flow leaves more than this mean grey error (hard cuts; "
                        "default 0.08, 1 disables)")
    r = p.add_argument_group("runtime")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    r.add_argument("--half", action="store_true", help="float16 on CUDA")
    r.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    add_backend_arguments(r)
    r.add_argument("--max-size", type=int, default=None, metavar="PIXELS",
                   help="downscale frames so the longer side is at most this (outputs at that size)")
    r.add_argument("--inference-size", type=inference_size, default=None, metavar="PIXELS|full",
                   help="segment frames whose longer side is over PIXELS downscaled to it and upsample the labels "
                        "(outputs keep the frames' size); full: every frame at its own size; default: the weights' "
                        "inference_size (`evss weights` shows it; none: full)")
    r.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory budget, e.g. 2G or 1500M (default: half the available memory, at most 3G); a frame "
                        "whose estimated peak is over it is segmented at a smaller size and its labels upsampled, "
                        "so the outputs keep the input's size")
    r.add_argument("--no-downscale", action="store_true",
                   help="stop with an error instead of segmenting at a smaller size when over --max-memory")
    r.add_argument("--fps", type=float, default=None, help="frame rate of a folder of frames (default 25)")
    r.add_argument("--on-error", choices=("stop", "skip"), default="skip",
                   help="an undecodable or lost frame (damaged data): skip it (default), repeating the last good "
                        "segmentation so the output keeps the input's frame count and timing (the damaged frames "
                        "and times are reported), or stop with an error naming it")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
