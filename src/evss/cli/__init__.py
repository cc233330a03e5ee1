"""`evss <command>`: parses arguments and calls the library, nothing else.

Errors of the product (``EvssError``) become one line on stderr and exit status 2; ``--debug``
shows the traceback instead. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HxW, e.g. 256x512") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return h, w


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="segment a generated driving clip with the built-in model and print timing")
    p.add_argument("--frames", type=int, default=20, help="clip length (default 20)")
    p.add_argument("--size", type=_size, default=(256, 512), help="frame size HxW (default 256x512)")
    p.add_argument("--keyframe-interval", type=int, default=5)
    p.add_argument("--weights", default=None, help="built-in name or checkpoint path (default: built-in demo model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, default=Path("evss-demo"),
                   help="output folder for overlay.mp4, panel.mp4 and summary.json (default evss-demo)")
    p.set_defaults(func=lambda a: __import__("evss.demo", fromlist=["run"]).run(a))


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate SynthDrive clips with dense ground truth")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=_size, default=(256, 512), help="frame size HxW (default 256x512)")
    p.add_argument("--frames", type=int, default=30, help="frames per clip (default 30)")
    p.add_argument("--difficulty", type=float, default=1.0)
    p.add_argument("--preview", action="store_true", help="also write preview.png, a contact sheet")

    def run(a: argparse.Namespace) -> int:
        from evss.data.synthdrive import SynthDriveConfig, write_dataset
        cfg = SynthDriveConfig(height=a.size[0], width=a.size[1], frames=a.frames, difficulty=a.difficulty)
        manifest = write_dataset(a.out, clips=a.clips, seed=a.seed, config=cfg, preview=a.preview)
        print(f"wrote {a.clips} clips to {a.out} (manifest {manifest})")
        return 0

    p.set_defaults(func=run)


def _add_delegated(sub: argparse._SubParsersAction, name: str, module: str, help: str) -> None:
    """Commands whose options live beside their code (``add_arguments``/``run``); each module keeps
    its heavy imports inside functions so ``evss --help`` stays fast."""
    import importlib
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:  # pragma: no cover - a partial install
        if exc.name != module:
            raise
        return
    p = sub.add_parser(name, help=help)
    mod.add_arguments(p)
    p.set_defaults(func=mod.run)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert the authors' .pth files into one evss safetensors checkpoint")
    p.add_argument("inputs", nargs="+", type=Path, help="csrnet_*.pth [flownet.pth] or one evss_*_best.pth")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--half", action="store_true", help="store fp16 weights")

    def run(a: argparse.Namespace) -> int:
        from evss.checkpoint import load_official_model, save_model
        model, config = load_official_model(*a.inputs)
        save_model(a.output, model, config, half=a.half)
        print(f"wrote {a.output} ({config.num_classes} classes, preset {config.name})")
        return 0

    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evss", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_synth(sub)
    _add_convert(sub)
    _add_delegated(sub, "segment", "evss.segment_video", "segment a video file, a folder of frames or a glob")
    _add_delegated(sub, "train", "evss.train", "train a stage: backbone, flow or evss")
    _add_delegated(sub, "bench", "evss.bench", "time each part and end to end against the per-frame backbone")
    _add_delegated(sub, "export", "evss.export", "export the keyframe and non-keyframe graphs (ONNX, torch.export)")
    _add_delegated(sub, "eval", "evss.evaluate", "evaluate with the paper's protocol (mIoU per interval, TC, CL, speed)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from evss.errors import EvssError
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EvssError as exc:
        if args.debug:
            raise
        print(f"evss {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # no permission, a full disk, a file where a folder should be
        if args.debug:
            raise
        print(f"evss {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"evss {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
