import numpy as np
import pytest
import torch

from evss.models.warp import compose_flows, coords_grid, warp


def test_zero_flow_is_identity():
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64)
    # grid_sample normalises coordinates, so identity holds to rounding, not bit-for-bit.
    assert (warp(x, torch.zeros(2, 2, 7, 9, dtype=torch.float64)) - x).abs().max() < 1e-12
    x32 = x.float()
    assert (warp(x32, torch.zeros(2, 2, 7, 9)) - x32).abs().max() < 1e-5


def test_integer_shift_pulls_from_offset():
    x = torch.arange(6 * 8, dtype=torch.float64).view(1, 1, 6, 8)
    flow = torch.zeros(1, 2, 6, 8, dtype=torch.float64)
    flow[:, 0] = 2  # dx = +2: output(x, y) = input(x + 2, y)
    flow[:, 1] = -1  # dy = -1
    out = warp(x, flow)
    assert torch.allclose(out[0, 0, 1:, :6], x[0, 0, :-1, 2:])


def test_border_clamps_like_edge_replication():
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64)
    flow = torch.zeros(1, 2, 5, 6, dtype=torch.float64)
    flow[:, 0] = 30.0  # far to the right: every pixel reads the last column
    out = warp(x, flow)
    assert torch.allclose(out, x[:, :, :, -1:].expand_as(x))
    flow[:, 0] = -0.5 - 100  # far left, with a fraction: still the first column exactly
    assert torch.allclose(warp(x, flow), x[:, :, :, :1].expand_as(x))


def test_half_pixel_is_bilinear_mean():
    x = torch.tensor([[[[0.0, 2.0, 4.0]]]]).double().expand(1, 1, 2, 3).contiguous()
    flow = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    flow[:, 0] = 0.5
    assert torch.allclose(warp(x, flow)[0, 0, 0], torch.tensor([1.0, 3.0, 4.0], dtype=torch.float64))


def test_gradient_reaches_flow_and_features():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    flow = (torch.rand(1, 2, 6, 6, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    warp(x, flow).square().sum().backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_single_row_and_column():
    x = torch.randn(1, 3, 1, 1)
    assert torch.equal(warp(x, torch.randn(1, 2, 1, 1)), x)
    x = torch.randn(1, 3, 1, 5, dtype=torch.float64)
    flow = torch.zeros(1, 2, 1, 5, dtype=torch.float64)
    flow[:, 0] = 1.0
    flow[:, 1] = 3.0  # vertical motion on a single row reads the same row
    assert torch.allclose(warp(x, flow)[..., :4], x[..., 1:])


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="does not match"):
        warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))


def test_matches_official_resample2d(reference):
    v, _ = reference
    x, f = torch.from_numpy(v["warp_test/input"]), torch.from_numpy(v["warp_test/flow"])
    assert (warp(x, f) - torch.from_numpy(v["warp_test/output"])).abs().max() <= 1e-5
    out64 = warp(x.double(), f.double())
    assert (out64 - torch.from_numpy(v["warp_test/output_f64"])).abs().max() <= 1e-12
    assert np.isfinite(out64.numpy()).all()


def test_composed_flow_warps_like_two_warps_in_a_row():
    """On a linear ramp, bilinear warping is exact, so warping once along compose_flows(a, b)
    equals warping along a, then along b (away from the clamped border); None starts a chain."""
    g = torch.Generator().manual_seed(0)
    h, w = 24, 32
    ramp = coords_grid(1, h, w, device=torch.device("cpu"), dtype=torch.float64)  # (1, 2, H, W): x, y
    a = (torch.rand(1, 2, h, w, generator=g, dtype=torch.float64) - 0.5) * 3  # O_{i-1->k}
    b = (torch.rand(1, 2, h, w, generator=g, dtype=torch.float64) - 0.5) * 3  # O_{i->i-1}
    twice = warp(warp(ramp, a), b)
    once = warp(ramp, compose_flows(a, b))
    inner = (slice(None), slice(None), slice(4, h - 4), slice(4, w - 4))
    assert torch.allclose(once[inner], twice[inner], atol=1e-9)
    assert not torch.allclose(compose_flows(a, b)[inner], (a + b)[inner], atol=1e-2)  # not a plain sum
    assert compose_flows(None, b) is b
