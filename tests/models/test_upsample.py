"""The fast label path equals upsample-then-argmax (Algorithm 1, lines 16-17)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evss.models.upsample import labels_from_quarter, upsample4


def _smooth_logits(c: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, c, max(1, h // 4), max(1, w // 4), generator=g) * 3
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) + 0.3 * torch.randn(
        1, c, h, w, generator=g)  # (1, C, h, w): regions with boundaries, and some speckle


@pytest.mark.parametrize("h, w, size", [(16, 32, (64, 128)), (9, 13, (33, 50)), (8, 8, (32, 29)), (1, 5, (3, 20))])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_labels_equal_the_exact_path(h, w, size, seed):
    logits = _smooth_logits(11, h, w, seed)
    exact = upsample4(logits, size).argmax(1)[0].to(torch.uint8)
    fast = labels_from_quarter(logits, size)
    assert fast.shape == size and fast.dtype == torch.uint8
    differ = fast != exact
    if differ.any():  # only float ties may differ
        top2 = upsample4(logits, size)[0].topk(2, dim=0).values  # (2, H, W)
        assert float((top2[0] - top2[1])[differ].max()) < 1e-5
    assert torch.equal(labels_from_quarter(logits, size, exact=True), exact)


def test_uniform_regions_are_not_interpolated():
    """A constant-argmax map needs no per-pixel work and gives that class everywhere."""
    logits = torch.zeros(1, 4, 8, 8)
    logits[:, 2] = 1.0
    assert torch.equal(labels_from_quarter(logits, (32, 32)), torch.full((32, 32), 2, dtype=torch.uint8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_class_argmax_is_torch_argmax_ties_included(dtype):
    from evss.models.upsample import class_argmax
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (2, 11, 17, 23), generator=g).to(dtype)  # many ties
    assert torch.equal(class_argmax(x), x.argmax(dim=1))
    assert torch.equal(class_argmax(x[0], 0), x[0].argmax(dim=0))
