"""The three training stages (paper Sec. III-E and IV-A): each builds a :class:`~evss.train.loop.Stage`
(model, trained part, dataset, loss, held-out evaluation) and runs :func:`~evss.train.loop.fit`.

* ``backbone``: per-frame segmentation of the dataset's labelled frames (cross-entropy, 255
  ignored) trains the keyframe network. The checkpoint is a full evss checkpoint whose backbone is
  trained and whose other parts keep their fresh initialisation, so the ``evss`` stage can load it
  as its teacher (``--teacher``).
* ``flow``: FlowNet pretraining on generated :class:`~evss.data.flowpairs.FlowPairsDataset` pairs
  (the paper pretrains on Flying Chairs) with FlowNet's multi-scale EPE.
* ``evss``: FlowNet + CoNet trained jointly with the four losses of Eq. (6) against the frozen
  backbone (Sec. IV-A; :func:`evss_batch_losses`).
"""

from __future__ import annotations

import sys
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from evss import losses
from evss.classes import IGNORE_INDEX, LABEL_SPACES
from evss.config import EVSSConfig, build_model
from evss.data.transforms import edge_target, pair_offsets
from evss.device import Runtime, init_distributed
from evss.errors import ConfigError
from evss.flow_sources import make_flow_source
from evss.losses import LossWeights
from evss.models.upsample import upsample4
from evss.train.config import TrainConfig, loss_weights, output_dir, resolve_model_config
from evss.train.evaluation import HeldOutFrames, HeldOutPairs
from evss.train.loop import Stage, TrainResult, fit
from evss.train.pretrained import load_imagenet
from evss.train.sampling import build_dataset, build_source
from evss.train.state import MODEL_FILE, load_part, seed_everything
from evss.train.teacher_cache import TeacherCache, backbone_fingerprint, build_teacher_cache


def init_model(config: TrainConfig) -> tuple[nn.Module, EVSSConfig]:
    """The run's EVSSNet and its config, initialised as ``config.init`` says (unless resuming)."""
    model_config = resolve_model_config(config)
    model = build_model(model_config)
    if config.resume:
        return model, model_config
    init = config.init
    if init is None and config.stage == "backbone" and model_config.backbone.arch == "swiftnet":
        init = "imagenet"  # a pretrained encoder is the point of these presets
    if init == "imagenet":
        encoder = getattr(model.backbone, "encoder", None)
        if encoder is None:
            raise ConfigError(f"--init imagenet: the {model_config.name} preset's backbone "
                              f"({model_config.backbone.arch}) has no pretrained encoder; use a swiftnet preset "
                              "such as lite0, or --init none")
        load_imagenet(encoder)
    elif init and init != "none":
        load_part(model, init, "", "--init")
    return model, model_config


def train_backbone(config: TrainConfig, rt: Runtime) -> TrainResult:
    """Per-frame CE (or OHEM) on the labelled frames trains the keyframe network; the other parts
    stay as initialised. With ``holdout``, the held-out frames' mIoU is the evaluation."""
    if config.data in ("cityscapes_pix2pix", "cityscapes_pix2pix+camvid"):  # 19 classes, CamVid as label sets
        from evss.train.mixed_backbone import train_mixed_backbone  # it imports init_model from here
        return train_mixed_backbone(config, rt)
    model, model_config = init_model(config)
    net = model.backbone
    net.requires_grad_(True)  # EVSSNet freezes it; this stage trains it
    held_out = HeldOutFrames(build_source(config), config.holdout) if config.holdout else None
    dataset = build_dataset(config, model_config)
    weight = None
    if config.class_balance:
        weight = losses.class_balance_weights(dataset.class_counts(model_config.num_classes),
                                              config.class_balance).to(rt.device)  # (C,)
        if rt.is_main:
            print(f"evss train backbone: class weights (median frequency ** {config.class_balance}): "
                  + " ".join(f"{w:.2f}" for w in weight.tolist()), file=sys.stderr)

    def loss(module: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return losses.segmentation_loss(module(batch["image"]), batch["label"], kind=config.seg_loss, weight=weight)

    def evaluate() -> dict[str, float]:
        return held_out.miou(net, model_config.num_classes, rt.device)

    return fit(config, rt, Stage(model=model, trained=net, dataset=dataset, losses=loss,
                                 evaluate=evaluate if held_out else None), model_config)


def train_flow(config: TrainConfig, rt: Runtime) -> TrainResult:
    """FlowNet pretraining with the multi-scale EPE; held-out EPE in full-resolution pixels."""
    model, model_config = init_model(config)
    net = model.flow
    net.requires_grad_(True)
    held_out = HeldOutPairs(config)

    def loss(module: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        flow2, pyramid = module(batch["image1"], batch["image2"], return_pyramid=True)
        return losses.multiscale_epe(flow2, pyramid, batch["flow"], config.flow_level_weights)

    return fit(config, rt, Stage(model=model, trained=net, dataset=build_dataset(config, model_config), losses=loss,
                                 evaluate=lambda: held_out.epe(net, rt.device)), model_config)


def train_evss(config: TrainConfig, rt: Runtime) -> TrainResult:
    """FlowNet + CoNet against the frozen backbone with the four losses of Eq. (6).

    Loss weights default to the authors' code (lambda_w 0.2, lambda_s 0.5, lambda_e 0.1,
    lambda_es 0.2; reference README section 11): the paper names the four terms but gives no
    values, and these are the weights the released checkpoints were trained with.
    """
    if not (config.teacher or config.init or config.resume):
        raise ConfigError("stage evss needs a trained backbone: --teacher CKPT (the backbone stage's "
                          "last.safetensors) or --init CKPT (a full evss checkpoint)")
    model, model_config = init_model(config)
    if not config.resume:
        if config.teacher:
            load_part(model.backbone, config.teacher, "backbone", "--teacher")
        if config.flow_init:
            load_part(model.flow, config.flow_init, "flow", "--flow-init")
        if config.teacher and not config.init and hasattr(model.correction, "init_from"):
            model.correction.init_from(model.backbone)  # N_upda starts as the keyframe network itself
    if rt.is_main and config.flow_source == "learned" and not (config.flow_init or config.init or config.resume):
        print("evss train: FlowNet starts from random weights" +
              (" and stays frozen (--ablation flownet-fixed)" if model_config.freeze_flow else "") +
              "; the paper pretrains it first (evss train flow, then --flow-init)", file=sys.stderr)
    weights = loss_weights(config)
    thin = LABEL_SPACES[model_config.label_space].thin
    if config.flow_source != "learned":
        model.flow.requires_grad_(False)  # CoNet learns to correct this fixed flow source
    cache = None
    if config.cache:
        if config.resume:  # the teacher the cache is keyed by is the run's frozen backbone, not a fresh one
            load_part(model.backbone, str(output_dir(config) / MODEL_FILE), "backbone", "--resume")
        cache = teacher_cache(config, model.backbone, rt)
    elif config.flow_source != "learned":
        raise ConfigError(f"--flow-source {config.flow_source} trains with cached flow: pass --cache DIR")

    def loss(module: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return evss_batch_losses(module, batch, net=model, weights=weights, es_mask=config.es_mask, thin_classes=thin)

    # A zero-weighted loss is not computed, so some ablations leave parameters without gradients.
    return fit(config, rt, Stage(model=model, trained=model, dataset=build_dataset(config, model_config, cache),
                                 losses=loss, find_unused_parameters=True), model_config)


def evss_batch_losses(model: nn.Module, batch: dict[str, torch.Tensor], *, net: nn.Module, weights: LossWeights,
                      es_mask: str, thin_classes: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Eq. (6) on one batch of pairs (:func:`evss.losses.evss_step_losses`). ``model`` may be the
    DDP wrapper of ``net`` (the EVSSNet).

    * P^gt_i = argmax of the frozen backbone's upsampled logits on I_i (Sec. III-E): the target of
      L_w, L_s and L_es; from the teacher cache when the batch has it.
    * M^gt_i comes from the true labels (the pair dataset's ``edge``); a sample without any known
      label (unlabelled videos) takes the edge target of its pseudo-label instead.
    """
    key, image = batch["key_image"], batch["image"]  # (N, 3, H, W) each
    size = (image.shape[-2], image.shape[-1])
    # From the teacher cache when the batch has them: F^b_k and an untrained source's flow.
    out = model(key, image, key_logits=batch.get("key_logits"), flow=batch.get("flow"))
    if "pseudo" in batch:
        pseudo = batch["pseudo"]  # (N, H, W), 255 where the crop left the frame
    else:
        with torch.no_grad():
            pseudo = upsample4(net.backbone(image).float(), size).argmax(dim=1)  # (N, H, W) P^gt_i
    edge_t = batch["edge"]  # (N, H, W) M^gt_i
    unlabelled = (batch["label"] == IGNORE_INDEX).flatten(1).all(dim=1)  # (N,)
    if bool(unlabelled.any()):
        pseudo_edge = edge_target(pseudo, thin_classes=thin_classes).long()  # (N, H, W)
        edge_t = torch.where(unlabelled[:, None, None], pseudo_edge, edge_t)
    return losses.evss_step_losses(out, pseudo_label=pseudo, edge_target=edge_t,
                                   edge_probability=net.correction.edge_probability, weights=weights,
                                   es_mask=es_mask, ignore_index=IGNORE_INDEX)


def teacher_cache(config: TrainConfig, backbone: nn.Module, rt: Runtime) -> TeacherCache:
    """The teacher cache of the run's data in ``config.cache``: built (or finished) on rank 0, then opened."""
    flow = make_flow_source(config.flow_source) if config.flow_source != "learned" else None
    # the flow's settings are part of the key: a cache of another DIS preset or scale is stale too
    flow_name = f"{config.flow_source} {vars(flow).get('preset', '')} {vars(flow).get('scale', '')}".strip() \
        if flow is not None else None
    if rt.is_main:
        build_teacher_cache(build_source(config), backbone, config.cache, device=rt.device, flow=flow,
                            flow_name=flow_name, offsets=pair_offsets(official=config.offsets == "official"),
                            progress=config.progress)
    if rt.distributed:
        dist.barrier()
    return TeacherCache(config.cache, fingerprint=backbone_fingerprint(backbone), flow_name=flow_name)


STAGE_FUNCTIONS = {"backbone": train_backbone, "flow": train_flow, "evss": train_evss}


def setup_runtime(config: TrainConfig) -> Runtime:
    """CPU threads, then one process per device (DDP when torchrun sets WORLD_SIZE > 1)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    return init_distributed(config.device)


def main(config: TrainConfig) -> TrainResult:
    """Run one training stage in this process (one rank of it under torchrun)."""
    rt = setup_runtime(config)
    try:
        seed_everything(config.seed)  # the same on every rank: identical initial weights
        return STAGE_FUNCTIONS[config.stage](config, rt)
    finally:
        rt.close()
