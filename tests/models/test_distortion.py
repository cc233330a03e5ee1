import pytest
import torch

from evss.models.distortion import DistortionConfig, coarse_map, fine_map, fuse


def test_coarse_map_marks_label_changes():
    warped = torch.tensor([[[[2.0, 0.0]], [[0.0, 2.0]]]])  # (1, 2, 1, 2): argmax [0, 1]
    key = torch.tensor([[[0, 0]]])
    assert coarse_map(warped, key).tolist() == [[[[0.0, 1.0]]]]


def test_fine_map_eq4_and_single_map_modes():
    c, e = torch.tensor([1.0, 0.0]), torch.tensor([0.2, 0.6])
    assert torch.allclose(fine_map(c, e, DistortionConfig(w_f=0.5)), torch.tensor([0.6, 0.3]))
    assert torch.allclose(fine_map(c, e, DistortionConfig(w_f=0.2)), torch.tensor([0.36, 0.48]))
    assert torch.equal(fine_map(c, e, DistortionConfig(mode="coarse")), c)
    assert torch.equal(fine_map(c, e, DistortionConfig(mode="edge")), e)


def test_fine_map_max_combine_is_the_union_of_the_two_maps_and_ignores_w_f():
    c, e = torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0.2, 0.6, 0.9, 0.0])
    for w_f in (0.2, 0.5):
        m = fine_map(c, e, DistortionConfig(w_f=w_f, combine="max"))
        assert m.tolist() == pytest.approx([1.0, 0.6, 1.0, 0.0])  # M^c = 1 -> 1, else M^e
        weighted = fine_map(c, e, DistortionConfig(w_f=w_f))
        assert bool((m >= weighted).all()) and bool((m >= e).all()) and bool((m >= c).all())


def test_fuse_eq5_and_without_warped_features():
    w, u = torch.full((1, 2, 1, 2), 4.0), torch.full((1, 2, 1, 2), 8.0)
    m = torch.tensor([[[[0.0, 0.25]]]])
    assert fuse(w, u, m, DistortionConfig())[0, :, 0].tolist() == [[4.0, 5.0], [4.0, 5.0]]
    assert fuse(w, u, m, DistortionConfig(use_warped=False))[0, :, 0].tolist() == [[0.0, 2.0], [0.0, 2.0]]


def test_bad_config_values():
    with pytest.raises(ValueError, match="w_f"):
        DistortionConfig(w_f=1.5)
    with pytest.raises(ValueError, match="mode"):
        DistortionConfig(mode="both")
    with pytest.raises(ValueError, match="combine 'union' is not one of"):
        DistortionConfig(combine="union")


def test_update_mode_hands_every_pixel_to_the_updated_features():
    c, e = torch.tensor([[[[1.0, 0.0]]]]), torch.tensor([[[[0.2, 0.6]]]])  # (1, 1, 1, 2)
    config = DistortionConfig(mode="update")
    m = fine_map(c, e, config)
    assert m.tolist() == [[[[1.0, 1.0]]]]
    w, u = torch.randn(1, 3, 1, 2), torch.randn(1, 3, 1, 2)
    assert torch.equal(fuse(w, u, m, config), u)  # F^m = F^u, F^w left out
