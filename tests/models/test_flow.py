import pytest
import torch

from evss.models.flow import FlowEstimator, FlowNet


@pytest.mark.parametrize("h,w", [(64, 128), (96, 160), (50, 70)])
def test_flow_on_the_quarter_grid(h, w):
    net = FlowNet(width=0.25).eval()
    with torch.no_grad():
        flow, pyramid = net(torch.rand(1, 3, h, w), torch.rand(1, 3, h, w), return_pyramid=True)
    assert flow.shape == (1, 2, -(-h // 4), -(-w // 4))
    assert [p.shape[1] for p in pyramid] == [2, 2, 2, 2]


def test_flownet_is_a_flow_estimator():
    assert isinstance(FlowNet(width=0.125), FlowEstimator)


def test_parameter_count_of_the_released_flownet():
    assert sum(p.numel() for p in FlowNet().parameters()) == 5_462_306  # reference README §10
