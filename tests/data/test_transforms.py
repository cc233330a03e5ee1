from collections import Counter

import cv2
import numpy as np
import pytest
import torch

from evss.data.transforms import (
    OFFICIAL_OFFSETS,
    apply_flip_crop,
    choose_offset,
    color_jitter,
    edge_target,
    joint_flip_crop,
    pair_offsets,
    random_scale,
    sample_flip_crop,
    sample_pair_offset,
)
from evss.tensors import image_to_tensor, label_to_tensor


def test_paper_pair_offsets_cover_minus4_to_5_without_0():
    rng = np.random.default_rng(0)
    draws = Counter(sample_pair_offset(rng) for _ in range(4000))
    assert set(draws) == {-4, -3, -2, -1, 1, 2, 3, 4, 5}
    assert min(draws.values()) > 4000 / 9 * 0.8  # roughly uniform


def test_official_pair_offsets_are_the_authors_set():
    rng = np.random.default_rng(1)
    draws = Counter(sample_pair_offset(rng, official=True) for _ in range(4000))
    assert set(draws) == {1, 2, 3, 4, 5, -2, -3, -4, -5} == set(OFFICIAL_OFFSETS)
    assert -1 not in draws and 0 not in draws
    assert min(draws.values()) > 4000 / 9 * 0.8


def test_pair_offset_options():
    assert pair_offsets(low=-1, high=1) == (-1, 1)
    assert pair_offsets(low=-1, high=1, exclude_zero=False) == (-1, 0, 1)
    with pytest.raises(ValueError):
        pair_offsets(low=0, high=0)
    with pytest.raises(ValueError):
        pair_offsets(low=3, high=1)


def test_choose_offset_keeps_the_key_frame_inside_the_sequence():
    rng = np.random.default_rng(2)
    offsets = pair_offsets()
    for target, length in [(0, 10), (9, 10), (2, 4), (0, 1), (3, 30)]:
        for _ in range(200):
            d = choose_offset(rng, offsets, target=target, length=length)
            assert 0 <= target - d < length
    # At the first frame only "key after target" offsets fit; at the last only "before".
    assert {choose_offset(rng, offsets, target=0, length=10) for _ in range(200)} == {-4, -3, -2, -1}
    assert {choose_offset(rng, offsets, target=9, length=10) for _ in range(200)} == {1, 2, 3, 4, 5}
    assert choose_offset(rng, offsets, target=0, length=1) == 0  # a 1-frame sequence: clamped
    with pytest.raises(ValueError):
        choose_offset(rng, offsets, target=5, length=5)


def _coord_inputs(h: int = 12, w: int = 20):
    ys, xs = np.mgrid[0:h, 0:w]
    image = np.stack([xs, ys, np.full_like(xs, 7)], axis=-1).astype(np.uint8)  # (H, W, 3)
    label = (ys * w + xs).astype(np.int64) % 200                                 # (H, W)
    flow = np.stack([np.full((h, w), 3.0), np.full((h, w), -2.0)], axis=-1)      # (H, W, 2)
    flow[..., 0] += xs / 100.0  # dx varies with x so the mirror is visible
    return image, label, flow


@pytest.mark.parametrize("seed", range(6))
def test_joint_flip_crop_is_identical_for_frames_labels_and_flow(seed):
    image, label, flow = _coord_inputs()
    rng = np.random.default_rng(seed)
    (a, b), (lab,), fl = joint_flip_crop(rng, images=[image, image.copy()], labels=[label],
                                         flow=flow, crop_size=(8, 10), flip_prob=0.5)
    assert a.shape == (8, 10, 3) and lab.shape == (8, 10) and fl.shape == (8, 10, 2)
    np.testing.assert_array_equal(a, b)
    # Each output pixel still knows where it came from: the label agrees with the image coords.
    src_x, src_y = a[..., 0].astype(np.int64), a[..., 1].astype(np.int64)
    np.testing.assert_array_equal(lab, (src_y * 20 + src_x) % 200)
    flipped = src_x[0, 0] > src_x[0, -1]
    sign = -1.0 if flipped else 1.0
    np.testing.assert_allclose(fl[..., 0], sign * (3.0 + src_x / 100.0))  # dx negated on flip
    np.testing.assert_allclose(fl[..., 1], -2.0)                        # dy never changes


def test_flip_negates_dx_for_tensors_too():
    image, label, flow = _coord_inputs()
    rng = np.random.default_rng(0)
    img_t = torch.from_numpy(image).permute(2, 0, 1)   # (3, H, W)
    flow_t = torch.from_numpy(flow).permute(2, 0, 1)   # (2, H, W)
    (a,), (lab,), fl = joint_flip_crop(rng, images=[img_t], labels=[torch.from_numpy(label)],
                                       flow=flow_t, crop_size=None, flip_prob=1.0)
    np.testing.assert_array_equal(a.numpy(), np.flip(img_t.numpy(), axis=2))
    np.testing.assert_array_equal(lab.numpy(), np.flip(label, axis=1))
    np.testing.assert_allclose(fl[0].numpy(), -np.flip(flow[..., 0], axis=1))
    np.testing.assert_allclose(fl[1].numpy(), np.flip(flow[..., 1], axis=1))


def test_crop_larger_than_input_pads_image_0_and_label_255():
    image, label, _ = _coord_inputs(4, 5)
    image = image + 1  # no zeros in the real pixels
    params = sample_flip_crop(np.random.default_rng(0), size=(4, 5), crop_size=(6, 8), flip_prob=0.0)
    assert (params.top, params.left) == (0, 0)
    img = apply_flip_crop(image, params, kind="image")
    lab = apply_flip_crop(label, params, kind="label")
    assert img.shape == (6, 8, 3) and lab.shape == (6, 8)
    np.testing.assert_array_equal(img[:4, :5], image)
    assert (img[4:] == 0).all() and (img[:, 5:] == 0).all()
    assert (lab[4:] == 255).all() and (lab[:, 5:] == 255).all()
    with pytest.raises(ValueError, match="4x5"):
        joint_flip_crop(np.random.default_rng(0), images=[image], labels=[label[:3]], crop_size=(2, 2))


def test_inputs_are_not_modified():
    image, label, flow = _coord_inputs()
    before = flow.copy()
    joint_flip_crop(np.random.default_rng(0), images=[image], labels=[label], flow=flow,
                    crop_size=(5, 5), flip_prob=1.0)
    np.testing.assert_array_equal(flow, before)


# A 5x5 label map worked out by hand (255 = ignore).
LABELS = np.array([[0, 0, 0, 1, 1],
                   [0, 0, 0, 1, 1],
                   [0, 0, 255, 1, 1],
                   [3, 3, 3, 3, 3],
                   [3, 3, 3, 3, 2]], dtype=np.uint8)
V = 255
EDGES = np.array([[0, 0, 1, 1, 0],
                  [0, 0, 1, 0, 0],
                  [1, 1, V, 1, 1],
                  [1, 1, 0, 1, 1],
                  [0, 0, 0, 1, 1]], dtype=np.uint8)


def test_edge_target_by_hand():
    np.testing.assert_array_equal(edge_target(LABELS, thin_classes=(2,), dilation=0), EDGES)
    official = edge_target(LABELS, thin_classes=(2,), dilation=0, void_value=0)
    np.testing.assert_array_equal(official, np.where(EDGES == V, 0, EDGES))
    # Thin classes are marked whole: class 1 adds (0,4), (1,3), (1,4).
    thin = edge_target(LABELS, thin_classes=(1,), dilation=0)
    expected = EDGES.copy()
    expected[0, 4] = expected[1, 3] = expected[1, 4] = 1
    expected[4, 4] = 1  # still an edge (differs from the pixel above)
    np.testing.assert_array_equal(thin, expected)
    assert edge_target(LABELS, thin_classes=(2,)).dtype == np.uint8


def _reference_edges(labels: np.ndarray, thin: tuple[int, ...]) -> np.ndarray:
    """The reference README's rule, pixel by pixel (official: no dilation, void = 0)."""
    h, w = labels.shape
    out = np.zeros((h, w), np.uint8)
    for y in range(h):
        for x in range(w):
            a = labels[y, x]
            for ny, nx in ((y - 1, x), (y, x + 1), (y + 1, x + 1), (y + 1, x - 1)):
                if 0 <= ny < h and 0 <= nx < w:
                    b = labels[ny, nx]
                    if a != b and a != 255 and b != 255:
                        out[y, x] = 1
            if a in thin:
                out[y, x] = 1
    return out


def test_edge_target_matches_the_reference_rule_and_dilates_with_a_square():
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 2, 3, 255], size=(9, 11), p=[0.4, 0.3, 0.1, 0.1, 0.1]).astype(np.uint8)
    labels[2:6, 3:8] = 1  # a block so that not everything is an edge
    ref = _reference_edges(labels, (2,))
    np.testing.assert_array_equal(edge_target(labels, thin_classes=(2,), dilation=0, void_value=0), ref)
    # dilation=1 grows the boundary part by a 3x3 square; void pixels stay 255.
    boundary = edge_target(labels, thin_classes=(), dilation=0, void_value=0)
    grown = cv2.dilate(boundary, np.ones((3, 3), np.uint8))
    expected = np.where(labels == 2, 1, grown)
    expected = np.where(labels == 255, 255, expected)
    np.testing.assert_array_equal(edge_target(labels, thin_classes=(2,), dilation=1), expected)


def test_edge_target_on_batched_tensors_matches_numpy():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=(2, 7, 9)).astype(np.uint8)
    labels[0, 0, :3] = 255
    got = edge_target(torch.from_numpy(labels), thin_classes=(3,), dilation=1)
    assert got.dtype == torch.uint8 and got.shape == (2, 7, 9)
    for i in range(2):
        np.testing.assert_array_equal(got[i].numpy(),
                                      edge_target(labels[i], thin_classes=(3,), dilation=1))


def test_image_and_label_to_tensor():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 1] = (255, 0, 51)
    t = image_to_tensor(image)
    assert t.shape == (3, 2, 3) and t.dtype == torch.float32
    assert t[:, 0, 1].tolist() == pytest.approx([1.0, 0.0, 0.2])
    with pytest.raises(ValueError):
        image_to_tensor(image.astype(np.float32))
    lab = label_to_tensor(np.array([[1, 255]], np.uint8))
    assert lab.dtype == torch.int64 and lab.tolist() == [[1, 255]]


# ---- the backbone stage's augmentations: random scale, colour jitter -----------------------------

def test_random_scale_resizes_image_and_label_together():
    rng = np.random.default_rng(0)
    image = np.zeros((40, 60, 3), np.uint8)
    label = np.full((40, 60), 3, np.uint8)
    label[:, 30:] = 7
    for _ in range(10):
        img, lab = random_scale(rng, image, label, scale_range=(0.5, 2.0))
        assert img.shape[:2] == lab.shape and 20 <= lab.shape[0] <= 80
        assert set(np.unique(lab)) == {3, 7}  # nearest: no new label ids at the boundary
        assert abs(lab.shape[1] / lab.shape[0] - 1.5) < 0.08  # rounding of a 20-pixel side


def test_color_jitter_is_seeded_and_stays_in_range():
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    a = color_jitter(np.random.default_rng(5), image, strength=0.3)
    b = color_jitter(np.random.default_rng(5), image, strength=0.3)
    assert a.dtype == np.uint8 and np.array_equal(a, b) and not np.array_equal(a, image)
    assert np.array_equal(color_jitter(np.random.default_rng(5), image, strength=0.0), image)
