"""Media in and out: video files and frame folders (decode), video and PNG writers (encode), resizing
and atomic outputs.

    from evss.media import open_video, VideoWriter

    with open_video("drive.mp4", max_size=1024) as video:
        for frame in video:  # Frame(index, image (H, W, 3) uint8 RGB, pts, motion)
            ...
"""

from evss.media.atomic import PartialFolder, atomic_write, numbered_pngs, partial_path
from evss.media.decode import open_video, prefetch, read_video_frames
from evss.media.encode import BackgroundWriter, VideoWriter, write_gray_png, write_label_png, write_video_frames
from evss.media.folder import OPENCV_MAX_PIXELS, FrameFolderReader
from evss.media.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES, frame_files, list_images, natural_key
from evss.media.motion_vectors import b_frame_distances, vectors_to_flow
from evss.media.reader import DEFAULT_FPS, ON_ERROR, Frame, VideoInfo, VideoReader
from evss.media.resize import output_size, resize_flow, resize_image, resize_labels, resize_map, rotate_flow
from evss.media.video_file import PyAVReader

__all__ = [
    "DEFAULT_FPS", "IMAGE_SUFFIXES", "ON_ERROR", "OPENCV_MAX_PIXELS", "VIDEO_SUFFIXES",
    "BackgroundWriter", "Frame", "FrameFolderReader", "PartialFolder", "PyAVReader", "VideoInfo", "VideoReader",
    "VideoWriter",
    "atomic_write", "b_frame_distances", "frame_files", "list_images", "natural_key", "numbered_pngs", "open_video",
    "output_size", "partial_path", "prefetch", "read_video_frames", "resize_flow", "resize_image", "resize_labels",
    "resize_map", "rotate_flow", "vectors_to_flow", "write_gray_png", "write_label_png", "write_video_frames",
]
