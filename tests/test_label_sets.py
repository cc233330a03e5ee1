"""Labels as sets of a model's classes (evss.label_sets): the set loss, its weights and the collapse."""

from __future__ import annotations

import math

import pytest
import torch

from evss.classes import CAMVID, CAMVID_AS_CITYSCAPES, CITYSCAPES
from evss.errors import ConfigError
from evss.label_sets import (
    camvid_sets,
    collapse_probabilities,
    membership,
    set_balance_weights,
    set_cross_entropy,
    set_segmentation_loss,
)
from evss.losses import class_balance_weights, cross_entropy, ohem_cross_entropy, segmentation_loss


def _batch(classes: int = 5, ids: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 6, 7, generator=g, dtype=torch.float64) * 3  # (N, C, H, W)
    target = torch.randint(0, ids or classes, (2, 6, 7), generator=g)  # (N, H, W)
    target[0, 0, :3] = 255
    return logits, target


@pytest.mark.parametrize("kind", ["ce", "ohem"])
@pytest.mark.parametrize("weighted", [False, True])
def test_sets_of_one_class_are_ordinary_cross_entropy(kind, weighted):
    logits, target = _batch()
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.25]) if weighted else None
    ours = set_cross_entropy(logits, target, membership(5), kind=kind, weight=weight)
    reference = (ohem_cross_entropy if kind == "ohem" else cross_entropy)(logits, target, weight=weight)
    assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-12)


def test_the_segmentation_loss_matches_the_backbone_stage_loss_for_single_classes():
    logits, target = _batch()
    target = torch.nn.functional.interpolate(target[:, None].double(), scale_factor=4, mode="nearest")[:, 0].long()
    ours = set_segmentation_loss(logits, target, membership(5), kind="ohem")["total"]
    assert torch.allclose(ours, segmentation_loss(logits, target, kind="ohem")["total"], rtol=1e-6)


def test_a_set_pixel_costs_minus_log_of_its_summed_probability():
    logits = torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64)[None, :, None, None]  # (1, 4, 1, 1)
    members = membership(4, torch.tensor([[False, True, True, False]]))  # id 4 = {1, 2}
    p = torch.softmax(logits[0, :, 0, 0], 0)
    loss = set_cross_entropy(logits, torch.tensor([[[4]]]), members)
    assert math.isclose(float(loss), -math.log(float(p[1] + p[2])), rel_tol=1e-12)
    logits.requires_grad_(True)
    set_cross_entropy(logits, torch.tensor([[[4]]]), members).backward()
    assert torch.isfinite(logits.grad).all()  # classes outside the set (-inf inside the logsumexp) included


def test_no_valid_pixel_gives_a_differentiable_zero():
    logits, target = _batch()
    target[:] = 255
    loss = set_cross_entropy(logits.requires_grad_(), target, membership(5), kind="ohem")
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def test_camvid_classes_partition_the_cityscapes_classes():
    sets = camvid_sets()
    assert sets.shape == (CAMVID.num_classes, CITYSCAPES.num_classes)
    assert sets.sum(0).tolist() == [1] * CITYSCAPES.num_classes  # every Cityscapes class in exactly one set
    car = CAMVID.names.index("Car")
    assert [CITYSCAPES.names[c] for c in sets[car].nonzero().ravel()] == list(CAMVID_AS_CITYSCAPES["Car"])
    assert membership(19, sets).shape == (30, 19)


def test_set_weights_give_single_classes_their_class_weight_and_sets_their_summed_frequency():
    counts = torch.tensor([100.0, 50.0, 10.0, 5.0, 1.0])
    members = membership(5, torch.tensor([[False, False, True, True, True]]))  # id 5 = {2, 3, 4}
    w = set_balance_weights(counts, members, 0.5)
    assert torch.allclose(w[:5], class_balance_weights(counts, 0.5))
    assert math.isclose(float(w[5]), (10 / 16) ** 0.5, rel_tol=1e-6)  # median class 10 pixels, the set 16
    with pytest.raises(ConfigError):
        set_balance_weights(torch.zeros(5), members, 0.5)


def test_collapsed_probabilities_sum_to_one_and_follow_the_sets():
    logits, _ = _batch(classes=19)
    collapsed = collapse_probabilities(logits, camvid_sets())  # (N, 11, H, W)
    assert collapsed.shape == (2, 11, 6, 7)
    assert torch.allclose(collapsed.sum(1), torch.ones(2, 6, 7, dtype=collapsed.dtype), atol=1e-5)
    p = torch.softmax(logits.float(), 1)
    car = [CITYSCAPES.names.index(n) for n in CAMVID_AS_CITYSCAPES["Car"]]
    assert torch.allclose(collapsed[:, CAMVID.names.index("Car")], p[:, car].sum(1), atol=1e-6)


def test_bad_set_tables_are_refused():
    with pytest.raises(ConfigError, match="not a cityscapes class"):
        from evss.label_sets import set_table
        set_table({**CAMVID_AS_CITYSCAPES, "Car": ("lorry",)}, outer=CAMVID, inner=CITYSCAPES)
    with pytest.raises(ConfigError, match="set table"):
        membership(19, torch.ones(11, 18, dtype=torch.bool))


def test_the_collapse_table_takes_a_model_to_the_data_labels_or_refuses():
    from evss.label_sets import collapse_table
    assert collapse_table("camvid", "camvid") is None and collapse_table("cityscapes", "cityscapes") is None
    assert torch.equal(collapse_table("cityscapes", "camvid"), camvid_sets())  # 19 classes scored on CamVid-11
    with pytest.raises(ConfigError, match="a model in the camvid label space cannot be scored on cityscapes labels"):
        collapse_table("camvid", "cityscapes")
