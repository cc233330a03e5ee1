"""The OpenVINO backend: the keyframe network, the correction network and the learned FlowNet
compiled by OpenVINO for the CPU, in float32 or int8.

Each part is converted from its PyTorch module by ``openvino.convert_model`` through
``torch.export`` (static sizes stay ints, as in the ONNX export), quantised by NNCF for
``precision="int8"`` (:mod:`evss.backends.calibration`), written as OpenVINO IR under
``$EVSS_CACHE/openvino/<openvino version>/`` with a name made of the part, a hash of its weights,
its input shapes and the precision, then compiled with OpenVINO's own cache of compiled blobs
(``compiled/`` beside the IR). So the first run at a frame size pays the conversion (seconds per
part) and, for int8, the calibration; a later run reads the IR and imports the compiled blob.
Shapes are static: a frame size not seen before converts and compiles once more.

A part keeps its PyTorch contract (the same inputs, outputs and attributes), so it takes the
module's place in the model and the segmenter does not know which runtime runs it. What OpenVINO
cannot convert stays in PyTorch: the antialiased resize in front of the keyframe-network update
branch runs before the graph, and a part that fails to convert as a whole runs in PyTorch, with a
note. Parts are converted when first called: a warp-only run never converts the correction.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from evss.backends.cache import cache_root, fingerprint
from evss.errors import EvssError
from evss.models.backbone import prepare_inference

INSTALL = "pip install 'evss[openvino]'"
Notice = Callable[[str], None]
Inputs = tuple[torch.Tensor, ...]


def import_openvino() -> Any:
    """The openvino module, or the one-line error that names the extra installing it."""
    try:
        import openvino
    except ImportError:
        raise EvssError(f"--backend openvino needs the openvino package: {INSTALL} (or use --backend torch)") from None
    return openvino


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


class OpenVinoRuntime:
    """One OpenVINO Core with the run's threads and precision, and the cache folder: shared by a model's parts."""

    def __init__(self, *, threads: int | None = None, precision: str = "fp32", cache: Path | None = None,
                 notice: Notice | None = None) -> None:
        from evss.backends.calibration import calibration_id, import_nncf

        self.ov = import_openvino()
        if precision == "int8":
            import_nncf()
        self.threads = threads
        self.precision = precision
        self.calibration = calibration_id() if precision == "int8" else None
        self.folder = Path(cache or cache_root() / "openvino") / self.ov.__version__.split("-")[0]
        self.notice = notice or _stderr
        self.core = self.ov.Core()
        (self.folder / "compiled").mkdir(parents=True, exist_ok=True)
        self.core.set_property({"CACHE_DIR": str(self.folder / "compiled")})

    def properties(self) -> dict[str, Any]:
        """Latency on ``threads`` threads in one stream; float32 wherever the graph is not int8 (the CPU
        plugin would otherwise pick bf16 on CPUs that have it)."""
        return {"INFERENCE_NUM_THREADS": self.threads or torch.get_num_threads(), "NUM_STREAMS": 1,
                "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}

    def ir_path(self, part: CompiledPart, shapes: tuple[tuple[int, ...], ...]) -> Path:
        """The IR file of ``part`` at input ``shapes``: part, weights hash, shapes, precision (and calibration)."""
        dims = "_".join("x".join(map(str, s)) for s in shapes)
        calibration = f"-{self.calibration}" if self.calibration else ""
        return self.folder / f"{part.part}-{part.key}-{dims}-{self.precision}{calibration}.xml"

    def load(self, part: CompiledPart, args: Inputs) -> Any:
        """The compiled model of ``part`` for inputs like ``args``: converted on the first use, then from the cache."""
        xml = self.ir_path(part, tuple(tuple(a.shape) for a in args))
        if not xml.is_file():
            self._convert(part, args, xml)
        try:
            return self.core.compile_model(str(xml), "CPU", self.properties())
        except RuntimeError:  # a damaged cache file: converted anew
            for path in (xml, xml.with_suffix(".bin")):
                path.unlink(missing_ok=True)
            self._convert(part, args, xml)
            return self.core.compile_model(str(xml), "CPU", self.properties())

    def _convert(self, part: CompiledPart, args: Inputs, xml: Path) -> None:
        model = convert(self.ov, part.graph(), args)
        if self.precision == "int8":
            from evss.backends.calibration import quantise
            samples = [tuple(a.numpy() for a in part.graph_inputs(*inputs))
                       for inputs in part.calibration_inputs(args)]
            model = quantise(model, samples)
        save_ir(self.ov, model, xml)


def convert(ov: Any, graph: nn.Module, args: Inputs) -> Any:
    """``graph`` as an OpenVINO model for inputs shaped like ``args`` (through ``torch.export``: static
    sizes stay ints, which the SPP grid arithmetic and the update branch's rounding need)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(graph.eval(), tuple(args), strict=False)
        return ov.convert_model(program)


def save_ir(ov: Any, model: Any, xml: Path) -> None:
    """``model`` as IR at ``xml`` (+ ``.bin``), weights kept in float32; the ``.xml`` appears last, so
    a run stopped half-way leaves no IR that looks complete."""
    tmp = xml.parent / f".{xml.stem}.{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
        os.replace(tmp / "model.bin", xml.with_suffix(".bin"))
        os.replace(tmp / "model.xml", xml)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class CompiledPart(nn.Module):
    """A PyTorch module run by OpenVINO on the CPU, one compiled model per input shapes.

    ``module`` stays inside: it names the weights (the cache key), is what gets converted, and
    runs the part when conversion fails (``in_torch``)."""

    part = "part"

    def __init__(self, module: nn.Module, runtime: OpenVinoRuntime) -> None:
        super().__init__()
        self.module = module.eval()
        self.runtime = runtime
        self.key = fingerprint(module)
        self.in_torch = False  # OpenVINO could not convert the part: PyTorch runs it
        self._compiled: dict[tuple[tuple[int, ...], ...], Any] = {}

    def graph(self) -> nn.Module:
        """The module that is converted (its inputs: :meth:`graph_inputs`)."""
        return self.module

    def graph_inputs(self, *inputs: torch.Tensor) -> Inputs:
        """The part's inputs as the converted graph takes them."""
        return inputs

    def calibration_inputs(self, args: Inputs) -> list[Inputs]:
        """int8: samples of the part's own inputs at the sizes of ``args`` (graph inputs)."""
        raise NotImplementedError

    @property
    def compiled_shapes(self) -> list[tuple[tuple[int, ...], ...]]:
        """The graph input shapes compiled so far in this run."""
        return list(self._compiled)

    def forward(self, *inputs: torch.Tensor):
        if self.in_torch:
            return self.module(*inputs)
        for x in inputs:
            if x.device.type != "cpu" or x.dtype != torch.float32:
                raise EvssError(f"the openvino backend runs on the CPU from float32 inputs, got {x.dtype} on "
                                f"{x.device}; use --backend torch with --device cuda or --half")
        args = tuple(a.detach().contiguous() for a in self.graph_inputs(*inputs))
        shapes = tuple(tuple(a.shape) for a in args)
        compiled = self._compiled.get(shapes)
        if compiled is None:
            try:
                compiled = self._compiled[shapes] = self.runtime.load(self, args)
            except EvssError:
                raise
            except Exception as exc:  # an operation OpenVINO cannot convert: the reference runs the part
                self.in_torch = True
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:160]
                self.runtime.notice(f"note: OpenVINO could not convert the {self.part} network ({reason}); "
                                    "PyTorch runs it")
                return self.module(*inputs)
        outs = compiled([a.numpy() for a in args])
        result = tuple(torch.from_numpy(outs[i]) for i in range(len(compiled.outputs)))
        return result[0] if len(result) == 1 else result


def _frames(args: Inputs) -> list[torch.Tensor]:
    """Calibration frames (1, 3, H, W) at the size of the first input, in pairs (2i, 2i + 1)."""
    from evss.backends.calibration import calibration_frames
    h, w = args[0].shape[-2:]
    return calibration_frames(int(h), int(w))


class OpenVinoBackbone(CompiledPart):
    """The keyframe network (lines 3-6): image (N, 3, H, W) in [0, 1] -> logits (N, C, H/4, W/4)."""

    part = "keyframe"

    def __init__(self, backbone: nn.Module, runtime: OpenVinoRuntime) -> None:
        prepare_inference(backbone.eval())  # BN folded, as the segmenter runs it (and hashed after folding)
        super().__init__(backbone, runtime)
        self.num_classes = backbone.num_classes
        self.output_stride = getattr(backbone, "output_stride", 4)

    def calibration_inputs(self, args: Inputs) -> list[Inputs]:
        return [(f,) for f in _frames(args)[1::2]]


class OpenVinoFlow(CompiledPart):
    """The learned FlowNet (line 8): (reference, current) -> backward flow (N, 2, H/4, W/4)."""

    part = "flow"

    def calibration_inputs(self, args: Inputs) -> list[Inputs]:
        frames = _frames(args)
        return list(zip(frames[0::2], frames[1::2]))


class _FromScaled(nn.Module):
    """The update branch after its antialiased resize: (resized frame, F^w) -> (F^u, edge scores)."""

    def __init__(self, update: nn.Module) -> None:
        super().__init__()
        self.update = update

    def forward(self, small: torch.Tensor, warped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.update.from_scaled(small, warped)


class OpenVinoCorrection(CompiledPart):
    """The correction network (lines 9-10, 13): (image, F^w) -> (F^u, edge scores), CoNet or the
    keyframe-network update branch; ``edge_probability`` stays PyTorch's (a sigmoid or softmax)."""

    part = "correction"

    def __init__(self, correction: nn.Module, runtime: OpenVinoRuntime, *, keyframe_network: nn.Module) -> None:
        if hasattr(correction, "prepare_inference"):
            correction.eval().prepare_inference()
        super().__init__(correction, runtime)
        self.num_classes = correction.num_classes
        self._keyframe = (keyframe_network,)  # calibration's F^w; a tuple so that it is not a submodule
        self._scaled = hasattr(correction, "scaled_input")  # the update branch: its resize stays in PyTorch

    def graph(self) -> nn.Module:
        return _FromScaled(self.module) if self._scaled else self.module

    def graph_inputs(self, image: torch.Tensor, warped: torch.Tensor) -> Inputs:
        return (self.module.scaled_input(image), warped) if self._scaled else (image, warped)

    def calibration_inputs(self, args: Inputs) -> list[Inputs]:
        """(frame t, the keyframe network's logits of frame t-1): F^w as a zero flow would warp them."""
        h, w = args[1].shape[-2:]  # the 1/4 grid of the frame
        frames = _frames((torch.empty(1, 3, 4 * h, 4 * w),))
        with torch.no_grad():
            logits = [self._keyframe[0](f) for f in frames[0::2]]
        return list(zip(frames[1::2], logits))

    def edge_probability(self, edge_scores: torch.Tensor) -> torch.Tensor:
        return self.module.edge_probability(edge_scores)

    def prepare_inference(self) -> None:
        """Already prepared when wrapped (the converted graph is the prepared one)."""


def compile_parts(model: nn.Module, *, threads: int | None = None, precision: str = "fp32",
                  cache: Path | None = None, notice: Notice | None = None) -> nn.Module:
    """``model`` with its keyframe network, correction network and learned FlowNet run by OpenVINO (in
    place; returned). Parts already run by OpenVINO are left as they are."""
    if isinstance(model.backbone, OpenVinoBackbone):
        return model
    runtime = OpenVinoRuntime(threads=threads, precision=precision, cache=cache, notice=notice)
    keyframe = model.backbone
    model.backbone = OpenVinoBackbone(keyframe, runtime)
    model.correction = OpenVinoCorrection(model.correction, runtime, keyframe_network=keyframe)
    if isinstance(model.flow, nn.Module):
        model.flow = OpenVinoFlow(model.flow, runtime)
    return model
