"""What an evaluation runs on (evss.evaluation.data): the sources and the flow TC warps with."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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
