"""evss: efficient video semantic segmentation with distortion map-guided feature rectification.

The package follows the paper's concepts one file each (see ``evss.models``); the public entry
points are :class:`evss.segmenter.VideoSegmenter` and the ``evss`` command line.
"""

__version__ = "0.1.0"
