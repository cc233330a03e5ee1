import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evss.metrics import (
    ConfusionMatrix,
    TemporalConsistency,
    confusion_matrix,
    corrected_labels,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    temporal_consistency,
    warp_labels,
    warp_previous,
)

# A 2x3 example done by hand; the last target pixel is ignored.
TARGET = np.array([[0, 1, 2], [1, 1, 255]])
PRED = np.array([[0, 2, 2], [1, 0, 1]])
# rows = target, cols = prediction
CM = np.array([[1, 0, 0],
               [1, 1, 1],
               [0, 0, 1]])


def test_confusion_matrix_by_hand_respects_ignore():
    cm = confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, CM)


def test_confusion_matrix_torch_matches_numpy():
    cm = confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(TARGET).to(torch.uint8), 3)
    np.testing.assert_array_equal(cm, CM)


def test_confusion_matrix_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="11"):
        confusion_matrix(np.zeros((2, 2), int), np.full((2, 2), 11), 11)  # unmapped CamVid void
    with pytest.raises(ValueError, match="prediction"):
        confusion_matrix(np.full((2, 2), 3), np.zeros((2, 2), int), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 3)


def test_iou_by_hand():
    # class 0: TP 1, union 1 + 2 - 1 = 2; class 1: TP 1, union 3 + 1 - 1 = 3; class 2: 1 / 2
    np.testing.assert_allclose(iou_per_class(CM), [0.5, 1 / 3, 0.5])
    assert mean_iou(CM) == pytest.approx(4 / 9)
    assert pixel_accuracy(CM) == pytest.approx(3 / 5)


def test_absent_class_is_nan_and_skipped_by_the_mean():
    cm = confusion_matrix(PRED, TARGET, 4)
    iou = iou_per_class(cm)
    assert math.isnan(iou[3])
    assert mean_iou(cm) == pytest.approx(4 / 9)
    empty = np.zeros((3, 3), np.int64)
    assert math.isnan(mean_iou(empty)) and math.isnan(pixel_accuracy(empty))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 1, 2, 3, 255])), min_size=1,
                max_size=40))
def test_confusion_matrix_counts_every_kept_pixel(pairs):
    pred = np.array([p for p, _ in pairs])
    target = np.array([t for _, t in pairs])
    cm = confusion_matrix(pred, target, 4)
    assert cm.sum() == int((target != 255).sum())
    for g in range(4):
        for p in range(4):
            assert cm[g, p] == int(((target == g) & (pred == p)).sum())


def test_confusion_matrix_accumulator_merge_and_all_reduce(tmp_path):
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED, TARGET)
    b.update(torch.from_numpy(PRED), torch.from_numpy(TARGET))
    assert a.merge(b) is a
    np.testing.assert_array_equal(a.matrix, 2 * CM)
    np.testing.assert_array_equal(b.matrix, CM)  # the argument is not changed
    out = a.compute()
    assert out["miou"] == pytest.approx(4 / 9) and out["pixel_acc"] == pytest.approx(0.6)
    np.testing.assert_allclose(out["per_class_iou"], [0.5, 1 / 3, 0.5])
    a.all_reduce()  # not initialised: no-op
    np.testing.assert_array_equal(a.matrix, 2 * CM)
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        a.all_reduce()  # one rank: the sum is itself
        np.testing.assert_array_equal(a.matrix, 2 * CM)
        assert a.matrix.dtype == np.int64
    finally:
        dist.destroy_process_group()
    with pytest.raises(ValueError):
        a.merge(ConfusionMatrix(4))


def test_temporal_consistency_is_one_on_identical_predictions():
    rng = np.random.default_rng(0)
    seqs = [[rng.integers(0, 5, (4, 6)) for _ in range(3)] for _ in range(2)]
    assert temporal_consistency(seqs, seqs, 5) == pytest.approx(1.0)


def test_temporal_consistency_averages_per_sequence_miou():
    # Sequence 1: class 0 IoU 1/2, class 1 IoU 2/3 -> 7/12. Sequence 2 identical -> 1.
    warped1, pred1 = np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]])
    same = np.array([[2, 2], [0, 1]])
    expected = (7 / 12 + 1.0) / 2
    assert temporal_consistency([[warped1], [same]], [[pred1], [same]], 3) == pytest.approx(expected)
    # Stacked (T-1, H, W) arrays work too.
    assert temporal_consistency([warped1[None]], [pred1[None]], 3) == pytest.approx(7 / 12)

    tc = TemporalConsistency(3)
    tc.update(warped1, pred1)
    assert tc.compute() == pytest.approx(7 / 12)  # an open sequence counts
    tc.end_sequence()
    tc.update(torch.from_numpy(same), torch.from_numpy(same))
    tc.end_sequence()
    tc.end_sequence()  # an empty sequence adds nothing
    assert tc.per_sequence == pytest.approx([7 / 12, 1.0])
    assert tc.compute() == pytest.approx(expected)
    with pytest.raises(ValueError):
        temporal_consistency([[warped1]], [[pred1], [pred1]], 3)


def test_corrected_labels_counts_changed_pixels():
    warped = np.array([[0, 1], [2, 3]])
    final = np.array([[0, 1], [2, 0]])
    assert corrected_labels(warped, final) == pytest.approx(0.25)
    assert corrected_labels(torch.from_numpy(warped), torch.from_numpy(final)) == pytest.approx(0.25)
    assert corrected_labels(warped, warped) == 0.0


def test_temporal_consistency_skips_ignored_pixels():
    warped = np.array([[0, 255], [1, 1]])  # 255: warped from outside the frame
    pred = np.array([[0, 1], [1, 255]])
    # Only (0, 0) and (1, 0) count: both agree -> TC = 1.
    assert temporal_consistency([[warped]], [[pred]], 2) == pytest.approx(1.0)
    tc = TemporalConsistency(2)
    tc.update(torch.from_numpy(warped), pred)  # mixed containers work too
    assert tc.compute() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        temporal_consistency([[warped]], [[pred]], 2, ignore_index=None)


def test_warp_labels_nearest_and_clamped():
    lab = np.arange(12, dtype=np.uint8).reshape(3, 4)
    flow = np.zeros((2, 3, 4), np.float32)
    flow[0] = 1.4  # rounds to +1 column
    assert np.array_equal(warp_labels(lab, flow)[:, :3], lab[:, 1:])
    assert np.array_equal(warp_labels(lab, flow)[:, 3], lab[:, 3])


def test_temporal_consistency_pools_pairs_by_position(tmp_path):
    """Each pair counts in its sequence and, given a position, in that position's pool over all
    sequences; an unused position has no value. The pools survive a one-rank all_reduce."""
    warped1, pred1 = np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]])  # mIoU 7/12
    same = np.array([[2, 2], [0, 1]])
    tc = TemporalConsistency(3, positions=3)
    tc.update(warped1, pred1, position=1)
    tc.update(same, same, position=0)
    tc.end_sequence()
    tc.update(same, same, position=1)
    tc.end_sequence()
    by_hand = TemporalConsistency(3)
    by_hand.update(np.stack([warped1, same]), np.stack([pred1, same]))
    assert tc.per_sequence == pytest.approx([by_hand.compute(), 1.0])
    pooled = TemporalConsistency(3)
    pooled.update(np.stack([warped1, same]), np.stack([pred1, same]))
    assert tc.by_position()[0] == pytest.approx(1.0) and tc.by_position()[1] == pytest.approx(pooled.compute())
    assert tc.by_position()[2] is None
    with pytest.raises(ValueError, match="position 3 is outside 0..2"):
        tc.update(same, same, position=3)
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        before = (list(tc.per_sequence), tc.by_position())
        assert tc.all_reduce() is tc and (tc.per_sequence, tc.by_position()) == before
    finally:
        dist.destroy_process_group()
    tc.reset()
    assert tc.by_position() == [None, None, None] and math.isnan(tc.compute())


def test_add_pair_warps_the_previous_labels_and_skips_pixels_without_a_match():
    prev = np.array([[0, 1, 2], [0, 1, 2]], np.uint8)
    cur = np.array([[1, 2, 0], [1, 2, 2]], np.uint8)
    flow = np.zeros((2, 2, 3), np.float32)
    flow[0] = 1.0  # pixel x of frame t was at x + 1: the labels moved one column left
    valid = np.array([[True, True, False], [True, True, False]])  # the right column is new content
    warped = warp_previous(prev, flow, valid)
    assert warped.tolist() == [[1, 2, 255], [1, 2, 255]]
    assert np.array_equal(warp_previous(prev, flow), warp_labels(prev, flow))
    tc = TemporalConsistency(3)
    tc.add_pair(prev, cur, flow, valid)
    assert tc.compute() == pytest.approx(1.0)
    tc.reset()
    tc.add_pair(prev, cur, flow)  # the new column scored: labels 2 against 0 and 2 against 2
    assert tc.compute() < 1.0
