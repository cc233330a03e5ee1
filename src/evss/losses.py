"""The training losses, as pure functions of tensors; each stage's loss returns a dict with ``total``.

* backbone stage: :func:`segmentation_loss` (CE or OHEM CE of the x4-upsampled logits);
* flow stage: :func:`multiscale_epe` (FlowNet's multi-scale end-point error);
* evss stage: :func:`evss_step_losses`, the four losses of Eq. (6)-(7) on one EVSSNet step:

    L = lambda_w L_w + lambda_s L_s + lambda_e L_e + lambda_es L_es                        (6)

Every semantic target is the pseudo-label P^gt_i: the frozen backbone's argmax on the target frame
I_i (Sec. III-E; the authors use it for all three semantic terms). The true ground truth only
builds the edge target M^gt (``evss.data.transforms.edge_target``). All maps arrive at label
resolution: the caller upsamples the 1/4-resolution logits and edge map first.

Choices where the paper is loose (documented in :func:`evss_losses`):

* Eq. (7) takes "argmax" of the one-channel fine map M^f: we read it as M^f > 0.5 (the argmax of
  the two-class map [1 - M^f, M^f]) and mark the other pixels ``ignore_index``. Multiplying the
  labels by 0, as Eq. (7) literally says, would turn them into class 0 and train "class 0" there.
* Every reduction is a mean over the pixels that count, and a term with no such pixel is exactly 0
  (PyTorch's mean cross-entropy would give NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evss.classes import IGNORE_INDEX
from evss.errors import ConfigError
from evss.models.evss import EVSSOutput
from evss.models.upsample import upsample4

ES_MASKS = ("paper", "official")


@dataclass(frozen=True)
class LossWeights:
    """The lambdas of Eq. (6). The paper gives no values; these are the authors' code values
    (reference README section 11). A weight of 0 drops its term (the "w/o L_e" / "w/o L_es"
    ablations) and the term is then not computed."""

    warp: float = 0.2            # lambda_w:  L_w on the warped logits
    semantic: float = 0.5        # lambda_s:  L_s on the merged logits
    edge: float = 0.1            # lambda_e:  L_e on the edge map
    edge_semantic: float = 0.2   # lambda_es: L_es on the edge-semantics features

    def __post_init__(self) -> None:
        for name in ("warp", "semantic", "edge", "edge_semantic"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"loss weight {name} must be a finite number >= 0, got {value!r}")


def _full(x: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 inputs (autocast) are upcast so that logs and sums stay accurate."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, *,
                  ignore_index: int = IGNORE_INDEX, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean CE over the non-ignored pixels; exactly 0 (and differentiable) when there are none.

    With class weights ``weight`` (C,), the weighted mean sum(w_y * CE) / sum(w_y).
    """
    if weight is not None:
        per_pixel = F.cross_entropy(_full(logits), target, ignore_index=ignore_index, reduction="none")  # (N, H, W)
        valid = target != ignore_index  # (N, H, W)
        w = weight.to(per_pixel)[target.clamp(0, weight.numel() - 1)] * valid  # (N, H, W)
        return (per_pixel * w).sum() / w.sum().clamp(min=1e-12)
    total = F.cross_entropy(_full(logits), target, ignore_index=ignore_index, reduction="sum")
    count = (target != ignore_index).sum()
    return total / count.clamp(min=1)


def class_balance_weights(counts: torch.Tensor, power: float, *, max_weight: float = 10.0) -> torch.Tensor:
    """Median-frequency class weights (Eigen & Fergus) raised to ``power``: w_c = (median f / f_c)^power.

    ``counts`` (C,) are the training labels' pixel counts per class. power 1 is plain median
    frequency balancing, 0.5 a damped version, 0 no balancing. A class with no pixels gets the
    largest weight (it cannot contribute anyway); weights are clipped to ``max_weight``.
    """
    if power < 0 or not math.isfinite(power):
        raise ConfigError(f"class balance power must be a finite number >= 0, got {power!r}")
    freq = counts.double() / counts.sum().clamp(min=1)  # (C,)
    present = freq > 0
    if not present.any():
        raise ConfigError("class balance: the training labels hold no labelled pixel")
    median = freq[present].median()
    w = torch.full_like(freq, max_weight)
    w[present] = (median / freq[present]) ** power
    return w.clamp(max=max_weight).float()  # (C,)


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.7,
                       min_kept: float = 1 / 16, ignore_index: int = IGNORE_INDEX,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """Online hard example mining CE (Shrivastava et al.; the BiSeNet/SwiftNet recipe).

    Keeps the pixels whose true-class probability is below ``threshold`` (the model has not
    learned them yet), but at least the ``min_kept`` fraction of the valid pixels with the largest
    loss. Thin and rare classes (poles, signs, people) stay hard for long, so they keep their
    weight while the easy road and sky pixels drop out. Mean over the kept pixels; 0 with none.
    Class weights ``weight`` (C,) weight the kept pixels' mean; hardness is judged unweighted.
    """
    if not 0.0 < threshold <= 1.0 or not 0.0 < min_kept <= 1.0:
        raise ValueError(f"ohem threshold and min_kept must be in (0, 1], got {threshold}, {min_kept}")
    per_pixel = F.cross_entropy(_full(logits), target, ignore_index=ignore_index, reduction="none")  # (N, H, W)
    valid = target != ignore_index  # (N, H, W)
    return hard_pixel_mean(per_pixel, target, valid, threshold=threshold, min_kept=min_kept, weight=weight)


def hard_pixel_mean(per_pixel: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *, threshold: float,
                    min_kept: float, weight: torch.Tensor | None = None, hard_only: bool = True) -> torch.Tensor:
    """OHEM's reduction of per-pixel losses -log p (N, H, W): the mean over the ``valid`` pixels
    with p < ``threshold``, at least the ``min_kept`` fraction of them with the largest loss
    (all valid pixels when not ``hard_only``). ``weight`` (C,) weights each pixel by its ``target``
    id: sum(w * loss) / sum(w); hardness is judged unweighted. 0 (with a graph) without valid pixels."""
    losses = per_pixel[valid]  # (P,)
    if losses.numel() == 0:
        return per_pixel.sum() * 0.0
    kept = torch.ones_like(losses, dtype=torch.bool)  # (P,)
    if hard_only:
        kept = losses > -math.log(threshold)  # (P,) p < threshold
        keep = max(1, int(min_kept * losses.numel()))
        if int(kept.sum()) < keep:
            kept = torch.zeros_like(kept)
            kept[losses.topk(keep).indices] = True
    if weight is None:
        return losses[kept].mean()
    w = weight.to(losses)[target[valid]][kept]  # (K,)
    return (losses[kept] * w).sum() / w.sum().clamp(min=1e-12)


def edge_loss(edge_prob: torch.Tensor, edge_target: torch.Tensor, *,
              ignore_index: int = IGNORE_INDEX, eps: float = 1e-6) -> torch.Tensor:
    """L_e: class-balanced binary CE of the edge map M^e (N, H, W) in [0, 1] against {0, 1}.

    As in the authors' code: w_pos = N_neg / N and w_neg = N_pos / N over the whole batch (N counts
    the non-ignored pixels) and the weighted sum is divided by the sum of the pixel weights, which
    is what ``F.cross_entropy(weight=...)`` does. The probability is clamped to [eps, 1 - eps]
    before the log. A batch with only one class gives 0 (the authors' code gives NaN there).
    """
    p = _full(edge_prob).clamp(eps, 1.0 - eps)                    # (N, H, W)
    pos = (edge_target == 1).to(p.dtype)                           # (N, H, W)
    neg = (edge_target == 0).to(p.dtype)
    n_pos, n_neg = pos.sum(), neg.sum()
    n = (n_pos + n_neg).clamp(min=1.0)
    w_pos, w_neg = n_neg / n, n_pos / n
    weighted = -(w_pos * pos * torch.log(p) + w_neg * neg * torch.log1p(-p))  # (N, H, W)
    weight_sum = w_pos * n_pos + w_neg * n_neg  # = 2 N_pos N_neg / N; 0 when a class is absent
    return weighted.sum() / weight_sum.clamp(min=eps)


def edge_semantic_loss(updated_logits: torch.Tensor, pseudo_label: torch.Tensor, *,
                       fine_map: torch.Tensor | None = None, edge_prob: torch.Tensor | None = None,
                       es_mask: str = "paper", ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """L_es on the edge-semantics features (Sec. III-E, Eq. 7).

    ``es_mask="paper"``: F^es = F^u (x) M^f and target P^es_gt = P^gt where M^f > 0.5, ignored
    elsewhere. Gradients reach both F^u and M^f.

    ``es_mask="official"``: E = [M^e > 0.5] (argmax of the 2-channel edge logits), loss
    CE(E * F^u, E * P^gt) with ignore_index 0, exactly as the reference README describes: non-edge
    pixels are dropped and so are edge pixels of pseudo-class 0. E carries no gradient. Pseudo-label
    pixels equal to ``ignore_index`` are dropped too.
    """
    if es_mask == "paper":
        if fine_map is None:
            raise ValueError("es_mask='paper' needs fine_map")
        m = _full(_one_channel(fine_map, "fine_map"))                   # (N, H, W)
        f_es = _full(updated_logits) * m.unsqueeze(1)                   # (N, C, H, W), F^es
        target = torch.where(m > 0.5, pseudo_label, torch.full_like(pseudo_label, ignore_index))
        return cross_entropy(f_es, target, ignore_index=ignore_index)
    if es_mask == "official":
        if edge_prob is None:
            raise ValueError("es_mask='official' needs edge_prob")
        e = (_one_channel(edge_prob, "edge_prob") > 0.5).detach()       # (N, H, W) bool
        upd = _full(updated_logits)
        f_es = upd * e.unsqueeze(1).to(upd.dtype)                       # (N, C, H, W)
        target = torch.where(e & (pseudo_label != ignore_index), pseudo_label,
                             torch.zeros_like(pseudo_label))
        return cross_entropy(f_es, target, ignore_index=0)
    raise ValueError(f"es_mask must be one of {ES_MASKS}, got {es_mask!r}")


def _one_channel(x: torch.Tensor, name: str) -> torch.Tensor:
    """Accept (N, H, W) or (N, 1, H, W); return (N, H, W)."""
    if x.dim() == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.dim() != 3:
        raise ValueError(f"{name} must be (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    return x


def evss_losses(*, warped_logits: torch.Tensor | None, merged_logits: torch.Tensor | None,
                updated_logits: torch.Tensor | None, edge_prob: torch.Tensor | None,
                fine_map: torch.Tensor | None, pseudo_label: torch.Tensor,
                edge_target: torch.Tensor | None, weights: LossWeights = LossWeights(),
                es_mask: str = "paper", ignore_index: int = IGNORE_INDEX) -> dict[str, torch.Tensor]:
    """The four losses of Eq. (6) and their weighted sum, all at label resolution.

    Inputs: ``warped_logits`` F^w, ``merged_logits`` F^m, ``updated_logits`` F^u, all (N, C, H, W);
    ``edge_prob`` M^e and ``fine_map`` M^f, (N, H, W) in [0, 1]; ``pseudo_label`` P^gt (N, H, W)
    int64 (backbone argmax on I_i); ``edge_target`` M^gt (N, H, W) int64 in {0, 1}, 255 = ignore.
    An input may be None when only zero-weighted terms use it.

    Returns ``warp`` (L_w = CE(F^w, P^gt)), ``semantic`` (L_s = CE(F^m, P^gt)), ``edge`` (L_e, see
    :func:`edge_loss`), ``edge_semantic`` (L_es, see :func:`edge_semantic_loss`) and ``total``.
    A zero-weighted term is skipped and reported as a constant 0.
    """
    if es_mask not in ES_MASKS:
        raise ValueError(f"es_mask must be one of {ES_MASKS}, got {es_mask!r}")
    if pseudo_label.dim() != 3:
        raise ValueError(f"pseudo_label must be (N, H, W), got {tuple(pseudo_label.shape)}")
    shape = tuple(pseudo_label.shape)

    def need(x: torch.Tensor | None, name: str, term: str, channels: bool) -> torch.Tensor:
        if x is None:
            raise ValueError(f"{name} is None but the {term} loss has a non-zero weight")
        if channels:
            if x.dim() != 4:
                raise ValueError(f"{name} must be (N, C, H, W), got {tuple(x.shape)}")
            got = (x.shape[0], *x.shape[2:])
        else:
            got = tuple(_one_channel(x, name).shape)
        if tuple(got) != shape:
            raise ValueError(f"{name} {tuple(x.shape)} does not match the pseudo-label {shape} "
                             "(upsample to label resolution first)")
        return x

    device = pseudo_label.device
    zero = torch.zeros((), device=device)
    out: dict[str, torch.Tensor] = {}
    if weights.warp > 0:  # L_w: improves the flow through the warped logits
        out["warp"] = cross_entropy(need(warped_logits, "warped_logits", "warp", True),
                                    pseudo_label, ignore_index=ignore_index)
    if weights.semantic > 0:  # L_s: the merged logits of Eq. (5)
        out["semantic"] = cross_entropy(need(merged_logits, "merged_logits", "semantic", True),
                                        pseudo_label, ignore_index=ignore_index)
    if weights.edge > 0:  # L_e: the edge & thin-object map against M^gt
        prob = _one_channel(need(edge_prob, "edge_prob", "edge", False), "edge_prob")
        if edge_target is None:
            raise ValueError("edge_target is None but the edge loss has a non-zero weight")
        if tuple(edge_target.shape) != shape:
            raise ValueError(f"edge_target {tuple(edge_target.shape)} does not match the "
                             f"pseudo-label {shape}")
        out["edge"] = edge_loss(prob, edge_target, ignore_index=ignore_index)
    if weights.edge_semantic > 0:  # L_es: Eq. (7)
        upd = need(updated_logits, "updated_logits", "edge-semantics", True)
        mask_input = fine_map if es_mask == "paper" else edge_prob
        need(mask_input, "fine_map" if es_mask == "paper" else "edge_prob", "edge-semantics", False)
        out["edge_semantic"] = edge_semantic_loss(upd, pseudo_label, fine_map=fine_map,
                                                  edge_prob=edge_prob, es_mask=es_mask,
                                                  ignore_index=ignore_index)
    total = zero
    for key, weight in (("warp", weights.warp), ("semantic", weights.semantic),
                        ("edge", weights.edge), ("edge_semantic", weights.edge_semantic)):
        if key in out:
            total = total + weight * out[key]
        else:
            out[key] = zero
    out["total"] = total
    return out


# ---- the stages' losses -----------------------------------------------------------------------------

def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A 1/4-grid map at label size, in float32 (the losses are computed in full precision)."""
    return upsample4(x.float(), size)  # (N, C, H, W)


def segmentation_loss(logits: torch.Tensor, label: torch.Tensor, *, kind: str = "ce",
                      weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Backbone stage: CE (``kind="ce"``) or OHEM CE (``"ohem"``) of the 1/4-grid ``logits``
    (N, C, h, w), upsampled x4, against ``label`` (N, H, W), 255 ignored; ``weight`` (C,) are
    optional class weights. Returns ``ce`` and ``total`` (the same tensor)."""
    loss = ohem_cross_entropy if kind == "ohem" else cross_entropy
    ce = loss(_up(logits, tuple(label.shape[-2:])), label, ignore_index=IGNORE_INDEX, weight=weight)
    return {"ce": ce, "total": ce}


def multiscale_epe(flow2: torch.Tensor, pyramid: Sequence[torch.Tensor], target: torch.Tensor,
                   weights: Sequence[float] = (0.005, 0.01, 0.02, 0.08, 0.32)) -> dict[str, torch.Tensor]:
    """FlowNet's multi-scale end-point error, every level in full-resolution pixels.

    ``flow2`` (N, 2, H/4, W/4) is FlowNet's output in 1/4-grid pixels (``5 * predict_flow2``);
    ``pyramid`` holds the raw ``predict_flow6..3`` outputs; ``target`` (N, 2, H, W) is the
    full-resolution backward flow in full-resolution pixels.

    Convention (FlowNet's ``div_flow = 20``, which the model's x5 at flow2 encodes: 5 = 20 / 4):
    every raw prediction, at every level, is the flow in full-resolution pixels divided by 20. So
    level N's prediction in full-resolution pixels is ``20 * flowN`` (and ``4 * flow2`` at level 2),
    and it is compared with the target area-averaged to that level's grid *without* rescaling its
    values. The EPE of each level is a per-pixel mean (not FlowNet-PyTorch's per-image sum, which
    would weight the fine levels by their pixel counts too); the weights (FlowNet's 0.005, 0.01,
    0.02, 0.08, 0.32 for flow6..flow2) are normalised to sum 1, so ``total`` reads as a weighted
    mean EPE in full-resolution pixels.
    """
    preds = [20.0 * p.float() for p in pyramid] + [4.0 * flow2.float()]  # levels 6..2, full-res px
    total_w = float(sum(weights))
    out: dict[str, torch.Tensor] = {}
    total = torch.zeros((), device=flow2.device)
    for level, pred, w in zip((6, 5, 4, 3, 2), preds, weights):
        t = F.interpolate(target.float(), size=tuple(pred.shape[-2:]), mode="area")  # (N, 2, h, w)
        epe = torch.linalg.vector_norm(pred - t, dim=1).mean()
        out[f"epe{level}"] = epe
        total = total + (w / total_w) * epe
    out["total"] = total
    return out


def full_resolution_epe(flow2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pair EPE (N,) in full-resolution pixels: FlowNet's ``flow2`` (1/4-grid pixels) upsampled
    x4 and scaled by 4, against the full-resolution ``target`` (N, 2, H, W)."""
    pred = 4.0 * _up(flow2, tuple(target.shape[-2:]))  # (N, 2, H, W) full-res px
    return torch.linalg.vector_norm(pred - target.float(), dim=1).flatten(1).mean(dim=1)


def evss_step_losses(out: EVSSOutput, *, pseudo_label: torch.Tensor, edge_target: torch.Tensor,
                     edge_probability: Callable[[torch.Tensor], torch.Tensor], weights: LossWeights = LossWeights(),
                     es_mask: str = "paper", ignore_index: int = IGNORE_INDEX) -> dict[str, torch.Tensor]:
    """Eq. (6) on one EVSSNet step: ``lambda_w L_w + lambda_s L_s + lambda_e L_e + lambda_es L_es``.

    ``out`` holds the step's 1/4-grid maps; ``pseudo_label`` P^gt_i (N, H, W) is the frozen
    backbone's argmax on the target frame I_i (Sec. III-E), the target of L_w, L_s and L_es;
    ``edge_target`` M^gt_i (N, H, W) is in {0, 1}, 255 = ignore; ``edge_probability`` turns edge
    scores into M^e (CoNet's ``edge_probability``: sigmoid, or softmax for the official variant).

    Every map is upsampled x4 to label resolution first (the authors upsample before every loss);
    the edge scores are upsampled before they are squashed into M^e (the authors take the softmax
    after upsampling); M^f is upsampled as it is.
    """
    size = (pseudo_label.shape[-2], pseudo_label.shape[-1])
    f_w = _up(out.warped_logits, size)  # (N, C, H, W) F^w_{k->i}: L_w = CE(F^w, P^gt)
    f_m = _up(out.merged_logits, size)  # (N, C, H, W) F^m_i: L_s = CE(F^m, P^gt)
    m_e = edge_probability(_up(out.edge_scores, size))[:, 0]  # (N, H, W) M^e_i: L_e = BCE_w(M^e, M^gt)
    f_u = _up(out.updated_logits, size)  # (N, C, H, W) F^u_i and
    m_f = _up(out.fine_map, size)[:, 0]  # (N, H, W) M^f_{k->i}: L_es = CE(F^u * M^f, P^es_gt), Eq. (7)
    return evss_losses(warped_logits=f_w, merged_logits=f_m, updated_logits=f_u, edge_prob=m_e, fine_map=m_f,
                       pseudo_label=pseudo_label, edge_target=edge_target, weights=weights, es_mask=es_mask,
                       ignore_index=ignore_index)
