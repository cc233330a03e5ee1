import math

import pytest
import torch
import torch.nn.functional as F

from evss.errors import ConfigError
from evss.losses import LossWeights, edge_loss, edge_semantic_loss, evss_losses, ohem_cross_entropy


def _inputs(seed: int = 0, n: int = 2, c: int = 4, h: int = 6, w: int = 5) -> dict:
    g = torch.Generator().manual_seed(seed)
    edge_target = (torch.rand(n, h, w, generator=g) > 0.7).long()
    edge_target[0, 0, 0] = 255
    return dict(
        warped_logits=torch.randn(n, c, h, w, generator=g).requires_grad_(),
        merged_logits=torch.randn(n, c, h, w, generator=g).requires_grad_(),
        updated_logits=torch.randn(n, c, h, w, generator=g).requires_grad_(),
        edge_prob=torch.rand(n, h, w, generator=g).requires_grad_(),
        fine_map=torch.rand(n, h, w, generator=g).requires_grad_(),
        pseudo_label=torch.randint(0, c, (n, h, w), generator=g),
        edge_target=edge_target,
    )


def test_default_weights_are_the_authors():
    w = LossWeights()
    assert (w.warp, w.semantic, w.edge, w.edge_semantic) == (0.2, 0.5, 0.1, 0.2)
    with pytest.raises(ConfigError, match="edge"):
        LossWeights(edge=-1.0)
    with pytest.raises(ConfigError):
        LossWeights(warp=float("nan"))


def test_cross_entropy_terms_by_hand():
    # One image, 2 classes, 1x2 pixels: pixel 0 logits (2, 0) target 0; pixel 1 logits (0, 0) target 1.
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    pseudo = torch.tensor([[[0, 1]]])
    expected = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    out = evss_losses(warped_logits=logits, merged_logits=2 * logits, updated_logits=None,
                      edge_prob=None, fine_map=None, pseudo_label=pseudo, edge_target=None,
                      weights=LossWeights(warp=1.0, semantic=0.0, edge=0.0, edge_semantic=0.0))
    assert out["warp"].item() == pytest.approx(expected)
    assert out["total"].item() == pytest.approx(expected)
    assert out["semantic"].item() == 0.0 and out["edge"].item() == 0.0


def test_edge_loss_by_hand_and_against_weighted_cross_entropy():
    p = torch.tensor([[[0.8, 0.4, 0.1, 0.3]]])        # (1, 1, 4) = (N, H, W)
    target = torch.tensor([[[1, 0, 0, 255]]])          # one positive, two negatives, one ignored
    w_pos, w_neg = 2 / 3, 1 / 3                        # N_neg / N, N_pos / N
    expected = (w_pos * -math.log(0.8) + w_neg * -math.log(0.6) + w_neg * -math.log(0.9)) / (
        w_pos * 1 + w_neg * 2)
    assert edge_loss(p, target).item() == pytest.approx(expected, rel=1e-5)
    # The authors' form: F.cross_entropy on 2-channel scores with class weights [w_neg, w_pos].
    two = torch.log(torch.stack([1 - p, p], dim=1))    # (N, 2, H, W), log-probabilities
    ref = F.cross_entropy(two, target, weight=torch.tensor([w_neg, w_pos]), ignore_index=255)
    assert edge_loss(p, target).item() == pytest.approx(ref.item(), rel=1e-5)


def test_edge_loss_is_finite_at_saturation_and_for_one_class_batches():
    p = torch.tensor([[[0.0, 1.0]]], requires_grad=True)
    loss = edge_loss(p, torch.tensor([[[1, 0]]]))
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(p.grad).all()
    only_neg = edge_loss(torch.full((1, 2, 2), 0.3), torch.zeros(1, 2, 2, dtype=torch.long))
    assert only_neg.item() == 0.0
    all_ignored = edge_loss(torch.full((1, 2, 2), 0.3), torch.full((1, 2, 2), 255))
    assert all_ignored.item() == 0.0


def test_edge_semantic_paper_mask_by_hand():
    upd = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # (1, 2, 1, 2)
    fine = torch.tensor([[[0.9, 0.2]]])                 # only pixel 0 is distorted (> 0.5)
    pseudo = torch.tensor([[[1, 0]]])
    # F^es = F^u * M^f at pixel 0: logits (0.9, 1.8), target 1.
    expected = -math.log(math.exp(1.8) / (math.exp(0.9) + math.exp(1.8)))
    loss = edge_semantic_loss(upd, pseudo, fine_map=fine, es_mask="paper")
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_edge_semantic_official_mask_matches_the_reference_formula():
    upd = torch.tensor([[[[1.0, 3.0, 0.5]], [[2.0, 0.0, 1.5]]]])  # (1, 2, 1, 3)
    edge = torch.tensor([[[0.9, 0.9, 0.2]]])
    pseudo = torch.tensor([[[0, 1, 1]]])
    # pixel 0: edge but pseudo-class 0 -> dropped (ignore_index 0); pixel 2: no edge -> dropped.
    expected = -math.log(math.exp(0.0) / (math.exp(3.0) + math.exp(0.0)))
    loss = edge_semantic_loss(upd, pseudo, edge_prob=edge, es_mask="official")
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Same as CE(E * F^u, E * P, ignore_index=0) on random data with a non-empty mask.
    x = _inputs(3)
    e = (x["edge_prob"] > 0.5).long()
    ref = F.cross_entropy(e.unsqueeze(1) * x["updated_logits"], e * x["pseudo_label"], ignore_index=0)
    got = edge_semantic_loss(x["updated_logits"], x["pseudo_label"], edge_prob=x["edge_prob"],
                             es_mask="official")
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)


def test_paper_and_official_masks_differ():
    x = _inputs(1)
    paper = evss_losses(**x, weights=LossWeights(), es_mask="paper")["edge_semantic"]
    official = evss_losses(**x, weights=LossWeights(), es_mask="official")["edge_semantic"]
    assert paper.item() != pytest.approx(official.item())
    with pytest.raises(ValueError, match="es_mask"):
        evss_losses(**x, weights=LossWeights(), es_mask="nope")


@pytest.mark.parametrize("es_mask", ["paper", "official"])
def test_empty_masks_give_zero_not_nan(es_mask):
    x = _inputs(2)
    x["fine_map"] = torch.full_like(x["fine_map"], 0.1).requires_grad_()
    x["edge_prob"] = torch.full_like(x["edge_prob"], 0.1).requires_grad_()
    out = evss_losses(**x, weights=LossWeights(), es_mask=es_mask)
    assert out["edge_semantic"].item() == 0.0
    assert all(torch.isfinite(v) for v in out.values())
    out["total"].backward()
    for name in ("updated_logits", "fine_map", "edge_prob"):
        grad = x[name].grad  # fine_map is unused by the official mask (the caller merges with it)
        assert grad is None or torch.isfinite(grad).all(), name


def test_zero_weight_drops_the_term():
    x = _inputs(4)
    full = evss_losses(**x, weights=LossWeights())
    expected = 0.2 * full["warp"] + 0.5 * full["semantic"] + 0.1 * full["edge"]
    x_no_upd = {**x, "updated_logits": None}  # L_es dropped: F^u is not even needed
    out = evss_losses(**x_no_upd, weights=LossWeights(edge_semantic=0.0))
    assert out["edge_semantic"].item() == 0.0
    assert out["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    no_edge = evss_losses(**{**x, "edge_target": None}, weights=LossWeights(edge=0.0))
    assert no_edge["edge"].item() == 0.0
    assert set(out) == {"warp", "semantic", "edge", "edge_semantic", "total"}
    with pytest.raises(ValueError, match="updated_logits"):
        evss_losses(**x_no_upd, weights=LossWeights())


def test_gradients_flow_to_every_learned_input():
    x = _inputs(5)
    out = evss_losses(**x, weights=LossWeights(), es_mask="paper")
    assert torch.isfinite(out["total"])
    out["total"].backward()
    for name in ("warped_logits", "merged_logits", "updated_logits", "edge_prob", "fine_map"):
        grad = x[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_official_mask_carries_no_gradient_to_the_edge_map():
    x = _inputs(6)
    out = evss_losses(**x, weights=LossWeights(warp=0, semantic=0, edge=0, edge_semantic=1.0),
                      es_mask="official")
    out["total"].backward()
    assert x["edge_prob"].grad is None
    assert x["updated_logits"].grad.abs().sum() > 0


def test_extreme_inputs_stay_finite():
    x = _inputs(7)
    x["warped_logits"] = (x["warped_logits"].detach() * 1e4).requires_grad_()
    x["edge_prob"] = (x["edge_prob"].detach() > 0.5).float().requires_grad_()  # exact 0s and 1s
    out = evss_losses(**x, weights=LossWeights())
    assert all(torch.isfinite(v) for v in out.values())
    out["total"].backward()
    assert torch.isfinite(x["warped_logits"].grad).all()


def test_shape_errors_name_the_input():
    x = _inputs(8)
    x["merged_logits"] = x["merged_logits"][..., :-1]
    with pytest.raises(ValueError, match="merged_logits"):
        evss_losses(**x, weights=LossWeights())
    x = _inputs(8)
    x["edge_prob"] = x["edge_prob"].unsqueeze(1)  # (N, 1, H, W) is accepted
    assert torch.isfinite(evss_losses(**x, weights=LossWeights())["total"])


def test_class_balance_weights_follow_median_frequency():
    from evss.losses import class_balance_weights
    counts = torch.tensor([800, 100, 100, 0])  # median frequency of the present classes: 0.1
    w = class_balance_weights(counts, 1.0)
    assert torch.allclose(w[:3], torch.tensor([0.125, 1.0, 1.0]))
    assert w[3] == 10.0  # absent: the largest weight
    assert torch.allclose(class_balance_weights(counts, 0.5)[0], torch.tensor(0.125 ** 0.5))
    assert torch.equal(class_balance_weights(counts, 0.0)[:3], torch.ones(3))


def test_weighted_ce_and_ohem_weight_the_classes():
    from evss.losses import cross_entropy, ohem_cross_entropy
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=g)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[0, 0, 0] = 255
    ones = torch.ones(3)
    assert torch.allclose(cross_entropy(logits, target, weight=ones), cross_entropy(logits, target))
    w = torch.tensor([1.0, 3.0, 0.5])
    per = torch.nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none")
    valid = target != 255
    wy = w[target.clamp(max=2)] * valid
    assert torch.allclose(cross_entropy(logits, target, weight=w), (per * wy).sum() / wy.sum())
    # OHEM keeps every pixel at threshold 1: then it is the weighted CE
    assert torch.allclose(ohem_cross_entropy(logits, target, threshold=1.0, min_kept=1.0, weight=w),
                          cross_entropy(logits, target, weight=w))
    assert torch.allclose(ohem_cross_entropy(logits, target, threshold=1.0, min_kept=1.0, weight=ones),
                          ohem_cross_entropy(logits, target, threshold=1.0, min_kept=1.0))


# ---- the stages' losses ------------------------------------------------------------------------------

def test_multiscale_epe_convention():
    from evss.losses import full_resolution_epe, multiscale_epe
    target = torch.zeros(1, 2, 64, 128)
    target[:, 0] = 8.0  # 8 full-resolution pixels to the right everywhere
    sizes = [(1, 2), (2, 4), (4, 8), (8, 16)]  # flow6..flow3 grids of 64x128
    exact = multiscale_epe(torch.full((1, 2, 16, 32), 0.0).index_fill_(1, torch.tensor([0]), 2.0),
                           [torch.zeros(1, 2, *s).index_fill_(1, torch.tensor([0]), 0.4) for s in sizes], target)
    assert float(exact["total"]) == pytest.approx(0.0, abs=1e-6)  # raw = px / 20, flow2 = px / 4
    zero = multiscale_epe(torch.zeros(1, 2, 16, 32), [torch.zeros(1, 2, *s) for s in sizes], target)
    assert all(float(zero[f"epe{n}"]) == pytest.approx(8.0) for n in (6, 5, 4, 3, 2))
    assert float(zero["total"]) == pytest.approx(8.0)  # normalised weights: a weighted mean EPE
    up = full_resolution_epe(torch.full((1, 2, 16, 32), 0.0).index_fill_(1, torch.tensor([0]), 2.0), target)
    assert float(up[0]) == pytest.approx(0.0, abs=1e-6)


def test_stage_losses_upsample_with_the_models_upsample4():
    """The x4 upsampling of the losses is the model's (bilinear, align_corners=False, cropped to
    the label size), also for a label size that is not a multiple of 4 and for bfloat16 logits."""
    from evss.losses import cross_entropy, full_resolution_epe, segmentation_loss
    from evss.models.upsample import upsample4
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 4, 6, generator=g)  # a 1/4 grid of ceil(15/4) x ceil(22/4)
    label = torch.randint(0, 5, (2, 15, 22), generator=g)
    up = upsample4(logits, (15, 22))  # (2, 5, 15, 22)
    by_hand = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)[:, :, :15, :22]
    assert torch.equal(up, by_hand)
    assert torch.allclose(segmentation_loss(logits, label)["total"], cross_entropy(up, label))
    half = segmentation_loss(logits.bfloat16(), label)["total"]
    assert half.dtype == torch.float32
    assert torch.allclose(half, cross_entropy(upsample4(logits.bfloat16().float(), (15, 22)), label))
    flow2, target = torch.randn(1, 2, 4, 6, generator=g), torch.randn(1, 2, 15, 22, generator=g)
    epe = torch.linalg.vector_norm(4 * upsample4(flow2, (15, 22)) - target, dim=1).mean()
    assert torch.allclose(full_resolution_epe(flow2, target)[0], epe)


def test_evss_step_losses_upsample_then_apply_eq_6():
    """evss_step_losses on 1/4-grid outputs = evss_losses on the x4-upsampled maps, M^e taken
    from the upsampled edge scores (softmax after upsampling, as the authors)."""
    from types import SimpleNamespace

    from evss.losses import evss_step_losses
    from evss.models.upsample import upsample4
    g = torch.Generator().manual_seed(4)
    n, c, h, w = 2, 4, 3, 5
    out = SimpleNamespace(warped_logits=torch.randn(n, c, h, w, generator=g),
                          merged_logits=torch.randn(n, c, h, w, generator=g),
                          updated_logits=torch.randn(n, c, h, w, generator=g),
                          edge_scores=torch.randn(n, 2, h, w, generator=g),
                          fine_map=torch.rand(n, 1, h, w, generator=g))
    size = (11, 18)
    pseudo = torch.randint(0, c, (n, *size), generator=g)
    edge_t = (torch.rand(n, *size, generator=g) > 0.8).long()
    weights = LossWeights(warp=0.3, semantic=0.7, edge=0.11, edge_semantic=0.13)

    def softmax_edge(scores):  # the official CoNet's edge_probability
        return scores.softmax(dim=1)[:, 1:2]

    got = evss_step_losses(out, pseudo_label=pseudo, edge_target=edge_t, edge_probability=softmax_edge,
                           weights=weights)
    expected = evss_losses(warped_logits=upsample4(out.warped_logits, size),
                           merged_logits=upsample4(out.merged_logits, size),
                           updated_logits=upsample4(out.updated_logits, size),
                           edge_prob=softmax_edge(upsample4(out.edge_scores, size))[:, 0],
                           fine_map=upsample4(out.fine_map, size)[:, 0], pseudo_label=pseudo, edge_target=edge_t,
                           weights=weights)
    for key in ("warp", "semantic", "edge", "edge_semantic", "total"):
        assert torch.allclose(got[key], expected[key]), key
    total = sum(getattr(weights, k) * expected[k] for k in ("warp", "semantic", "edge", "edge_semantic"))
    assert torch.allclose(got["total"], total)  # Eq. (6)


# ---- OHEM (the backbone stage's hard-pixel loss) -------------------------------------------------

def _logits_for(probs_true: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 2, 1, P) logits whose class-0 probability is each of ``probs_true``; target class 0."""
    p = torch.tensor(probs_true, dtype=torch.float64)
    logits = torch.stack([torch.log(p), torch.log1p(-p)])[None, :, None, :]  # (1, 2, 1, P)
    return logits, torch.zeros(1, 1, len(probs_true), dtype=torch.long)


def test_ohem_keeps_the_hard_pixels_only():
    logits, target = _logits_for([0.9, 0.8, 0.5, 0.2])  # two easy (>= 0.7), two hard
    loss = ohem_cross_entropy(logits, target, threshold=0.7, min_kept=0.25)
    assert math.isclose(float(loss), (-math.log(0.5) - math.log(0.2)) / 2, rel_tol=1e-9)


def test_ohem_keeps_at_least_min_kept_of_the_hardest():
    logits, target = _logits_for([0.95, 0.9, 0.85, 0.6])  # one hard, min_kept asks for two
    loss = ohem_cross_entropy(logits, target, threshold=0.7, min_kept=0.5)
    assert math.isclose(float(loss), (-math.log(0.6) - math.log(0.85)) / 2, rel_tol=1e-9)


def test_ohem_ignores_ignored_pixels_and_is_zero_without_any():
    logits, target = _logits_for([0.1, 0.2])
    target[0, 0, 0] = 255
    assert math.isclose(float(ohem_cross_entropy(logits, target)), -math.log(0.2), rel_tol=1e-9)
    target[:] = 255
    zero = ohem_cross_entropy(logits.requires_grad_(), target)
    assert float(zero.detach()) == 0.0 and zero.requires_grad
