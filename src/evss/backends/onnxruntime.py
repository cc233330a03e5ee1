"""The ONNX Runtime backend: the keyframe network through ONNX Runtime on the CPU, float32.

ONNX Runtime fuses each conv with its activation and padding and runs the keyframe network about
twice as fast as eager PyTorch on this CPU (``evss bench --backend onnxruntime``; figures in the
README). The network is exported once per input size, with the same exporter as ``evss export``,
and cached under ``$EVSS_CACHE`` (default ``~/.cache/evss``) by a hash of its weights, so a second
run starts at once. The wrapper keeps the backbone contract (image (N, 3, H, W) in [0, 1] ->
logits (N, C, ceil(H/4), ceil(W/4))), so it is passed into the model in place of the backbone.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from evss.backends.cache import OPSET, cache_root, fingerprint
from evss.errors import EvssError
from evss.media import atomic_write


def onnx_export(graph: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                opset: int = OPSET) -> None:
    """``graph(*args)`` to an ONNX file (written atomically) with the torch.export-based exporter."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401  (the torch.export-based exporter translates through it)
    except ImportError:
        raise EvssError("ONNX export needs onnx and onnxscript: pip install onnx onnxscript onnxruntime") from None
    # Static shapes reach the model as ints here. (The TorchScript tracer turns them into tensors,
    # which CSRNet's SPP grid arithmetic and the adaptive pooling of SwiftNet's SPP do not accept.)
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atomic_write(path, lambda tmp: torch.onnx.export(
                graph, args, str(tmp), input_names=inputs, output_names=outputs, opset_version=opset,
                dynamo=True, external_data=False, verbose=False))
    finally:
        log.setLevel(level)


def cache_dir() -> Path:
    """The ONNX graphs' folder under the cache root (:func:`evss.backends.cache.cache_root`)."""
    return cache_root() / "onnx"


class OnnxRuntimeBackbone(nn.Module):
    """The keyframe network run by ONNX Runtime on the CPU, float32; one session per input size."""

    def __init__(self, backbone: nn.Module, *, threads: int | None = None, cache: Path | None = None) -> None:
        super().__init__()
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise EvssError("--backend onnxruntime needs the onnxruntime package: pip install onnxruntime "
                            "onnx onnxscript (or use --backend torch)") from None
        self.backbone = backbone.eval()
        self.num_classes = backbone.num_classes
        self.output_stride = getattr(backbone, "output_stride", 4)
        self.threads = threads
        self.cache = cache or cache_dir()
        self._key = fingerprint(backbone)
        self._sessions: dict[tuple[int, ...], object] = {}

    def session(self, shape: tuple[int, ...]):
        """The session for inputs of ``shape`` (N, 3, H, W): exported on first use, then cached on disk."""
        if shape not in self._sessions:
            import onnxruntime as ort
            path = self.cache / f"{self._key}-{'x'.join(map(str, shape))}.onnx"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                with torch.no_grad():
                    onnx_export(self.backbone, (torch.rand(shape),), path, ["image"], ["logits"])
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads or torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            try:
                self._sessions[shape] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # a damaged cache file: export it again next time
                path.unlink(missing_ok=True)
                raise EvssError(f"ONNX Runtime could not load the cached graph {path} ({exc}); it was removed, "
                                "run again to export it anew") from None
        return self._sessions[shape]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.device.type != "cpu" or image.dtype != torch.float32:
            raise EvssError(f"the onnxruntime backend runs float32 on the CPU, got {image.dtype} on {image.device}; "
                            "use --backend torch with --device cuda or --half")
        x = image.detach().contiguous().numpy()  # (N, 3, H, W)
        logits = self.session(tuple(x.shape)).run(None, {"image": x})[0]  # (N, C, H/4, W/4)
        return torch.from_numpy(logits)
