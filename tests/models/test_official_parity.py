"""Key-for-key and numeric parity with the authors' modules (../shared/reference/official_evss).

Tolerances are the ones the reference README (section 9) recommends.
"""

import numpy as np
import pytest
import torch

from evss.checkpoint import load_state_checked
from evss.models.backbone import CSRNet
from evss.models.correction import CoNet
from evss.models.flow import FlowNet
from evss.models.warp import warp

TAGS = ("128x256", "96x160", "128x160")


def _state(gen, name):
    return {k: torch.from_numpy(np.asarray(a)) for k, a in gen.state_dict_for(name).items()}


@pytest.fixture(scope="module")
def official(reference):
    v, gen = reference
    nets = {"csr19": CSRNet(num_classes=19), "csr11": CSRNet(num_classes=11), "flow": FlowNet()}
    for key, name in (("csr19", "csrnet_cityscapes"), ("csr11", "csrnet_camvid"), ("flow", "flownet")):
        load_state_checked(nets[key], _state(gen, name), name)
    return v, gen, {k: n.eval() for k, n in nets.items()}


@pytest.mark.parametrize("name,factory", [
    ("csrnet_cityscapes", lambda: CSRNet(num_classes=19)),
    ("csrnet_camvid", lambda: CSRNet(num_classes=11)),
    ("flownet", lambda: FlowNet()),
    ("conet_cityscapes", lambda: CoNet(num_classes=19, variant="official")),
])
def test_state_dict_keys_and_shapes_match_manifest(reference, name, factory):
    _, gen = reference
    ref = {k: tuple(info["shape"]) for k, info in gen.load_manifest()["models"][name]["keys"].items()}
    own = {k: tuple(t.shape) for k, t in factory().state_dict().items()}
    assert own == ref


def _run(nets, v, tag, dtype):
    f1 = torch.from_numpy(v[f"{tag}/frame1"]).to(dtype)
    f2 = torch.from_numpy(v[f"{tag}/frame2"]).to(dtype)
    nets = {k: n.to(dtype) for k, n in nets.items()}
    with torch.no_grad():
        out = {"csr19_logits_frame1": nets["csr19"](f1), "csr19_logits_frame2": nets["csr19"](f2),
               "csr11_logits_frame1": nets["csr11"](f1), "csr11_logits_frame2": nets["csr11"](f2),
               "flow": nets["flow"](f1, f2)}  # FlowNet(reference=frame1, current=frame2)
        out["warped19"] = warp(out["csr19_logits_frame1"], out["flow"])
    return out


@pytest.mark.parametrize("tag", TAGS)
def test_float64_matches_exactly(official, tag):
    v, _, nets = official
    out = _run(nets, v, tag, torch.float64)
    for name, got in out.items():
        ref = v[f"{tag}/f64/{name}"]
        assert np.abs(got.numpy() - ref).max() <= 1e-9 * np.abs(ref).max(), name
    for mask, src in (("mask19_frame1", "csr19_logits_frame1"), ("mask11_frame2", "csr11_logits_frame2"),
                      ("mask19_warped", "warped19")):
        keep = v[f"{tag}/{mask}_margin_f64"] > 1e-6
        assert np.array_equal(out[src].argmax(1).numpy()[keep], v[f"{tag}/{mask}"][keep])
    up = torch.nn.functional.interpolate(out["csr19_logits_frame1"], scale_factor=4, mode="bilinear",
                                         align_corners=False).argmax(1).numpy()
    keep = v[f"{tag}/mask19_frame1_up4_margin_f64"] > 1e-6
    assert np.array_equal(up[keep], v[f"{tag}/mask19_frame1_up4"][keep])


@pytest.mark.parametrize("tag", TAGS)
def test_float32_within_reference_tolerance(official, tag):
    v, _, nets = official
    out = _run(nets, v, tag, torch.float32)
    for name, got in out.items():
        ref = v[f"{tag}/f64/{name}"]
        err = np.abs(got.double().numpy() - ref).max()
        limit = 1e-4 if name == "flow" else 1e-3 * np.abs(ref).max()
        assert err <= limit, (name, err, limit)
    for mask, src in (("mask19_frame1", "csr19_logits_frame1"), ("mask19_warped", "warped19")):
        keep = v[f"{tag}/{mask}_margin_f64"] > 0.1
        assert np.array_equal(out[src].argmax(1).numpy()[keep], v[f"{tag}/{mask}"][keep])


def test_intermediates_localise_against_debug_tensors(official):
    """The dbg_* tensors pin the decoder order (u8 from u16 before spp_up1)."""
    v, _, nets = official
    tag = "96x160"
    f1 = torch.from_numpy(v[f"{tag}/frame1"]).double()
    feats = nets["csr19"].to(torch.float64).backbone
    with torch.no_grad():
        x = feats.maxpool(feats.relu(feats.bn1(feats.conv1(feats.norm(f1)))))
        s4 = feats.layer1(x)
    for name, got in (("stem", x), ("layer1", s4)):
        ref = v[f"{tag}/dbg_csr_{name}"]
        assert np.abs(got.numpy() - ref).max() <= 1e-4 * np.abs(ref).max()
