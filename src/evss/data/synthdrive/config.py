"""How SynthDrive clips look and move: the frozen config and its check."""

from __future__ import annotations

from dataclasses import dataclass

from evss.errors import ConfigError


@dataclass(frozen=True)
class SynthDriveConfig:
    """How clips look and move. ``difficulty`` (0 = calm, 1 = default, 2 = hard) scales ego speed
    and shake, camera yaw, traffic density, illumination change, sensor noise and palette jitter."""

    height: int = 256  # frame height in pixels
    width: int = 512  # frame width in pixels
    frames: int = 30  # frames per clip
    fps: float = 15.0  # frame rate; motion per frame is speed / fps
    difficulty: float = 1.0  # scales object count, speeds, illumination changes, noise
    motion_blur: bool = False  # blur each frame along its flow (labels stay sharp)
    hfov_deg: float = 60.0  # horizontal field of view of the dash camera
    max_speed: float = 14.0  # m/s; ego speed never exceeds max_speed * min(difficulty, 1.5)
    noise_std: float = 2.0  # Gaussian sensor noise, 8-bit levels, times difficulty
    illumination: float = 0.12  # relative brightness drift within a clip, times difficulty
    traffic: float = 1.0  # multiplies the number of cars, pedestrians and bicyclists
    clutter: bool = True  # add unlabelled street furniture (void, 255)
    exposure: float = 0.5  # motion-blur shutter time as a fraction of the frame interval


def check_config(config: SynthDriveConfig) -> None:
    """Raise ConfigError naming the first impossible value."""
    if config.height < 16 or config.width < 16:
        raise ConfigError(f"SynthDrive frames must be at least 16x16, "
                          f"got {config.height}x{config.width}")
    if config.frames < 1:
        raise ConfigError(f"SynthDrive clips need at least 1 frame, got frames={config.frames}")
    if not config.fps > 0:
        raise ConfigError(f"fps must be positive, got {config.fps}")
    if not 0 <= config.difficulty <= 4:
        raise ConfigError(f"difficulty must be in [0, 4], got {config.difficulty}")
    if not 10 <= config.hfov_deg <= 120:
        raise ConfigError(f"hfov_deg must be in [10, 120], got {config.hfov_deg}")
    for name in ("max_speed", "noise_std", "illumination", "traffic"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(config, name)}")
    if not 0 <= config.exposure <= 1:
        raise ConfigError(f"exposure must be in [0, 1], got {config.exposure}")
