"""The backbone stage on Cityscapes (pix2pix copy) and CamVid together: one 19-class keyframe network.

``evss train backbone --data cityscapes_pix2pix+camvid --data-root DIR`` (DIR holds
``cityscapes_pix2pix/`` and ``camvid/``; ``--data cityscapes_pix2pix`` with DIR the
``cityscapes_pix2pix`` folder trains on Cityscapes alone):

* the model is in the Cityscapes-19 label space; a CamVid label is the *set* of Cityscapes classes
  it covers (``evss.classes.CAMVID_AS_CITYSCAPES``) and its pixels' loss is ``-log`` of the set's
  summed probability (:mod:`evss.label_sets`), with the same OHEM and class balancing as the
  Cityscapes pixels (a set weighted by the summed frequency of its classes);
* batches mix the two: each CamVid training frame appears ``camvid_repeats`` times per epoch, so
  about a quarter of the samples (2 of a batch of 8 on average) are CamVid frames, every sample
  with the same random rescale, flip, crop and colour jitter (CamVid at its stored 360x480, where
  its objects are about as large as Cityscapes' at 256x512);
* held-out evaluation (:class:`HeldOutStreets`): the ``--holdout-list`` Cityscapes frames (19-class
  mIoU at 256x512, per frame) and the ``--holdout`` CamVid frames (11-class mIoU at 360x480, the
  prediction the argmax of the set-summed probabilities); ``miou``, which picks
  ``best.safetensors``, is the mean of the two (the Cityscapes one alone without CamVid frames).
  Each evaluation is also a line of ``heldout.jsonl`` in the run folder.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from evss import checkpoint
from evss.classes import CAMVID, CITYSCAPES, IGNORE_INDEX
from evss.data.camvid import CamVid
from evss.data.cityscapes_pix2pix import CityscapesPix2Pix, read_number_list
from evss.data.pairs import LabelledFrames
from evss.data.validate import DataCheck, check_files, report_bad_files
from evss.device import Runtime
from evss.errors import ConfigError
from evss.label_sets import camvid_sets, collapse_probabilities, membership, set_balance_weights, set_segmentation_loss
from evss.metrics import confusion_matrix, iou_per_class, mean_iou
from evss.models.upsample import upsample4
from evss.tensors import image_to_tensor
from evss.train.config import TrainConfig, output_dir
from evss.train.evaluation import HeldOutFrames
from evss.train.loop import Stage, TrainResult, fit

MIXED_DATA = ("cityscapes_pix2pix", "cityscapes_pix2pix+camvid")
CAMVID_SHARE = 0.25  # the share of CamVid samples aimed at (2 of a batch of 8)
HELDOUT_FILE = "heldout.jsonl"


class TargetIdFrames(Dataset):
    """Several :class:`LabelledFrames` as one dataset whose labels are target ids
    (:mod:`evss.label_sets`): part ``i``'s class ids are shifted by ``offset_i`` and the part is
    seen ``repeats_i`` times per epoch, each time with fresh augmentations."""

    def __init__(self, parts: Sequence[tuple[LabelledFrames, int, int]]) -> None:
        self.parts = [(frames, int(offset), int(repeats)) for frames, offset, repeats in parts]
        self.epoch = 0
        self.lengths = [len(frames) * repeats for frames, _, repeats in self.parts]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return sum(self.lengths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        for (frames, offset, repeats), length in zip(self.parts, self.lengths):
            if index < length:
                copy, i = divmod(index, len(frames))
                frames.set_epoch(self.epoch * repeats + copy)  # each copy its own augmentation
                item = frames[i]
                label = item["label"]  # (h, w) int64, 255 = ignore
                item["label"] = torch.where(label == IGNORE_INDEX, label, label + offset)
                return item
            index -= length
        raise IndexError(f"index {index} past the {len(self)} samples")


def mixed_sources(config: TrainConfig) -> tuple[Path, Path | None]:
    """(the Cityscapes pix2pix folder, the CamVid folder or None) of ``config.data_root``."""
    if not config.data_root:
        raise ConfigError(f"data {config.data!r} needs data_root (--data-root)")
    root = Path(config.data_root)
    if config.data == "cityscapes_pix2pix":
        return root, None
    return root / "cityscapes_pix2pix", root / "camvid"


def build_parts(config: TrainConfig) -> tuple[CityscapesPix2Pix, CityscapesPix2Pix | None, CamVid | None]:
    """(Cityscapes training files, Cityscapes held-out files or None, CamVid or None), checked:
    every file's header and size before step one, all bad files named at once."""
    city_root, camvid_root = mixed_sources(config)
    held = read_number_list(config.holdout_list) if config.holdout_list else ()
    train = CityscapesPix2Pix(city_root, config.data_split, exclude=held)
    held_out = CityscapesPix2Pix(city_root, config.data_split, only=held) if held else None
    camvid = CamVid(camvid_root, config.data_split) if camvid_root is not None else None
    bad = train.check_files() + (held_out.check_files() if held_out else [])
    if camvid is not None:
        bad += check_files(camvid, sample=0).bad
    if bad:
        report_bad_files(DataCheck(files=len(train.paths) + len(held_out.paths if held_out else ()), bad=bad),
                         where=f"{config.data} data in {config.data_root}",
                         print_line=lambda line: print(line, file=sys.stderr))
    return train, held_out, camvid


def build_mixed_dataset(config: TrainConfig, train: CityscapesPix2Pix, camvid: CamVid | None
                        ) -> tuple[TargetIdFrames, torch.Tensor, torch.Tensor]:
    """(the dataset, the (K, 19) target-id membership, the (K,) class-balance weights or an empty tensor)."""
    def frames(source: Any, exclude: Sequence[str] = ()) -> LabelledFrames:
        return LabelledFrames(source, crop_size=config.crop_size, flip=config.flip, seed=config.seed,
                              scale_range=config.scale_range, color_jitter=config.color_jitter, exclude=exclude)

    city = frames(train)
    parts = [(city, 0, 1)]
    members = membership(CITYSCAPES.num_classes)
    if camvid is not None:
        cam = frames(camvid, config.holdout)
        repeats = max(1, round(CAMVID_SHARE / (1 - CAMVID_SHARE) * len(city) / len(cam)))
        parts.append((cam, CITYSCAPES.num_classes, repeats))
        members = membership(CITYSCAPES.num_classes, camvid_sets())
    dataset = TargetIdFrames(parts)
    weight = torch.empty(0)
    if config.class_balance:
        weight = set_balance_weights(class_counts(dataset, members), members, config.class_balance)
    return dataset, members, weight


def class_counts(dataset: TargetIdFrames, members: torch.Tensor) -> torch.Tensor:
    """(C,) pixel counts per class of the training stream: a set's pixels (times its part's repeats)
    spread over its classes in proportion to those classes' own counts."""
    counts = torch.zeros(members.shape[1], dtype=torch.float64)
    pending = []
    for frames, offset, repeats in dataset.parts:
        part = frames.class_counts(members.shape[0] - offset).double() * repeats  # (K - offset,)
        for k, n in enumerate(part.tolist()):
            row = members[offset + k]
            if int(row.sum()) == 1:
                counts[row] += n
            else:
                pending.append((row, n))
    for row, n in pending:
        share = counts[row] / counts[row].sum() if counts[row].sum() > 0 else row[row].double() / int(row.sum())
        counts[row] += n * share
    return counts  # (C,)


class HeldOutStreets:
    """The held-out Cityscapes files (19 classes at 256x512) and CamVid frames (11 classes, by the
    sets) of a mixed run; calling it evaluates a backbone, :meth:`record` logs a result."""

    def __init__(self, backbone: nn.Module, device: torch.device, *, cityscapes: CityscapesPix2Pix | None,
                 camvid: HeldOutFrames | None, out_dir: Path) -> None:
        if cityscapes is None and camvid is None:
            raise ConfigError("no held-out frames to evaluate")
        self.backbone, self.device, self.cityscapes, self.camvid = backbone, device, cityscapes, camvid
        self.sets = camvid_sets()  # (11, 19)
        self.path = out_dir / HELDOUT_FILE

    @torch.no_grad()
    def __call__(self) -> dict[str, float]:
        was_training = self.backbone.training
        self.backbone.eval()
        out: dict[str, float] = {}
        scores = []
        if self.cityscapes is not None:
            items = (self.cityscapes.read(s) for s in range(self.cityscapes.num_sequences()))
            cm = self._confusion(items, CITYSCAPES.num_classes, collapse=False)
            scores.append(mean_iou(cm))
            out.update(_named("cityscapes", cm, CITYSCAPES.names))
        if self.camvid is not None:
            cm = self._confusion(iter(self.camvid.items), CAMVID.num_classes, collapse=True)
            scores.append(mean_iou(cm))
            out.update(_named("camvid", cm, CAMVID.names))
        self.backbone.train(was_training)
        return {"miou": float(np.mean(scores)), **out}

    def _confusion(self, items: Any, num_classes: int, *, collapse: bool) -> np.ndarray:
        cm = np.zeros((num_classes, num_classes), np.int64)
        for image, label in items:
            x = image_to_tensor(image)[None].to(self.device)  # (1, 3, H, W)
            logits = upsample4(self.backbone(x).float(), label.shape)  # (1, 19, H, W)
            scores = collapse_probabilities(logits, self.sets) if collapse else logits  # (1, K, H, W)
            cm += confusion_matrix(scores.argmax(1)[0].cpu().numpy(), label, num_classes)
        return cm

    def record(self, result: dict[str, float]) -> None:
        """Append ``result`` to ``heldout.jsonl``, dropping lines of this step or later (a resumed run
        evaluates them again)."""
        step = result["step"]
        kept = []
        if self.path.exists():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    if json.loads(line)["step"] < step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    continue
        kept.append(json.dumps(result))
        checkpoint.atomic_write(self.path, lambda tmp: tmp.write_text("".join(f"{line}\n" for line in kept)))


def _named(prefix: str, cm: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """``miou_<prefix>`` and ``iou_<prefix>/<class>`` of a confusion matrix (classes never seen left out)."""
    iou = iou_per_class(cm)
    return {f"miou_{prefix}": mean_iou(cm),
            **{f"iou_{prefix}/{n.replace(' ', '_')}": float(v) for n, v in zip(names, iou) if np.isfinite(v)}}


def train_mixed_backbone(config: TrainConfig, rt: Runtime) -> TrainResult:
    """The backbone stage on ``cityscapes_pix2pix`` (+ CamVid as label sets); see the module docstring."""
    from evss.train.stages import init_model  # stages dispatches here: imported late to avoid a cycle

    model, model_config = init_model(config)
    if model_config.label_space != "cityscapes" or model_config.num_classes != CITYSCAPES.num_classes:
        raise ConfigError(f"data {config.data} trains a Cityscapes-19 model, not {model_config.label_space} "
                          f"with {model_config.num_classes} classes")
    net = model.backbone
    net.requires_grad_(True)
    train, held_city, camvid = build_parts(config)
    dataset, members, weight = build_mixed_dataset(config, train, camvid)
    weight = weight.to(rt.device) if weight.numel() else None
    if rt.is_main:
        print(f"evss train backbone: {len(train.numbers)} Cityscapes frames"
              + (f", {len(dataset.parts[1][0])} CamVid frames x {dataset.parts[1][2]}" if camvid else "")
              + f" per epoch ({len(dataset)} samples); held out: "
              f"{len(held_city.numbers) if held_city else 0} Cityscapes", file=sys.stderr)
        if weight is not None:
            print("evss train backbone: target-id weights (median frequency ** "
                  f"{config.class_balance}): " + " ".join(f"{w:.2f}" for w in weight.tolist()), file=sys.stderr)
    held_cam = HeldOutFrames(camvid, config.holdout) if camvid is not None and config.holdout else None
    evaluate = None
    if held_city is not None or held_cam is not None:
        evaluate = HeldOutStreets(net, rt.device, cityscapes=held_city, camvid=held_cam, out_dir=output_dir(config))

    def loss(module: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return set_segmentation_loss(module(batch["image"]), batch["label"], members, kind=config.seg_loss,
                                     weight=weight)

    return fit(config, rt, Stage(model=model, trained=net, dataset=dataset, losses=loss, evaluate=evaluate),
               model_config)
