"""evss: efficient video semantic segmentation with distortion map-guided feature rectification.

The package follows the paper's concepts one file each (see ``evss.models``). The public entry
points are the ``evss`` command line and, from Python::

    import evss
    evss.segment_video("drive.mp4", "drive_seg.mp4")           # the pipeline of `evss segment`
    for frame in evss.stream_video("drive.mp4"):               # each frame's labels, nothing written
        frame.labels
    seg = evss.VideoSegmenter(model)                           # Algorithm 1 over frames you supply

The names below are imported on first use, so ``import evss`` (and ``evss --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "segment_video": "evss.pipeline", "stream_video": "evss.pipeline", "load": "evss.pipeline",
    "SegmentOptions": "evss.pipeline", "OutputOptions": "evss.pipeline", "SegmentReport": "evss.pipeline",
    "StreamedFrame": "evss.pipeline", "LoadedWeights": "evss.pipeline",
    "VideoSegmenter": "evss.segmenter", "SegmenterConfig": "evss.segmenter",
    "load_model": "evss.checkpoint", "EvssError": "evss.errors",
}
__all__ = [  # the names of _EXPORTS (a test checks they agree)
    "EvssError", "LoadedWeights", "OutputOptions", "SegmentOptions", "SegmentReport", "SegmenterConfig",
    "StreamedFrame",
    "VideoSegmenter", "load", "load_model", "segment_video", "stream_video",
]

if TYPE_CHECKING:
    from evss.checkpoint import load_model
    from evss.errors import EvssError
    from evss.pipeline import (
        LoadedWeights,
        OutputOptions,
        SegmentOptions,
        SegmentReport,
        StreamedFrame,
        load,
        segment_video,
        stream_video,
    )
    from evss.segmenter import SegmenterConfig, VideoSegmenter


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'evss' has no attribute {name!r}")
