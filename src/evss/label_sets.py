"""Training one label space on labels of another: a label as a *set* of the model's classes.

A model in the Cityscapes-19 label space learns from CamVid-11 labels by reading each CamVid class
as the set of Cityscapes classes it covers (``evss.classes.CAMVID_AS_CITYSCAPES``: Car = {car,
truck, bus, train}, ...). The loss of a pixel labelled with a set S is ``-log(sum_{c in S} p_c)``,
the probability the model gives to *any* class of the set, so CamVid teaches "one of these" without
forcing a choice the CamVid label never made; a set of one class is plain cross-entropy.

Targets of mixed batches share one id space, the *target ids*: ``0 .. C-1`` are the model's own
classes (a set of one) and ``C + k`` is the k-th foreign set (CamVid class k); 255 is ignored.
:func:`membership` is the (K, C) table from target ids to classes. Evaluation on the foreign labels
collapses the model's probabilities by the same sets (:func:`collapse_probabilities`).

Everything here is a pure function of tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from evss.classes import CAMVID, CAMVID_AS_CITYSCAPES, CITYSCAPES, IGNORE_INDEX, LabelSpace
from evss.errors import ConfigError
from evss.losses import hard_pixel_mean


def set_table(sets: Mapping[str, Sequence[str]], *, outer: LabelSpace, inner: LabelSpace) -> torch.Tensor:
    """(K, C) bool: row k marks the classes of ``inner`` (the model's, C of them) in the k-th class
    of ``outer`` (the foreign label space, K classes in its own order)."""
    table = torch.zeros(outer.num_classes, inner.num_classes, dtype=torch.bool)
    for k, name in enumerate(outer.names):
        if name not in sets or not sets[name]:
            raise ConfigError(f"label sets: {outer.name} class {name!r} has no set of {inner.name} classes")
        for member in sets[name]:
            if member not in inner.names:
                raise ConfigError(f"label sets: {member!r} (in the set of {name!r}) is not a {inner.name} class")
            table[k, inner.names.index(member)] = True
    return table  # (K, C)


def camvid_sets() -> torch.Tensor:
    """(11, 19) bool: CamVid-11's classes as sets of Cityscapes-19 classes."""
    return set_table(CAMVID_AS_CITYSCAPES, outer=CAMVID, inner=CITYSCAPES)


def collapse_table(model_space: str, data_space: str) -> torch.Tensor | None:
    """How a model's predictions are scored on labels of ``data_space``: None when the spaces agree,
    the (K, C) set table when the data's classes are sets of the model's (a Cityscapes-19 model on
    CamVid-11 or SynthDrive labels: :func:`camvid_sets`); ConfigError otherwise (an 11-class model
    cannot be scored on 19-class labels)."""
    if model_space == data_space:
        return None
    if (model_space, data_space) == (CITYSCAPES.name, CAMVID.name):
        return camvid_sets()  # (11, 19)
    raise ConfigError(f"a model in the {model_space} label space cannot be scored on {data_space} labels "
                      f"(no {data_space} class is a set of {model_space} classes)")


def membership(num_classes: int, *foreign: torch.Tensor) -> torch.Tensor:
    """(K, C) bool over the target ids: the identity for ``0 .. C-1``, then each foreign set table's
    rows (their ids start at C, in the order given)."""
    rows = [torch.eye(num_classes, dtype=torch.bool), *(t.bool() for t in foreign)]
    for t in foreign:
        if t.dim() != 2 or t.shape[1] != num_classes:
            raise ConfigError(f"label sets: a set table of shape {tuple(t.shape)} for {num_classes} classes")
    table = torch.cat(rows)  # (K, C)
    if table.shape[0] >= IGNORE_INDEX:
        raise ConfigError(f"label sets: {table.shape[0]} target ids do not fit below the ignore id {IGNORE_INDEX}")
    return table


def set_log_probability(logits: torch.Tensor, target: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """log(sum of the softmax probabilities over each pixel's set), (N, H, W); 0 at ignored pixels.

    ``logits`` (N, C, H, W); ``target`` (N, H, W) int64 target ids (rows of ``members`` (K, C)),
    ``IGNORE_INDEX`` ignored. Computed as logsumexp over the set minus logsumexp over all classes.
    """
    logits = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    valid = target != IGNORE_INDEX  # (N, H, W)
    ids = torch.where(valid, target, torch.zeros_like(target))  # (N, H, W); row 0 holds a class
    inside = members.to(logits.device)[ids].permute(0, 3, 1, 2)  # (N, C, H, W) bool
    in_set = torch.logsumexp(logits.masked_fill(~inside, float("-inf")), dim=1)  # (N, H, W)
    log_p = in_set - torch.logsumexp(logits, dim=1)  # (N, H, W)
    return torch.where(valid, log_p, torch.zeros_like(log_p))


def set_cross_entropy(logits: torch.Tensor, target: torch.Tensor, members: torch.Tensor, *, kind: str = "ce",
                      weight: torch.Tensor | None = None, threshold: float = 0.7,
                      min_kept: float = 1 / 16) -> torch.Tensor:
    """Mean ``-log p(set)`` over the valid pixels (``kind="ce"``) or over the hard ones (``"ohem"``).

    OHEM as :func:`evss.losses.ohem_cross_entropy`, with the set's probability in place of the true
    class's: pixels with p(set) < ``threshold``, at least the ``min_kept`` fraction of the valid
    pixels with the largest loss. ``weight`` (K,) weights each target id (class balancing), the
    weighted mean sum(w * loss) / sum(w); hardness is judged unweighted. 0 without valid pixels.
    With one class per set this is exactly ``cross_entropy`` / ``ohem_cross_entropy``.
    """
    if kind not in ("ce", "ohem"):
        raise ValueError(f"kind must be 'ce' or 'ohem', got {kind!r}")
    if not 0.0 < threshold <= 1.0 or not 0.0 < min_kept <= 1.0:
        raise ValueError(f"ohem threshold and min_kept must be in (0, 1], got {threshold}, {min_kept}")
    per_pixel = -set_log_probability(logits, target, members)  # (N, H, W)
    valid = target != IGNORE_INDEX  # (N, H, W)
    return hard_pixel_mean(per_pixel, target, valid, threshold=threshold, min_kept=min_kept, weight=weight,
                           hard_only=kind == "ohem")


def set_segmentation_loss(logits: torch.Tensor, target: torch.Tensor, members: torch.Tensor, *, kind: str = "ce",
                          weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Backbone stage on target ids: :func:`set_cross_entropy` of the 1/4-grid ``logits`` (N, C, h, w)
    upsampled x4 to ``target`` (N, H, W). Returns ``ce`` and ``total`` (the same tensor)."""
    from evss.models.upsample import upsample4  # the models package is heavy; the tables above need none of it

    up = upsample4(logits.float(), tuple(target.shape[-2:]))  # (N, C, H, W)
    ce = set_cross_entropy(up, target, members, kind=kind, weight=weight)
    return {"ce": ce, "total": ce}


def set_balance_weights(counts: torch.Tensor, members: torch.Tensor, power: float, *,
                        max_weight: float = 10.0) -> torch.Tensor:
    """(K,) median-frequency weights of the target ids: (median class frequency / the id's frequency)
    ** ``power``, clipped to ``max_weight``, where a set's frequency is the sum of its classes' (``counts``
    (C,) pixel counts per class). A set of one class gets exactly
    :func:`evss.losses.class_balance_weights`' weight of that class, and Car = {car, truck, bus, train}
    is weighted as common as cars, trucks, buses and trains together are."""
    if power < 0 or not math.isfinite(power):
        raise ConfigError(f"class balance power must be a finite number >= 0, got {power!r}")
    freq = counts.double() / counts.sum().clamp(min=1)  # (C,)
    if not (freq > 0).any():
        raise ConfigError("class balance: the training labels hold no labelled pixel")
    median = freq[freq > 0].median()
    set_freq = (members.double() * freq).sum(dim=1)  # (K,)
    w = torch.full_like(set_freq, max_weight)
    w[set_freq > 0] = (median / set_freq[set_freq > 0]) ** power
    return w.clamp(max=max_weight).float()  # (K,)


def collapse_probabilities(logits: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """(N, K, H, W) summed softmax probabilities of each set (``sets`` (K, C)) from ``logits``
    (N, C, H, W): the foreign label space's prediction is their argmax."""
    p = F.softmax(logits.float(), dim=1)  # (N, C, H, W)
    return torch.einsum("nchw,kc->nkhw", p, sets.to(p))  # (N, K, H, W)
