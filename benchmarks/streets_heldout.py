"""The two accuracy bars of the streets weights (issue 33), measured on one checkpoint.

    python benchmarks/streets_heldout.py WEIGHTS [--limit 20] [--threads 2] [--json out.json]

``WEIGHTS`` is a built-in name or a 19-class checkpoint (e.g. a training run's ``last.safetensors``
or ``best.safetensors``, read only). Printed, per frame (every frame its own keyframe):

* **held-out Cityscapes**: 19-class mIoU and per-class IoU on the pix2pix files listed in
  ``recipes/cityscapes_heldout.txt`` (never trained on), un-squashed to 256x512, the labels snapped
  to the palette with an ignore band: what ``evss eval --data cityscapes_pix2pix`` scores;
* **CamVid val, collapsed to 11 classes**, two ways: ``sets``, the argmax of each CamVid class's
  summed Cityscapes probabilities (``evss eval --data camvid``, training's held-out evaluation), and
  ``argmax``, the 19-class argmax mapped to the CamVid class whose set holds it (what
  ``../shared/checks/world_streets.sh`` reads from ``evss segment --save-labels``).

The mIoU is the mean over classes present in the ground truth (as world_streets.sh averages); the
library's own mean (over classes present in ground truth or prediction) is printed beside it where
it differs. The bars: held-out Cityscapes >= 52, CamVid val collapsed >= 72.0. ``--limit N`` scores
the first N frames of each set only (a quick check; the bars need the full sets).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evss.checkpoint import load_model
from evss.classes import CAMVID, CITYSCAPES
from evss.evaluation import EvalData, Method, eval_source, evaluate
from evss.label_sets import camvid_sets
from evss.metrics import ConfusionMatrix
from evss.segmenter import SegmenterConfig, VideoSegmenter

ROOT = Path(__file__).resolve().parents[1]
BARS = {"cityscapes": 52.0, "camvid": 72.0}


class Seen:
    """A sequence source, cut to its first ``limit`` frames (one-frame sequences: the first ``limit``
    sequences), that remembers the classes its labels hold."""

    def __init__(self, source: Any, limit: int | None) -> None:
        self.source, self.limit, self.classes = source, limit, set()
        self.single = source.sequence_length(0) == 1

    def num_sequences(self) -> int:
        n = self.source.num_sequences()
        return min(n, self.limit) if self.single and self.limit else n

    def sequence_length(self, s: int) -> int:
        n = self.source.sequence_length(s)
        return min(n, self.limit) if not self.single and self.limit else n

    def labelled_indices(self, s: int) -> list[int]:
        return [t for t in self.source.labelled_indices(s) if t < self.sequence_length(s)]

    def frame(self, s: int, t: int) -> np.ndarray:
        return self.source.frame(s, t)

    def label(self, s: int, t: int) -> np.ndarray | None:
        label = self.source.label(s, t)
        if label is not None:
            self.classes.update(int(c) for c in np.unique(label) if c != 255)
        return label


def per_frame(model: Any, source: Seen, *, num_classes: int, sets: torch.Tensor | None) -> dict[str, Any]:
    """`evss eval`'s per-frame row on every labelled frame of ``source`` (through ``sets`` when given)."""
    row = Method("per_frame", model, "per_frame", label_sets=sets)
    report = evaluate([row], source, num_classes=num_classes, intervals=(1,), target="single", progress=False)
    scores = report["methods"]["per_frame"]["intervals"]["1"]
    iou = [np.nan if v is None else v for v in scores["per_class_iou"]]
    present = [iou[c] for c in sorted(source.classes)]
    return {"miou": 100 * float(np.nanmean(present)), "miou_library": 100 * scores["miou"],
            "per_class_iou": [None if np.isnan(v) else 100 * v for v in iou], "frames": _frames(source)}


def _frames(source: Seen) -> int:
    return sum(len(source.labelled_indices(s)) for s in range(source.num_sequences()))


def argmax_mapped(model: Any, source: Seen) -> float:
    """CamVid mIoU of the 19-class argmax (the labels `evss segment` writes) mapped to CamVid by the sets."""
    to_camvid = np.full(256, 255, np.uint8)
    to_camvid[: CITYSCAPES.num_classes] = camvid_sets().int().argmax(0).numpy()  # each class's set
    seg = VideoSegmenter(model, config=SegmenterConfig(mode="per_frame"))
    cm = ConfusionMatrix(CAMVID.num_classes)
    for s in range(source.num_sequences()):
        for t in source.labelled_indices(s):
            cm.update(to_camvid[seg.step(source.frame(s, t)).labels], source.label(s, t))
    iou = cm.compute()["per_class_iou"]
    return 100 * float(np.nanmean([iou[c] for c in sorted(source.classes)]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    model, config = load_model(args.weights)
    if config.label_space != "cityscapes":
        sys.exit(f"{args.weights}: a {config.label_space} model ({config.num_classes} classes); the bars are for "
                 "19-class Cityscapes weights")
    city = Seen(eval_source(EvalData("cityscapes_pix2pix", root=args.cityscapes_root,
                                     holdout_list=args.holdout_list)).source, args.limit)
    camvid = Seen(eval_source(EvalData("camvid", root=args.camvid_root, split="val")).source, args.limit)
    out = {"weights": str(args.weights), "limit": args.limit, "threads": torch.get_num_threads(),
           "cityscapes": per_frame(model, city, num_classes=CITYSCAPES.num_classes, sets=None),
           "camvid": per_frame(model, camvid, num_classes=CAMVID.num_classes, sets=camvid_sets())}
    out["camvid"]["miou_argmax"] = argmax_mapped(model, camvid)
    return out


def print_table(res: dict[str, Any]) -> None:
    city, cam = res["cityscapes"], res["camvid"]

    def line(name: str, value: float, library: float | None, bar: float) -> str:
        lib = "" if library is None or abs(library - value) < 0.05 else f" (library mean {library:.1f})"
        return f"{name:<52} {value:5.1f}{lib}  bar >= {bar:g}: {'pass' if value >= bar else 'below'}"

    print(f"{res['weights']}: per frame, {city['frames']} held-out Cityscapes frames, {cam['frames']} CamVid val "
          f"frames" + (f" (--limit {res['limit']}: not the full sets)" if res["limit"] else ""))
    print(line("held-out Cityscapes, 19 classes, 256x512", city["miou"], city["miou_library"], BARS["cityscapes"]))
    print(line("CamVid val collapsed to 11 (sets, evss eval)", cam["miou"], cam["miou_library"], BARS["camvid"]))
    print(line("CamVid val collapsed to 11 (argmax, world_streets)", cam["miou_argmax"], None, BARS["camvid"]))
    for title, names, iou in (("Cityscapes", CITYSCAPES.names, city["per_class_iou"]),
                              ("CamVid (sets)", CAMVID.names, cam["per_class_iou"])):
        print(f"{title} per-class IoU: " + ", ".join(f"{n} {'-' if v is None else f'{v:.1f}'}"
                                                      for n, v in zip(names, iou)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="a 19-class checkpoint or built-in name")
    p.add_argument("--limit", type=int, default=None, help="score only the first N frames of each set")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cityscapes-root", type=Path, default=ROOT.parent / "shared" / "data" / "cityscapes_pix2pix")
    p.add_argument("--holdout-list", type=Path, default=ROOT / "recipes" / "cityscapes_heldout.txt")
    p.add_argument("--camvid-root", type=Path, default=ROOT.parent / "shared" / "data" / "camvid")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit must be >= 1, got {args.limit}")
    torch.set_num_threads(args.threads)
    res = measure(args)
    print_table(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
