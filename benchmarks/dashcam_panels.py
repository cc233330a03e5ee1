"""Side-by-side frames of dash-cam clips segmented per frame by two sets of weights (before / after).

    python benchmarks/dashcam_panels.py --before old.safetensors --after camvid \
        --out docs/results/keyframe_net/dashcam.jpg ../shared/data/video/*.mp4

Rows: three frames of each clip (at 20 %, 50 % and 80 % of it); columns: the frame, the labels of
``--before`` and of ``--after`` blended over it, each in its weights' own label space (CamVid-11 or
Cityscapes-19), with the colour legend of each label space shown underneath.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from evss.checkpoint import load_model
from evss.classes import LABEL_SPACES
from evss.media import open_video
from evss.segmenter import SegmenterConfig, VideoSegmenter
from evss.visualize import render


def frames_at(path: Path, fractions: tuple[float, ...], max_size: int) -> list[np.ndarray]:
    with open_video(path, max_size=max_size) as video:
        frames = [f.image for f in video]
    return [frames[min(len(frames) - 1, int(q * len(frames)))] for q in fractions]


def labels(weights: str, frame: np.ndarray) -> tuple[np.ndarray, str]:
    """The per-frame labels of ``weights`` on ``frame`` and the weights' label space."""
    model, config = load_model(weights)
    seg = VideoSegmenter(model, config=SegmenterConfig(mode="per_frame"))
    return seg.step(frame).labels, config.label_space


def legend_row(space_name: str, width: int) -> np.ndarray:
    """The classes of a label space with their colours, 24 px a line (as many lines as the width needs)."""
    space = LABEL_SPACES[space_name]
    im = Image.new("RGB", (width, 96), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    x, y = 4, 6
    for name, colour in zip(space.names, space.palette):
        if x + 24 + 7 * len(name) > width:  # wrap onto the second line
            x, y = 4, y + 24
        draw.rectangle([x, y, x + 12, y + 12], fill=tuple(int(c) for c in colour))
        draw.text((x + 16, y), name, fill=(0, 0, 0))
        x += 24 + 7 * len(name)
    return np.asarray(im)[: y + 18]


def caption(image: np.ndarray, text: str) -> np.ndarray:
    im = Image.fromarray(image)
    ImageDraw.Draw(im).rectangle([0, 0, 8 * len(text) + 8, 16], fill=(0, 0, 0))
    ImageDraw.Draw(im).text((4, 2), text, fill=(255, 255, 255))
    return np.asarray(im)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", nargs="+", type=Path)
    p.add_argument("--before", required=True)
    p.add_argument("--after", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-size", type=int, default=640)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows, spaces = [], []
    for clip in args.clips:
        for i, frame in enumerate(frames_at(clip, (0.2, 0.5, 0.8), args.max_size)):
            cells = [caption(frame, f"{clip.stem} #{i}")]
            for tag, weights in (("before", args.before), ("after", args.after)):
                ids, space = labels(weights, frame)
                spaces += [space] if space not in spaces else []
                cells.append(caption(render(frame, ids, layout="overlay", label_space=space,
                                            alpha=0.6), f"{tag} ({LABEL_SPACES[space].num_classes} classes)"))
            rows.append(np.concatenate(cells, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    legends = [legend_row(space, width) for space in spaces]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # JPEG (quality 85) keeps the figure a few hundred kB for the repository; PNG stays lossless
    Image.fromarray(np.concatenate(rows + legends, axis=0)).save(args.out, quality=85)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
