"""`evss export`: both graphs as ONNX match PyTorch under onnxruntime; torch.export programs reload."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import need_module, panning_clip
from evss.apps.export import check_onnx, example_inputs, export_onnx, export_pt2, keyframe_graph, non_keyframe_graph
from evss.errors import EvssError


@pytest.mark.parametrize("flow_input", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_onnx_graphs_match_pytorch(tiny_model, tmp_path, flow_input):
    need_module("onnxruntime")  # a skip, or a failure in CI
    need_module("onnxscript")
    paths = export_onnx(tiny_model, tmp_path, height=64, width=96, flow_input=flow_input)
    import onnx
    model = onnx.load(str(paths["non_keyframe"]))
    assert any(n.op_type == "GridSample" for n in model.graph.node)  # the warp is in the graph
    assert (len(model.graph.input) == 4 and
            [i.name for i in model.graph.input][:2] == (["image", "flow"] if flow_input else ["reference", "image"]))
    report = check_onnx(tiny_model, paths, height=64, width=96, flow_input=flow_input)
    key_in, non_in = example_inputs(tiny_model, 64, 96, flow_input=flow_input, seed=1)  # check_onnx's inputs
    with torch.no_grad():
        outs = [*keyframe_graph(tiny_model)(*key_in), *non_keyframe_graph(tiny_model, flow_input=flow_input)(*non_in)]
    scale = max(1.0, max(float(t.float().abs().max()) for t in outs))  # float32 rounding grows with the logits
    for name, r in report.items():
        for k, v in r.items():
            assert v < (5e-5 * scale if k.endswith("diff") else 1e-3), (name, k, v, scale)


def test_graphs_are_algorithm_1(tiny_model):
    """Keyframe then non-keyframe graphs, fed their own outputs (F_k <- F^w, P_k <- P_i, I_k <- I_i),
    give the streaming segmenter's labels frame for frame on a moving clip (line 18 as written: the
    segmenter's "chained" propagation)."""
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    frames = panning_clip(4, 64, 96)
    images = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in frames]
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(keyframe_interval=10, propagation="chained"))
    key, non = keyframe_graph(tiny_model), non_keyframe_graph(tiny_model)
    with torch.no_grad():
        feat, pred, labels = key(images[0])
        assert np.array_equal(labels[0].numpy(), seg.step(frames[0]).labels)
        for ref, img, frame in zip(images, images[1:], frames[1:]):
            warped, merged, pred_i, fine, labels = non(ref, img, feat, pred)
            assert np.array_equal(labels[0].numpy(), seg.step(frame).labels)
            assert merged.shape == warped.shape == feat.shape and fine.shape == (1, 1, 16, 24)
            assert torch.equal(pred_i, merged.argmax(dim=1)) and not torch.equal(pred_i, pred)
            feat, pred = warped, pred_i


def test_flow_input_graph_runs_composed_propagation(tiny_model):
    """The default "composed" propagation through the exported graphs: F^b_k stays the key features
    and the caller passes the frame-to-frame flows composed back to the keyframe."""
    from evss.models.warp import compose_flows
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    frames = panning_clip(4, 64, 96)
    images = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in frames]
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(keyframe_interval=10))
    key, non = keyframe_graph(tiny_model), non_keyframe_graph(tiny_model, flow_input=True)
    with torch.no_grad():
        feat, pred, labels = key(images[0])
        assert np.array_equal(labels[0].numpy(), seg.step(frames[0]).labels)
        acc = None
        for ref, img, frame in zip(images, images[1:], frames[1:]):
            step = tiny_model.flow(ref, img)  # (1, 2, 16, 24)
            acc = compose_flows(acc, step)
            _, _, pred, _, labels = non(img, acc, feat, pred)
            assert np.array_equal(labels[0].numpy(), seg.step(frame).labels)


@pytest.mark.slow
def test_pt2_programs_reload(tiny_model, tmp_path):
    paths = export_pt2(tiny_model, tmp_path, height=64, width=96)
    key_in, non_in = example_inputs(tiny_model, 64, 96, seed=3)
    with torch.no_grad():
        for name, graph, args in (("keyframe", keyframe_graph(tiny_model), key_in),
                                  ("non_keyframe", non_keyframe_graph(tiny_model), non_in)):
            loaded = torch.export.load(str(paths[name])).module()
            for a, b in zip(loaded(*args), graph(*args)):
                assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_export_size_and_opset_errors(tiny_model, tmp_path):
    with pytest.raises(EvssError, match="multiples of 32, e.g. 96x128"):
        export_onnx(tiny_model, tmp_path, height=70, width=100)
    with pytest.raises(EvssError, match="opset"):
        export_onnx(tiny_model, tmp_path, height=64, width=96, opset=13)
