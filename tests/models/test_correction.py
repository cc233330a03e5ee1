import pytest
import torch

from evss.models.correction import CoNet


def _run(net, image, warped):
    with torch.no_grad():
        return net.eval()(image, warped)


@pytest.mark.parametrize("variant,edge_ch", [("paper", 1), ("official", 2)])
def test_shapes_and_edge_range(variant, edge_ch):
    net = CoNet(num_classes=5, width=0.125, variant=variant)
    image, warped = torch.rand(2, 3, 64, 96), torch.randn(2, 5, 16, 24)
    upd, edge = _run(net, image, warped)
    assert upd.shape == (2, 5, 16, 24) and edge.shape == (2, edge_ch, 16, 24)
    prob = net.edge_probability(edge)
    assert prob.shape == (2, 1, 16, 24) and prob.min() >= 0 and prob.max() <= 1


def test_paper_edge_module_reads_encoder_official_reads_decoder():
    paper = CoNet(num_classes=5, width=0.25, variant="paper")
    official = CoNet(num_classes=5, width=0.25, variant="official")
    # encoder blocks 2-4 have 16/32/64 channels at width 0.25; decoder outputs 8/16/32
    def edge_inputs(net):
        return [m[0].in_channels for m in (net.edge_layer.conv1, net.edge_layer.conv2, net.edge_layer.conv3)]
    assert edge_inputs(paper) == [16, 32, 64]
    assert edge_inputs(official) == [8, 16, 32]


def test_concat_switch_decouples_updated_from_warped():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64)
    w1, w2 = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    on = CoNet(num_classes=4, width=0.125)
    assert not torch.allclose(_run(on, image, w1)[0], _run(on, image, w2)[0])
    off = CoNet(num_classes=4, width=0.125, concat_warped=False)
    assert torch.equal(_run(off, image, w1)[0], _run(off, image, w2)[0])
    assert off.predict_cc.in_channels == 4  # the 32-channel decoder output at width 1/8


def test_ablation_switches_remove_modules():
    full = CoNet(num_classes=3, width=0.125)
    no_ppm = CoNet(num_classes=3, width=0.125, use_ppm=False)
    no_ffm3 = CoNet(num_classes=3, width=0.125, use_ffm3=False)
    no_ffm32 = CoNet(num_classes=3, width=0.125, use_ffm3=False, use_ffm2=False)
    assert hasattr(full.psp, "stages") and not hasattr(no_ppm.psp, "stages")
    assert hasattr(full.deconv2, "sk") and not hasattr(no_ffm3.deconv2, "sk") and hasattr(no_ffm3.deconv3, "sk")
    assert not hasattr(no_ffm32.deconv3, "sk") and not hasattr(no_ffm32.deconv2, "sk")
    n = [sum(p.numel() for p in m.parameters()) for m in (full, no_ffm3, no_ffm32)]
    assert n[0] > n[1] > n[2]
    image, warped = torch.rand(1, 3, 64, 64), torch.randn(1, 3, 16, 16)
    for net in (no_ppm, no_ffm3, no_ffm32):
        assert _run(net, image, warped)[0].shape == (1, 3, 16, 16)


def test_warped_size_mismatch_is_named():
    with pytest.raises(ValueError, match="1/4 grid"):
        _run(CoNet(num_classes=3, width=0.125), torch.rand(1, 3, 64, 64), torch.randn(1, 3, 8, 8))


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        CoNet(num_classes=3, variant="nope")


def test_passthrough_head_starts_at_the_warped_features_and_still_learns():
    torch.manual_seed(0)
    net = CoNet(num_classes=4, width=0.125, head_init="passthrough")
    image, warped = torch.rand(2, 3, 64, 64), torch.randn(2, 4, 16, 16)
    updated, _ = _run(net, image, warped)
    assert torch.equal(updated, warped)  # F^u = F^w: Eq. (5) is warp-only whatever M^f is
    # one step: the decoder's head columns move, then the decoder itself gets a gradient
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    target = torch.randint(0, 4, (2, 16, 16))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(image, warped)[0], target).backward()
        opt.step()
    assert net.predict_cc.weight[:, :-4].abs().sum() > 0
    assert net.conv1[0].weight.grad.abs().sum() > 0
    updated, _ = _run(net, image, warped)
    assert not torch.equal(updated, warped)


def test_passthrough_needs_the_warped_concatenation_and_a_known_name():
    with pytest.raises(ValueError, match="concat_warped"):
        CoNet(num_classes=3, width=0.125, head_init="passthrough", concat_warped=False)
    with pytest.raises(ValueError, match="head_init"):
        CoNet(num_classes=3, width=0.125, head_init="zeros")
