"""What an evaluation runs on (evss.evaluation.data): the sources and the flow TC warps with."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import DATA, need_path
from evss.errors import EvssError
from evss.evaluation import EvalData, EvalSource, estimated_flow, eval_source, tc_flow_for


class Source:
    def __init__(self, frames):
        self.frames = frames

    def frame(self, s, t):
        return self.frames[t]


def test_tc_flow_is_the_quarter_flow_upsampled_by_four():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2)]
    q = torch.randn(1, 2, 16, 24)
    model = type("Model", (), {"flow": staticmethod(lambda a, b: q)})  # a fixed 1/4-grid field
    full, valid = estimated_flow("learned", model, Source(frames), torch.device("cpu"))(0, 1)
    expected = F.interpolate(q, scale_factor=4, mode="bilinear", align_corners=False)[0, :, :64, :96] * 4
    assert valid is None and np.allclose(full, expected.numpy(), atol=1e-6)


def test_synthdrive_is_generated_with_its_true_flow(tmp_path):
    data = EvalData("synthdrive", clips=2, frames=3, size=(64, 128), seed=5)
    opened = eval_source(data)
    assert (opened.tc_flow_default, opened.label_space) == ("gt", "camvid")
    assert opened.source.num_sequences() == 2 and opened.source.sequence_length(0) == 3
    assert opened.source.frame(1, 2).shape == (64, 128, 3)
    flow, valid = opened.gt_flow(1, 2)
    assert flow.shape == (2, 64, 128) and valid.shape == (64, 128) and valid.dtype == bool
    assert tc_flow_for("gt", opened, None, torch.device("cpu"), kind="synthdrive") is opened.gt_flow
    assert tc_flow_for("none", opened, None, torch.device("cpu"), kind="synthdrive") is None


def test_data_errors_name_the_value_at_fault(tmp_path):
    with pytest.raises(EvssError, match=f"CamVid root {tmp_path / 'absent'} does not exist"):
        eval_source(EvalData("camvid", root=tmp_path / "absent"))
    with pytest.raises(EvssError, match="unknown --data 'kitti'"):
        eval_source(EvalData("kitti"))
    real = EvalSource(Source([]), None, "dis", "camvid")
    with pytest.raises(EvssError, match="--tc-flow gt needs ground-truth flow, which camvid does not have"):
        tc_flow_for("gt", real, None, torch.device("cpu"), kind="camvid")


def test_cityscapes_pix2pix_is_single_frames_of_the_listed_files(tmp_path):
    """The real pix2pix files: one-frame sequences at 256x512 in 19 classes, only the listed numbers
    (the held-out list's format), no TC flow; a missing root, list or listed file names itself."""
    root = need_path(DATA / "cityscapes_pix2pix", "shared Cityscapes pix2pix data")
    listed = tmp_path / "heldout.txt"
    listed.write_text("# held out\n102\n101\n")
    opened = eval_source(EvalData("cityscapes_pix2pix", root=root, holdout_list=listed))
    assert (opened.tc_flow_default, opened.label_space, opened.single_frames, opened.gt_flow) == (
        "none", "cityscapes", True, None)
    src = opened.source
    assert src.num_sequences() == 2 and [src.name(s) for s in range(2)] == ["101", "102"]
    assert src.sequence_length(0) == 1 and tuple(src.labelled_indices(1)) == (0,)
    frame, label = src.frame(1, 0), src.label(1, 0)
    assert frame.shape == (256, 512, 3) and label.shape == (256, 512)
    assert set(np.unique(label)) <= set(range(19)) | {255} and len(np.unique(label)) > 4
    with pytest.raises(EvssError, match=f"Cityscapes pix2pix root {tmp_path / 'absent'} does not exist"):
        eval_source(EvalData("cityscapes_pix2pix", root=tmp_path / "absent"))
    with pytest.raises(EvssError, match="cannot read the number list"):
        eval_source(EvalData("cityscapes_pix2pix", root=root, holdout_list=tmp_path / "none.txt"))
    listed.write_text("101\n999999\n")
    with pytest.raises(EvssError, match="999999.jpg is missing"):
        eval_source(EvalData("cityscapes_pix2pix", root=root, holdout_list=listed))
