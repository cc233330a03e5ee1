"""Lay out one clip's world: a straight street with buildings, furniture and traffic, the camera
path down it, and the clip's colour grade. Deterministic in (config, seed)."""

from __future__ import annotations

import math

import numpy as np

from evss.data.synthdrive.config import SynthDriveConfig
from evss.data.synthdrive.render.agents import bicyclist, car_faces, person
from evss.data.synthdrive.render.camera import Camera, world_to_camera
from evss.data.synthdrive.render.ground_sky import ground_look, sky_look
from evss.data.synthdrive.render.props import clutter, facade, fence, sign_pole, street_lamp, traffic_light, tree
from evss.data.synthdrive.render.scene import Scene, SceneBuilder


def _smooth_series(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """(n,) smooth zero-mean noise with std about 1 (Gaussian-filtered white noise)."""
    pad = int(3 * sigma_frames) + 1
    x = rng.standard_normal(n + 2 * pad)
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / max(sigma_frames, 1e-3)) ** 2)
    y = np.convolve(x, k / np.sqrt((k * k).sum()), mode="same")[pad:pad + n]
    return y


def build_scene(cfg: SynthDriveConfig, seed: int) -> Scene:
    """Lay out one clip's street, traffic and camera path; deterministic in (cfg, seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    T, dt, d = cfg.frames, 1.0 / cfg.fps, cfg.difficulty
    b = SceneBuilder(T)
    # Street cross-section.
    lanes = 1 if rng.random() < 0.55 else 2
    lane_w = rng.uniform(3.0, 3.6)
    parking = 2.2 if rng.random() < 0.5 else 0.0
    road_half = lanes * lane_w + parking
    facade_x = road_half + rng.uniform(2.5, 5.0)
    # Ego motion: forward with varying speed, lane wiggle, yaw sway, shake.
    vmax = cfg.max_speed * min(max(d, 0.15), 1.5)
    v = vmax * rng.uniform(0.3, 0.9) * (1 + 0.3 * min(d, 1.5) * _smooth_series(rng, T, 8))
    v = np.clip(v, 0.0, vmax)  # (T,) m/s
    z_cam = np.concatenate([[0.0], np.cumsum(v[1:] * dt)])
    lane_x = (rng.integers(lanes) + 0.5) * lane_w
    t_s = np.arange(T) * dt
    period = rng.uniform(1.5, 4.0)
    phase = rng.uniform(0, 2 * math.pi)
    x_cam = lane_x + 0.3 * d * np.sin(2 * math.pi * t_s / period + phase)
    yaw = math.radians(rng.normal(0, 1.5) * d) + math.radians(rng.uniform(0.5, 3.0) * d) * \
        np.sin(2 * math.pi * t_s / period + phase + 0.8)
    pitch = math.radians(rng.uniform(0.0, 3.0)) + math.radians(0.3 * d) * _smooth_series(rng, T, 1.5)
    roll = math.radians(0.3 * d) * _smooth_series(rng, T, 1.5)
    cam_h = rng.uniform(1.3, 1.7) + 0.02 * d * _smooth_series(rng, T, 1.0)
    focal = cfg.width / 2 / math.tan(math.radians(cfg.hfov_deg) / 2)
    cams = [Camera(rot=world_to_camera(yaw[t], pitch[t], roll[t]),
                   centre=np.array([x_cam[t], cam_h[t], z_cam[t]]), focal=focal,
                   width=cfg.width, height=cfg.height) for t in range(T)]
    z_end = z_cam[-1] + rng.uniform(90, 180)
    _buildings(b, rng, facade_x, z_end)
    _furniture(b, rng, cfg, road_half, facade_x, z_end)
    _traffic(b, rng, cfg, lanes, lane_w, parking, road_half, facade_x, z_cam, x_cam, v, dt, z_end)
    ground = ground_look(rng, road_half=road_half, lane_w=lane_w, lanes=lanes, parking=parking,
                         facade_x=facade_x, difficulty=d)
    # Colour: per-clip hue rotation, saturation and brightness; per-frame illumination drift.
    hue = math.radians(rng.normal(0, 5) * min(d, 1.5))
    sat = rng.uniform(1 - 0.25 * min(d, 1.5), 1 + 0.25 * min(d, 1.5))
    grey = np.full((3, 3), 1 / 3)
    axis = np.ones(3) / math.sqrt(3)
    kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + math.sin(hue) * kx + (1 - math.cos(hue)) * kx @ kx  # Rodrigues about grey
    base = (grey + sat * rot @ (np.eye(3) - grey)) * rng.uniform(0.8, 1.15)
    # Illumination drifts smoothly (clouds, exposure control): a global gain and a weaker tint.
    gain = 1 + cfg.illumination * d * _smooth_series(rng, T, 6)  # (T,)
    tint = 1 + 0.3 * cfg.illumination * d * np.stack([_smooth_series(rng, T, 8) for _ in range(3)], 1)
    drift = np.clip(gain[:, None] * tint, 0.3, 3.0)  # (T, 3)
    colour = drift[:, :, None] * base[None]  # (T, 3, 3)
    yy, xx = np.mgrid[0:cfg.height, 0:cfg.width]
    r2 = ((xx - (cfg.width - 1) / 2) ** 2 + (yy - (cfg.height - 1) / 2) ** 2) / ((cfg.width / 2) ** 2)
    vignette = (1 - rng.uniform(0.0, 0.2) * r2).astype(np.float32)[..., None]
    org, uu, vv, oo, tt = zip(*b.quads)
    texel = [np.linalg.norm(u) / b.textures[k].label.shape[1] for u, k in zip(uu, tt)]
    return Scene(cams=cams, textures=b.textures, q_origin=np.array(org), q_u=np.array(uu),
                 q_v=np.array(vv), q_obj=np.array(oo), q_tex=np.array(tt), q_texel=np.array(texel),
                 obj_pos=np.stack(b.pos), moving=np.array(b.moving), ground=ground,
                 sky=sky_look(rng), colour=colour.astype(np.float32), vignette=vignette)


def _buildings(b: SceneBuilder, rng: np.random.Generator, facade_x: float, z_end: float) -> None:
    """Two rows of buildings per side (parallax through gaps) and a row closing the street."""
    shade = {-1: rng.uniform(0.7, 1.0), 1: rng.uniform(0.7, 1.0)}  # sun on one side
    tall = rng.uniform(0.5, 1.2)  # low suburb .. dense centre
    for s in (-1, 1):
        z = -rng.uniform(12, 20)
        while z < z_end:
            w, h = rng.uniform(6, 22), rng.uniform(5, 20) * tall
            x = s * (facade_x + rng.uniform(0, 0.6))
            o = b.obj((x, 0, z))
            front = b.tex(facade(rng, w, h, texel=0.06, shade=shade[s]))
            b.quad(o, front, (0, h, 0), (0, 0, w), (0, -h, 0))
            depth = rng.uniform(8, 14)
            b.quad(o, b.tex(facade(rng, depth, h, texel=0.1, shade=shade[s] * 0.8, side_wall=True)),
                   (0, h, 0), (s * depth, 0, 0), (0, -h, 0))
            if rng.random() < 0.3:  # a gap: an alley, maybe a tree in it
                gap = rng.uniform(3, 10)
                if rng.random() < 0.5:
                    _tree(b, rng, (s * (facade_x + rng.uniform(2, 6)), 0, z + w + gap / 2))
                z += gap
            z += w
        z = -rng.uniform(12, 25)
        x2 = s * (facade_x + rng.uniform(12, 25))
        while z < z_end:
            w, h = rng.uniform(10, 30), rng.uniform(8, 26) * tall
            o = b.obj((x2, 0, z))
            b.quad(o, b.tex(facade(rng, w, h, texel=0.12, shade=shade[s] * 0.9)), (0, h, 0), (0, 0, w),
                   (0, -h, 0))
            z += w
    x = -160.0
    while x < 160:
        w, h = rng.uniform(10, 30), rng.uniform(4, 14) * tall
        o = b.obj((x, 0, z_end + rng.uniform(0, 3)))
        b.quad(o, b.tex(facade(rng, w, h, texel=0.12, shade=0.9)), (0, h, 0), (w, 0, 0), (0, -h, 0))
        x += w


def _tree(b: SceneBuilder, rng: np.random.Generator, pos, pool: list | None = None) -> None:
    if pool:
        tex, w, h = pool[rng.integers(len(pool))]
    else:
        h, r = rng.uniform(5, 10), rng.uniform(1.5, 3.2)
        tex = b.tex(tree(rng, height=h, radius=r, texel=0.04, autumn=rng.random() < 0.2))
        w = 2 * r + 0.4
    b.billboard(b.obj(pos), tex, w, h, mirror=rng.random() < 0.5)


def _furniture(b: SceneBuilder, rng: np.random.Generator, cfg: SynthDriveConfig, road_half: float,
               facade_x: float, z_end: float) -> None:
    """Trees, lamp posts, sign posts, traffic lights, fences and unlabelled clutter."""
    pool = []
    for _ in range(4):
        h, r = rng.uniform(5, 10), rng.uniform(1.5, 3.2)
        pool.append((b.tex(tree(rng, height=h, radius=r, texel=0.04, autumn=rng.random() < 0.2)),
                     2 * r + 0.4, h))
    for s in (-1, 1):
        if rng.random() < 0.6:  # a row of street trees along the curb
            z = rng.uniform(-5, 5)
            while z < z_end:
                _tree(b, rng, (s * (road_half + rng.uniform(0.7, 1.3)), 0, z), pool)
                z += rng.uniform(8, 16)
        # Lamp posts: shaft on the pavement edge, arm over the road (the road is at -s).
        h, arm = rng.uniform(6, 9), rng.uniform(1.0, 2.0)
        tex = street_lamp(rng, height=h, arm=arm, texel=0.02, arm_right=s < 0)
        t_id, w = b.tex(tex), arm + 0.5
        z = rng.uniform(-5, 10)
        while z < z_end:
            x = s * (road_half + 0.35)
            o = b.obj((x, 0, z))
            x0 = -0.25 if s < 0 else -(w - 0.25)  # put the shaft, not the arm, at the post position
            b.quad(o, t_id, (x0, h, 0), (w, 0, 0), (0, -h, 0))
            z += rng.uniform(15, 30)
        for _ in range(rng.integers(1, 4)):  # fences along the curb or in front of buildings
            length, fh = rng.uniform(8, 30), rng.uniform(0.9, 1.4)
            x = s * (road_half + 0.2 if rng.random() < 0.5 else facade_x - 0.3)
            o = b.obj((x, 0, rng.uniform(0, z_end - 20)))
            b.quad(o, b.tex(fence(rng, length=length, height=fh, texel=0.02)), (0, fh, 0),
                   (0, 0, length), (0, -fh, 0))
    n_signs = max(2, int(rng.poisson(6 * z_end / 120)))
    for _ in range(n_signs):
        s = rng.choice([-1, 1])
        tex, w, h = sign_pole(rng, texel=0.02)
        o = b.obj((s * (road_half + rng.uniform(0.3, 0.7)), 0, rng.uniform(3, z_end - 10)))
        b.billboard(o, b.tex(tex), w, h)
    if rng.random() < 0.5:
        z = rng.uniform(15, z_end - 20)
        for s in (-1, 1):
            tex, w, h = traffic_light(rng, texel=0.02)
            b.billboard(b.obj((s * (road_half + 0.5), 0, z)), b.tex(tex), w, h)
    if cfg.clutter:
        for _ in range(rng.integers(3, 9)):
            s = rng.choice([-1, 1])
            tex, w, h = clutter(rng, texel=0.03)
            x = s * rng.uniform(road_half + 0.5, facade_x - 0.3)
            b.billboard(b.obj((x, 0, rng.uniform(2, z_end - 10))), b.tex(tex), w, h)


def _car(b: SceneBuilder, rng: np.random.Generator, x: float, z: float, vz: float, dt: float,
         oncoming: bool) -> tuple[int, float, float]:
    """A car as a box of textured faces: near end (rear, or front if oncoming) and both sides."""
    length, width, height = rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9), rng.uniform(1.38, 1.6)
    end, left, right = car_faces(rng, length=length, width=width, height=height, texel=0.03,
                                   oncoming=oncoming)[:3]
    o = b.obj((x, 0, z), (0, 0, vz), dt)
    z0 = -length / 2
    b.quad(o, b.tex(end), (-width / 2, height, z0), (width, 0, 0), (0, -height, 0))
    b.quad(o, b.tex(left), (-width / 2, height, z0), (0, 0, length), (0, -height, 0))
    b.quad(o, b.tex(right), (width / 2, height, z0), (0, 0, length), (0, -height, 0))
    return o, length, width


def _clear(b: SceneBuilder, cars: list[tuple[int, float, float]], start, velocity, dt: float,
           half: float) -> bool:
    """True if an agent of half-width ``half`` on this straight track never touches a car."""
    track = np.asarray(start, float)[None] + np.arange(b.frames)[:, None] * dt * np.asarray(velocity)
    for o, length, width in cars:
        gap = np.abs(b.pos[o] - track)  # (T, 3)
        if ((gap[:, 0] < width / 2 + half + 0.2) & (gap[:, 2] < length / 2 + half + 0.2)).any():
            return False
    return True


def _traffic(b: SceneBuilder, rng: np.random.Generator, cfg: SynthDriveConfig, lanes: int, lane_w: float,
             parking: float, road_half: float, facade_x: float, z_cam: np.ndarray, x_cam: np.ndarray,
             v: np.ndarray, dt: float, z_end: float) -> None:
    """Parked and moving cars, pedestrians (walking along or across), bicyclists."""
    d = cfg.difficulty
    dens = cfg.traffic * (0.5 + 0.5 * min(d, 2.0))
    T = len(z_cam)
    span = (T - 1) * dt
    cars: list[tuple[int, float, float]] = []
    if parking > 0:  # parked cars: right side faces away (rear visible), left side faces us
        for s in (-1, 1):
            z = rng.uniform(-4, 4)
            while z < z_end - 10:
                if rng.random() < 0.45:
                    cars.append(_car(b, rng, s * (lanes * lane_w + parking / 2), z, 0.0, dt,
                                     oncoming=s < 0))
                z += rng.uniform(5.5, 8.0)
    # Moving traffic drives in platoons, one per lane with a common speed, so cars never overlap.
    # The ego lane's platoon starts at least 8 m ahead of the camera in every frame, which keeps
    # moving pixels in every frame; other lanes may start behind the camera and overtake.
    # Cars in the kerb lanes keep 0.35 m left of centre to leave room for bicyclists.
    steps = np.arange(T) * dt
    for k in range(lanes):
        x = (k + 0.5) * lane_w - (0.35 if k == lanes - 1 else 0.0)
        speed = float(np.mean(v)) * rng.uniform(0.7, 1.3) + 0.5
        if abs(x - float(np.mean(x_cam))) < lane_w / 2:
            z = max(rng.uniform(12, 30), float((z_cam - speed * steps).max()) + 10.5)
            n = 1 + rng.poisson(1.0 * dens)
        else:
            z = rng.uniform(-15, 30)
            n = rng.poisson(2.0 * dens)
        for _ in range(n):
            cars.append(_car(b, rng, x + rng.normal(0, 0.1), z, speed, dt, oncoming=False))
            z += rng.uniform(9, 25)
    for k in range(lanes):  # oncoming traffic passes us on the left
        speed = -rng.uniform(5, 14) * min(1.5, 0.5 + d)
        z = rng.uniform(10, 40)
        x = -(k + 0.5) * lane_w + (0.35 if k == lanes - 1 else 0.0)
        for _ in range(1 + rng.poisson(2.5 * dens)):
            cars.append(_car(b, rng, x + rng.normal(0, 0.1), z, speed, dt, oncoming=True))
            z += rng.uniform(10, 40)
    # Pedestrians on both pavements, walking along the street (front/back view) or standing.
    for _ in range(rng.poisson(max(3.0, 16 * dens * z_end / 120))):
        s = rng.choice([-1, 1])
        x = s * rng.uniform(road_half + 0.6, facade_x - 0.4)
        speed = rng.choice([-1, 1]) * rng.uniform(0.9, 1.7) * min(1.5, d + 0.3)
        speed = 0.0 if rng.random() < 0.15 else speed  # some stand still
        h = rng.uniform(1.55, 1.9)
        o = b.obj((x, 0, rng.uniform(-5, z_end - 10)), (0, 0, speed), dt)
        b.billboard(o, b.tex(person(rng, height=h, texel=0.02, side_view=False)), 0.66, h)
    # Agents crossing the road ahead (side view) try a few places where no car runs them over.
    crossing = [("person", 1.0, 1.7)] * rng.poisson(1.2 * dens)
    if rng.random() < 0.3 * dens:
        crossing.append(("bicyclist", 3.0, 5.0))
    for kind, lo, hi in crossing:
        s = rng.choice([-1, 1])
        speed = rng.uniform(lo, hi) * (min(1.5, d + 0.3) if kind == "person" else 1.0)
        for _ in range(8):
            start = (s * rng.uniform(0.0, road_half + 1.0) + s * speed * span / 2, 0.0,
                     z_cam[-1] + rng.uniform(10, 40))  # mid-clip somewhere on the road
            if _clear(b, cars, start, (-s * speed, 0, 0), dt, 0.5):
                break
        else:
            continue
        o = b.obj(start, (-s * speed, 0, 0), dt)
        if kind == "person":
            h = rng.uniform(1.55, 1.9)
            tex = b.tex(person(rng, height=h, texel=0.02, side_view=True))
            b.billboard(o, tex, 0.8, h, mirror=s > 0)
        else:
            b.billboard(o, b.tex(bicyclist(rng, texel=0.02, side_view=True)), 1.8, 1.8, mirror=s > 0)
    # Bicyclists along the kerb: one ahead in our direction (always), maybe one oncoming.
    bx = lanes * lane_w - 0.4
    o = b.obj((bx, 0, rng.uniform(10, 35)), (0, 0, rng.uniform(3, 6)), dt)
    b.billboard(o, b.tex(bicyclist(rng, texel=0.02, side_view=False)), 0.7, 1.85)
    if rng.random() < 0.5 * dens:
        o = b.obj((-bx, 0, rng.uniform(15, z_end)), (0, 0, -rng.uniform(3, 6)), dt)
        b.billboard(o, b.tex(bicyclist(rng, texel=0.02, side_view=False)), 0.7, 1.85)
