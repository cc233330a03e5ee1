"""`evss <command>`: parses arguments and calls the library, nothing else.

Errors of the product (``EvssError``) become one line on stderr and exit status 2; ``--debug``
shows the traceback instead. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys

# name -> (help, module with the command's flags, module whose run(args) carries it out). The flag
# modules import only the standard library, so building the parser (`evss --help`) stays fast;
# the command's own module, with torch and the model, is imported when that command runs.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("segment a generated driving clip with the built-in model and print timing",
             "evss.cli.demo", "evss.apps.demo"),
    "synth": ("generate SynthDrive clips with dense ground truth", "evss.cli.synth", "evss.apps.synth"),
    "convert": ("convert the authors' .pth files into one evss safetensors checkpoint",
                "evss.cli.convert", "evss.apps.convert"),
    "segment": ("segment a video file, a folder of frames or a glob", "evss.cli.segment", "evss.apps.segment"),
    "train": ("train a stage: backbone, flow or evss", "evss.cli.train", "evss.apps.train"),
    "bench": ("time each part and end to end against the per-frame backbone", "evss.cli.bench", "evss.apps.bench"),
    "export": ("export the keyframe and non-keyframe graphs (ONNX, torch.export)", "evss.cli.export",
               "evss.apps.export"),
    "eval": ("evaluate with the paper's protocol (mIoU per interval, TC, CL, speed)", "evss.cli.evaluate",
             "evss.apps.evaluate"),
    "weights": ("list the built-in weights and show their model cards", "evss.cli.weights", "evss.apps.weights"),
}


def _runner(app: str):
    def run(args: argparse.Namespace) -> int:
        import importlib
        return importlib.import_module(app).run(args)
    return run


def build_parser() -> argparse.ArgumentParser:
    import importlib
    parser = argparse.ArgumentParser(prog="evss", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, flags, app) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        importlib.import_module(flags).add_arguments(p)
        p.set_defaults(func=_runner(app))
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
