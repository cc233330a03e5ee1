"""Held-out evaluation during training (every ``eval_every`` steps and at the end, on rank 0).

* backbone stage: :class:`HeldOutFrames`, per-frame mIoU on labelled frames kept out of training
  (``--holdout`` patterns), at full resolution; the best model is kept (``best.safetensors``);
* flow stage: :class:`HeldOutPairs`, the end-point error on generated pairs of another seed, in
  full-resolution pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn

from evss.data.flowpairs import FlowPairsConfig, FlowPairsDataset
from evss.data.pairs import matches
from evss.data.sources import SequenceSource, frame_name
from evss.errors import ConfigError
from evss.flow_sources import DISFlow
from evss.losses import full_resolution_epe
from evss.metrics import confusion_matrix, iou_per_class, mean_iou
from evss.models.upsample import upsample4
from evss.tensors import image_to_tensor
from evss.train.config import TrainConfig
from evss.train.loop import autocast_context

HELD_OUT_SEED_OFFSET = 1_000_003  # the flow stage's held-out pairs: seed + this


class HeldOutFrames:
    """The labelled frames that match the held-out patterns, read once, for the backbone's mIoU."""

    def __init__(self, source: SequenceSource, patterns: Sequence[str]) -> None:
        self.items = [(source.frame(s, t), source.label(s, t)) for s in range(source.num_sequences())
                      for t in source.labelled_indices(s) if matches(frame_name(source, s, int(t)), patterns)]
        if not self.items:
            raise ConfigError(f"--holdout {list(patterns)} matches no labelled frame of the training data")

    def __len__(self) -> int:
        return len(self.items)

    @torch.no_grad()
    def miou(self, backbone: nn.Module, num_classes: int, device: torch.device) -> dict[str, float]:
        """Per-frame mIoU (and per-class IoU) of ``backbone`` on these frames, full resolution."""
        was_training = backbone.training
        backbone.eval()
        cm = np.zeros((num_classes, num_classes), np.int64)
        for image, label in self.items:
            x = image_to_tensor(image)[None].to(device)  # (1, 3, H, W)
            pred = upsample4(backbone(x).float(), label.shape).argmax(1)[0]  # (H, W)
            cm += confusion_matrix(pred.cpu().numpy(), label, num_classes)
        backbone.train(was_training)
        iou = iou_per_class(cm)
        return {"miou": mean_iou(cm), **{f"iou/{c}": float(v) for c, v in enumerate(iou) if np.isfinite(v)}}


class HeldOutPairs:
    """Generated flow pairs of the crop size, drawn with another seed than the training pairs."""

    def __init__(self, config: TrainConfig) -> None:
        h, w = config.crop_size
        self.pairs = FlowPairsDataset(pairs=config.flow_eval_pairs, seed=config.seed + HELD_OUT_SEED_OFFSET,
                                      config=FlowPairsConfig(height=h, width=w))
        self.config = config
        self._references: dict[str, float] | None = None  # zero-flow and DIS EPE, once per run

    @torch.no_grad()
    def epe(self, net: nn.Module, device: torch.device) -> dict[str, float]:
        """Mean end-point error of FlowNet ``net`` in full-resolution pixels (``epe``), with the
        same pairs' EPE of zero flow (``epe_zero``) and of OpenCV DIS (``epe_dis``) as references."""
        net.eval()
        total, count, batch = 0.0, 0, self.config.batch_size
        references = self._references is None
        zero = dis = 0.0
        estimator = DISFlow() if references else None
        for i in range(0, len(self.pairs), batch):
            items = [self.pairs[j] for j in range(i, min(i + batch, len(self.pairs)))]
            one, two, flow = (torch.stack([it[k] for it in items]).to(device) for k in ("image1", "image2", "flow"))
            with autocast_context(self.config, device):
                flow2 = net(one, two)  # (N, 2, h, w)
            total += float(full_resolution_epe(flow2, flow).sum())
            count += len(items)
            if references:  # once per run: the pairs do not change
                zero += float(full_resolution_epe(torch.zeros_like(flow2, dtype=torch.float32), flow).sum())
                dis_flow = estimator(one.float().cpu(), two.float().cpu()).to(device)
                dis += float(full_resolution_epe(dis_flow, flow).sum())
        if references:
            self._references = {"epe_zero": zero / count, "epe_dis": dis / count}
        net.train()
        return {"epe": total / count, **self._references}
