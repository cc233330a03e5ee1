"""The segmenting pipeline behind `evss segment`, callable from Python.

* :func:`segment_video` (``segment.py``): a video, frame folder or glob in; an overlay video, label
  PNGs and distortion maps out, with the memory plan, damaged-frame handling and atomic outputs.
* :func:`stream_video` (``stream.py``): the same reading and segmenting, each frame's labels and
  maps yielded to the caller instead of written.
* :class:`SegmentOptions`, :class:`OutputOptions` (``options.py``): the typed settings, one field
  per flag of `evss segment`.
* :func:`load` (``session.py``): weights loaded once, passed as ``weights=`` to segment many inputs.

Inside: ``session.py`` opens a run (the input once, the weights, the memory plan, the segmenter),
``loop.py`` is the frame loop, ``outputs.py`` the output sinks, ``progress.py`` the running totals
and the Ctrl-C guard, ``report.py`` the closing notes and summary.
"""

from evss.pipeline.options import OutputOptions, SegmentOptions
from evss.pipeline.report import SegmentReport
from evss.pipeline.segment import segment_video
from evss.pipeline.session import LoadedWeights, load
from evss.pipeline.stream import StreamedFrame, stream_video

__all__ = ["LoadedWeights", "OutputOptions", "SegmentOptions", "SegmentReport", "StreamedFrame", "load",
           "segment_video", "stream_video"]
