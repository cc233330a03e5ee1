"""FlyingChairs-like pairs: exact flow in the warp convention, determinism, dataset items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evss.data.flowpairs import FlowPairsConfig, FlowPairsDataset, generate_pair, generate_pair_full
from evss.errors import ConfigError
from evss.models.warp import warp

CFG = FlowPairsConfig(height=96, width=160)


def test_shapes_and_determinism() -> None:
    a, b = generate_pair(CFG, 4), generate_pair(CFG, 4)
    img1, img2, flow = a
    assert img1.shape == img2.shape == (96, 160, 3) and img1.dtype == img2.dtype == np.uint8
    assert flow.shape == (2, 96, 160) and flow.dtype == np.float32
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(img2, generate_pair(CFG, 5)[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warping_image1_with_flow_gives_image2_where_visible(seed: int) -> None:
    p = generate_pair_full(FlowPairsConfig(height=96, width=160, noise_std=0.0), seed)
    warped = warp(torch.from_numpy(p.image1).permute(2, 0, 1)[None].double(),
                  torch.from_numpy(p.flow)[None].double())[0].permute(1, 2, 0).numpy()  # (H, W, 3)
    cur = p.image2.astype(np.float64)
    err = np.abs(warped - cur)[p.visible].mean()
    err0 = np.abs(p.image1 - cur)[p.visible].mean()
    print(f"\nseed {seed}: error {err:.2f} levels on {p.visible.mean():.2f} visible, "
          f"zero flow {err0:.2f}")
    assert p.visible.mean() > 0.5
    assert err < 4.0 and err < 0.3 * err0


def test_flow_has_several_independent_motions() -> None:
    p = generate_pair_full(CFG, 3)
    assert len(np.unique(p.layers)) >= 3
    per_layer = [p.flow[:, p.layers == k].mean(axis=1) for k in np.unique(p.layers)]
    assert np.ptp(np.array(per_layer), axis=0).max() > 2.0  # layers move differently


def test_dataset_items() -> None:
    ds = FlowPairsDataset(pairs=3, seed=1, config=CFG)
    item = ds[2]
    assert len(ds) == 3 and set(item) == {"image1", "image2", "flow"}
    assert item["image1"].shape == (3, 96, 160) and item["image1"].dtype == torch.float32
    assert 0.0 <= float(item["image2"].min()) and float(item["image2"].max()) <= 1.0
    assert item["flow"].shape == (2, 96, 160) and item["flow"].dtype == torch.float32
    assert torch.equal(ds[2]["flow"], item["flow"])
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ConfigError):
        FlowPairsDataset(pairs=1, seed=0, config=FlowPairsConfig(min_shapes=5, max_shapes=2))
