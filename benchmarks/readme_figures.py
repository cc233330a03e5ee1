"""The README's two figures, made from what the product wrote and what was measured; nothing is timed here.

    # the picture at the top: frame | EVSS labels | fine distortion map M^f, from `evss segment` outputs
    evss segment CLIP -o seg.mp4 --mode evss --max-size 640 --threads 1 --save-labels labels/ --save-maps maps/
    python benchmarks/readme_figures.py picture CLIP --labels labels/ --maps maps/fine --frames 114 149 \
        --max-size 640 --out docs/images/dashcam_evss.jpg

    # the speed/accuracy plot: mIoU and time per frame of one `evss eval` run (its report.json)
    python benchmarks/readme_figures.py plot docs/results/camvid/report.json --keyframe-ms 39.9 \
        --out docs/images/speed_accuracy.png

``picture`` decodes the clip at the same ``--max-size`` as the segment run, so frame i of the clip
lines up with ``labels/00000i.png`` and ``maps/fine/00000i.png``; ``--label-space`` names the
segment run's weights' classes (camvid, or cityscapes for a 19-class model) for the colours and
legend. ``plot`` puts each method at its mean time per frame from the keyframe to the labelled
frame at distance d, as a share of the per-frame network's in the same run, and labels the points
with d; ``--keyframe-ms`` (the keyframe network's time alone, from
``benchmarks/keyframe_networks.py``) adds an axis in ms.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from evss.classes import LABEL_SPACES
from evss.media import open_video
from evss.visualize import overlay

# The rows of the plot: report method name -> (legend text, where its "d=" labels go in points).
PLOT_METHODS = {
    "per_frame": ("per-frame keyframe network", (0, 0)),
    "warp_only": ("warp-only, DIS flow", (4, -11)),
    "evss": ("EVSS, DIS flow", (6, -3)),
    "warp_only[mv]": ("warp-only, codec motion vectors", (-22, 5)),
    "evss[mv]": ("EVSS, codec motion vectors", (-30, -3)),
}


def read_frames(clip: Path, indices: list[int], max_size: int | None) -> dict[int, np.ndarray]:
    """Decode the clip once and keep the frames asked for, (H, W, 3) uint8 RGB each."""
    wanted = set(indices)
    out: dict[int, np.ndarray] = {}
    with open_video(clip, max_size=max_size) as video:
        for i, frame in enumerate(video):
            if i in wanted:
                out[i] = frame.image
    missing = sorted(wanted - out.keys())
    if missing:
        raise SystemExit(f"{clip} has no frame {missing[0]} (it has fewer frames)")
    return out


def captioned(image: np.ndarray, text: str, font: ImageFont.ImageFont) -> np.ndarray:
    """White text on a black band in the top-left corner of a copy of ``image``."""
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    left, top, right, bottom = draw.textbbox((6, 4), text, font=font)
    draw.rectangle([0, 0, right + 6, bottom + 4], fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(im)


def heat(map_png: Path, shape: tuple[int, int]) -> np.ndarray:
    """A saved greyscale map (0-255 for M^f in [0, 1]) as an inferno-coloured RGB image of ``shape``."""
    grey = np.asarray(Image.open(map_png).convert("L"))  # (H, W) uint8
    if grey.shape != shape:
        raise SystemExit(f"{map_png} is {grey.shape[1]}x{grey.shape[0]}, the frame {shape[1]}x{shape[0]}: "
                         "pass the --max-size of the segment run")
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)  # (H, W, 3)


def legend(width: int, font: ImageFont.ImageFont, label_space: str = "camvid") -> np.ndarray:
    """The classes of ``label_space`` with their colours, 28 px a line, (28 * lines, width, 3): one line
    for CamVid's 11, as many as the width needs for Cityscapes' 19."""
    space = LABEL_SPACES[label_space]
    im = Image.new("RGB", (width, 28 * 4), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    x, y = 6, 0
    for name, colour in zip(space.names, space.palette):
        step = 30 + int(draw.textlength(name, font=font))
        if x > 6 and x + step > width:  # wrap onto the next line
            x, y = 6, y + 28
        draw.rectangle([x, y + 7, x + 14, y + 21], fill=tuple(int(c) for c in colour))
        draw.text((x + 19, y + 6), name, fill=(0, 0, 0), font=font)
        x += step
    return np.asarray(im)[: y + 28]


def picture(args: argparse.Namespace) -> None:
    """Rows of frame | labels blended over it | fine distortion map, a class legend underneath."""
    font = ImageFont.load_default(size=16)
    frames = read_frames(args.clip, args.frames, args.max_size)
    rows = []
    for i in args.frames:
        frame = frames[i]
        labels = np.asarray(Image.open(args.labels / f"{i:06d}.png"))  # (H, W) class ids
        d = i % args.keyframe_interval
        cells = [captioned(frame, f"frame {i} ({d} after its keyframe)", font),
                 captioned(overlay(frame, labels, label_space=args.label_space, alpha=0.55), "EVSS labels", font),
                 captioned(heat(args.maps / f"{i:06d}.png", frame.shape[:2]), "fine distortion map M^f", font)]
        rows.append(np.concatenate(cells, axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    sheet = np.concatenate(rows + [legend(rows[0].shape[1], font, args.label_space)], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out, quality=args.quality)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


def plot(args: argparse.Namespace) -> None:
    """mIoU against time per frame (share of per-frame) for each method and distance d of the report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(args.report.read_text())
    methods = report["methods"]
    base = methods["per_frame"]["ms_keyframe"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, (text, offset) in PLOT_METHODS.items():
        if name not in methods:
            continue
        intervals = methods[name]["intervals"]
        points = sorted((int(d), v["ms_per_frame"] / base, 100 * v["miou"]) for d, v in intervals.items())
        if name == "per_frame":
            points = points[:1]
        ax.plot([p[1] for p in points], [p[2] for p in points], "o-", label=text)
        for d, x, y in points:
            if name != "per_frame":
                ax.annotate(f"d={d}", (x, y), textcoords="offset points", xytext=offset, fontsize=7)
    ax.set_xlabel("time per frame, share of the per-frame network's (mean from keyframe to frame d)", fontsize=9)
    ax.set_ylabel("mIoU (%), CamVid val")
    ax.set_xlim(0, 1.08)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if args.keyframe_ms:
        top = ax.secondary_xaxis("top", functions=(lambda s: s * args.keyframe_ms, lambda ms: ms / args.keyframe_ms))
        top.set_xlabel(f"about ms per frame: share x {args.keyframe_ms:g} ms, the keyframe network alone", fontsize=9)
    fig.suptitle(f"CamVid val clip, {report['weights']} weights ({report['preset']}), {report['threads']} threads, "
                 f"{report['device']}", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="figure", required=True)
    pic = sub.add_parser("picture", help="frame | labels | fine map from evss segment outputs")
    pic.add_argument("clip", type=Path)
    pic.add_argument("--labels", type=Path, required=True, help="the --save-labels folder of the segment run")
    pic.add_argument("--maps", type=Path, required=True, help="the fine maps of --save-maps (DIR/fine)")
    pic.add_argument("--frames", type=int, nargs="+", required=True)
    pic.add_argument("--max-size", type=int, default=None, help="the --max-size of the segment run")
    pic.add_argument("--keyframe-interval", type=int, default=5, help="the segment run's, for the captions")
    pic.add_argument("--label-space", choices=sorted(LABEL_SPACES), default="camvid",
                     help="the classes of the segment run's weights (default camvid; cityscapes: 19 classes)")
    pic.add_argument("--quality", type=int, default=82, help="JPEG quality")
    pic.add_argument("--out", type=Path, required=True)
    pl = sub.add_parser("plot", help="speed/accuracy plot from an evss eval report.json")
    pl.add_argument("report", type=Path)
    pl.add_argument("--keyframe-ms", type=float, default=None, help="the keyframe network's ms, for a top axis")
    pl.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if args.figure == "picture":
        picture(args)
    else:
        plot(args)


if __name__ == "__main__":
    main()
