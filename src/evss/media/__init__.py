"""Media in and out: video files and frame folders, atomic outputs and segment's output sinks."""

from evss.media.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES, frame_files, list_images, natural_key

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "frame_files", "list_images", "natural_key"]
