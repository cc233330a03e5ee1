"""Per-component cost of the non-keyframe path (Fig. 9): GFLOPs and time of each part at one resolution."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from evss.models.distortion import merge
from evss.models.evss import EVSSNet
from evss.models.warp import warp


def component_costs(model: EVSSNet, height: int, width: int, *, runs: int = 3) -> dict[str, dict[str, float]]:
    """Per-component GFLOPs and median ms (Fig. 9) at one resolution, batch 1."""
    device = next(model.parameters()).device
    key, cur = torch.rand(1, 3, height, width, device=device), torch.rand(1, 3, height, width, device=device)
    with torch.inference_mode():
        feat = model.backbone(key)  # (1, C, H/4, W/4)
        flow = model.flow(key, cur)  # (1, 2, H/4, W/4)
        warped = warp(feat, flow)
        upd, edge = model.correction(cur, warped)
        key_pred = feat.argmax(1)  # (1, H/4, W/4)
        parts = {"backbone": lambda: model.backbone(key), "flow": lambda: model.flow(key, cur),
                 "warp": lambda: warp(feat, flow), "conet": lambda: model.correction(cur, warped),
                 "fusion": lambda: merge(warped, upd, model.correction.edge_probability(edge), key_pred,
                                         model.distortion)}  # Eqs. (3)-(5)
        return {name: _cost(fn, runs) for name, fn in parts.items()}


def _cost(fn, runs: int) -> dict[str, float]:
    """GFLOPs of one call of ``fn`` and the median of ``runs`` timed calls in ms."""
    with FlopCounterMode(display=False) as fc:
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"gflops": fc.get_total_flops() / 1e9, "ms": float(np.median(ts)) * 1000}
