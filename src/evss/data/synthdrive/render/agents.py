"""Textures of the road users: car faces (a car is a box of them), pedestrians and bicyclists.

People are rigid flat sprites in a mid-stride pose, so their flow stays exact (see
:mod:`evss.data.synthdrive.clip`)."""

from __future__ import annotations

import numpy as np

from evss.data.synthdrive.render.textures import BICYCLIST, CAR, PEDESTRIAN, Canvas, Texture, jitter, mirror

CAR_COLOURS = ((0.85, 0.85, 0.85), (0.1, 0.1, 0.11), (0.55, 0.56, 0.58), (0.6, 0.08, 0.07),
               (0.1, 0.18, 0.45), (0.2, 0.3, 0.2), (0.75, 0.7, 0.6), (0.3, 0.3, 0.33),
               (0.9, 0.75, 0.1), (0.4, 0.15, 0.35))


def car_faces(rng: np.random.Generator, *, length: float, width: float, height: float,
              texel: float, oncoming: bool) -> tuple[Texture, Texture, Texture, Texture]:
    """(near end, left side, right side, roof) of a car box; the near end is the rear unless the
    car drives towards the camera. Side textures run along +Z (front at +Z unless oncoming)."""
    body = jitter(rng, CAR_COLOURS[rng.integers(len(CAR_COLOURS))], 0.03)
    glass = np.array((0.12, 0.14, 0.18)) * rng.uniform(0.8, 1.6)
    tyre = (0.05, 0.05, 0.05)
    belt = height * rng.uniform(0.52, 0.6)  # height of the window line above the ground
    clear = 0.18
    # Near end: body, bumper, lights, plate, trapezoid cabin with a window, wheels below.
    end = Canvas(width, height, texel)
    top_w = width * 0.78
    y_belt = height - belt
    end.poly([(0.02, height - clear), (width - 0.02, height - clear), (width, y_belt + 0.1),
              (width - 0.05, y_belt), (0.05, y_belt), (0, y_belt + 0.1)], body, CAR)
    end.poly([(0.1, y_belt), (width - 0.1, y_belt), ((width + top_w) / 2, 0.02),
              ((width - top_w) / 2, 0.02)], body * 0.95, CAR)
    end.poly([(0.2, y_belt - 0.04), (width - 0.2, y_belt - 0.04), ((width + top_w) / 2 - 0.08, 0.1),
              ((width - top_w) / 2 + 0.08, 0.1)], glass, CAR)
    for x in (0.08, width - 0.3):
        end.rect(x, height - 0.36, x + 0.22, height, tyre, CAR)
    end.rect(0.02, height - clear - 0.18, width - 0.02, height - clear, body * 0.45, CAR)  # bumper
    lamp = (0.95, 0.92, 0.8) if oncoming else (0.75, 0.06, 0.05)
    for x in (0.06, width - 0.34):
        end.rect(x, y_belt + 0.1, x + 0.28, y_belt + 0.22, lamp, CAR)
    end.rect(width / 2 - 0.26, height - clear - 0.3, width / 2 + 0.26, height - clear - 0.19,
             (0.9, 0.85, 0.3) if rng.random() < 0.5 else (0.92, 0.92, 0.92), CAR)
    # Side: wheels, body with rounded ends, cabin polygon with windows, door lines.
    side = Canvas(length, height, texel)
    side.poly([(0.05, height - clear), (length - 0.05, height - clear), (length, y_belt + 0.25),
               (length - 0.15, y_belt), (0.15, y_belt), (0, y_belt + 0.25)], body, CAR)
    f0, f1, r0, r1 = 0.22 * length, 0.35 * length, 0.72 * length, 0.82 * length  # cabin outline
    side.poly([(f0, y_belt), (r1, y_belt), (r0, 0.02), (f1, 0.02)], body * 0.95, CAR)
    side.poly([(f0 + 0.12, y_belt - 0.04), (r1 - 0.1, y_belt - 0.04), (r0 - 0.06, 0.1),
               (f1 + 0.06, 0.1)], glass, CAR)
    side.rect(0.5 * (f1 + r0) - 0.04, 0.08, 0.5 * (f1 + r0) + 0.04, y_belt, body * 0.9, CAR)
    for xw in (0.17 * length, 0.83 * length):
        side.ellipse(xw, height - 0.32, 0.32, 0.32, tyre, CAR)
        side.ellipse(xw, height - 0.32, 0.17, 0.17, (0.55, 0.55, 0.57), CAR)
    for xd in (0.5 * (f1 + r0), f0 + 0.1):
        side.line((xd, y_belt), (xd, height - clear - 0.1), 0.02, body * 0.5, CAR)
    roof = Canvas(width * 0.78, (r0 - f1), texel * 2)
    roof.rect(0, 0, width, length, body * 0.85, CAR)
    # Canvas x = 0 is the front (longer hood). Quad s runs along +Z, so a car driving towards +Z
    # (its rear towards the camera) needs the side mirrored to put its front at large Z.
    left = side.texture(rng, noise=0.04, shade=0.85)
    right = side.texture(rng, noise=0.04, shade=0.75)
    if not oncoming:
        left, right = mirror(left), mirror(right)
    return end.texture(rng, noise=0.04), left, right, roof.texture(rng, noise=0.05, shade=1.1)


def person(rng: np.random.Generator, *, height: float, texel: float, side_view: bool) -> Texture:
    """A pedestrian silhouette (front/back or side view, mid-stride); all class Pedestrian."""
    width = 0.8 if side_view else 0.66
    cv = Canvas(width, height, texel)
    skin = jitter(rng, ((0.85, 0.67, 0.55), (0.6, 0.42, 0.3), (0.35, 0.24, 0.18))[rng.integers(3)],
                  0.03)
    shirt = jitter(rng, (rng.random(), rng.random(), rng.random()), 0.05)
    trousers = jitter(rng, ((0.12, 0.14, 0.25), (0.1, 0.1, 0.1), (0.4, 0.4, 0.42), (0.6, 0.52, 0.4))
                      [rng.integers(4)], 0.03)
    hair = jitter(rng, ((0.1, 0.07, 0.05), (0.35, 0.25, 0.12), (0.6, 0.5, 0.3))[rng.integers(3)], 0.03)
    h = height
    cx = width / 2
    hip, shoulder, coat = 0.48 * h, 0.81 * h, rng.random() < 0.35
    y = lambda z: h - z  # noqa: E731  (height above ground -> canvas y)
    if side_view:
        stride = rng.uniform(0.15, 0.3)
        for sx, col in ((stride, trousers * 0.8), (-stride, trousers)):
            cv.poly([(cx - 0.06, y(hip)), (cx + 0.06, y(hip)), (cx + sx + 0.06, y(0.04)),
                     (cx + sx - 0.06, y(0.04))], col, PEDESTRIAN)
            cv.rect(cx + sx - 0.07, y(0.06), cx + sx + 0.12, h, (0.08, 0.07, 0.07), PEDESTRIAN)
        low = hip - (0.15 if coat else 0.0)
        cv.poly([(cx - 0.12, y(low)), (cx + 0.12, y(low)), (cx + 0.1, y(shoulder)),
                 (cx - 0.12, y(shoulder))], shirt, PEDESTRIAN)
        cv.line((cx, y(shoulder - 0.03)), (cx + stride * 0.8, y(hip + 0.02)), 0.08, shirt * 0.85,
                PEDESTRIAN)
    else:
        for sx in (-0.08, 0.08):
            foot = cx + sx * 1.2
            cv.poly([(cx + sx - 0.065, y(hip)), (cx + sx + 0.065, y(hip)), (foot + 0.05, y(0.05)),
                     (foot - 0.05, y(0.05))], trousers, PEDESTRIAN)
            cv.rect(foot - 0.06, y(0.06), foot + 0.06, h, (0.08, 0.07, 0.07), PEDESTRIAN)
        low = hip - (0.2 if coat else 0.0)
        cv.poly([(cx - 0.17, y(low)), (cx + 0.17, y(low)), (cx + 0.21, y(shoulder)),
                 (cx - 0.21, y(shoulder))], shirt, PEDESTRIAN)
        for sx in (-1, 1):
            cv.line((cx + sx * 0.21, y(shoulder - 0.03)), (cx + sx * 0.26, y(hip + 0.02)), 0.08,
                    shirt * 0.85, PEDESTRIAN)
            cv.ellipse(cx + sx * 0.26, y(hip), 0.045, 0.05, skin, PEDESTRIAN)
    cv.rect(cx - 0.04, y(shoulder + 0.05), cx + 0.04, y(shoulder - 0.02), skin, PEDESTRIAN)  # neck
    cv.ellipse(cx, y(0.93 * h), 0.09, 0.115, skin, PEDESTRIAN)
    cv.ellipse(cx, y(0.96 * h), 0.095, 0.075, hair, PEDESTRIAN)
    return cv.texture(rng, noise=0.05, cells=(12.0, 4.0))


def bicyclist(rng: np.random.Generator, *, texel: float, side_view: bool) -> Texture:
    """A rider on a bicycle (side or rear view); rider and bicycle are both class Bicyclist."""
    h = rng.uniform(1.65, 1.85)
    frame = jitter(rng, (rng.random(), rng.random(), rng.random()), 0.05)
    shirt = jitter(rng, (rng.random(), rng.random(), rng.random()), 0.05)
    dark, skin = (0.07, 0.07, 0.08), jitter(rng, (0.8, 0.62, 0.5), 0.04)
    trousers = jitter(rng, (0.15, 0.15, 0.22), 0.03)
    if side_view:
        width = 1.8
        cv = Canvas(width, h, texel)
        r = 0.34
        back, front = (0.38, h - r), (1.42, h - r)
        seat, bar, crank = (0.72, h - 0.9), (1.25, h - 1.0), (0.85, h - r)
        for c in (back, front):
            cv.ellipse(c[0], c[1], r, r, dark, BICYCLIST, thickness_m=0.05)
            cv.line((c[0], c[1] - r), (c[0], c[1] + r), 0.012, (0.6, 0.6, 0.6), BICYCLIST)
        tubes = ((back, crank), (crank, seat), (seat, back), (crank, bar), (seat, bar), (bar, front))
        for a, b in tubes:
            cv.line(a, b, 0.04, frame, BICYCLIST)
        shoulder = (1.0, h - 1.45)
        cv.line((seat[0] - 0.05, seat[1] - 0.05), shoulder, 0.3, shirt, BICYCLIST)
        cv.line(shoulder, (bar[0], bar[1] - 0.02), 0.07, shirt * 0.85, BICYCLIST)
        knee = (1.0, h - 0.75)
        cv.line(seat, knee, 0.13, trousers, BICYCLIST)
        cv.line(knee, (crank[0] + 0.1, crank[1] + 0.1), 0.1, trousers, BICYCLIST)
        cv.ellipse(shoulder[0] + 0.08, shoulder[1] - 0.16, 0.1, 0.11, skin, BICYCLIST)
        cv.ellipse(shoulder[0] + 0.07, shoulder[1] - 0.21, 0.12, 0.07, jitter(rng, (0.2, 0.2, 0.6)),
                   BICYCLIST)  # helmet
    else:
        width = 0.7
        cv = Canvas(width, h, texel)
        cx = width / 2
        cv.rect(cx - 0.022, h - 0.7, cx + 0.022, h, dark, BICYCLIST)  # rear wheel seen edge-on
        cv.line((cx - 0.3, h - 1.02), (cx + 0.3, h - 1.02), 0.03, frame, BICYCLIST)  # handlebar
        for sx in (-1, 1):
            cv.line((cx + sx * 0.07, h - 0.95), (cx + sx * 0.1, h - 0.35), 0.11, trousers, BICYCLIST)
            cv.line((cx + sx * 0.18, h - 1.42), (cx + sx * 0.28, h - 1.05), 0.07, shirt * 0.85,
                    BICYCLIST)
        cv.poly([(cx - 0.16, h - 0.95), (cx + 0.16, h - 0.95), (cx + 0.2, h - 1.45),
                 (cx - 0.2, h - 1.45)], shirt, BICYCLIST)
        cv.ellipse(cx, h - 1.58, 0.095, 0.11, jitter(rng, (0.25, 0.18, 0.12)), BICYCLIST)
    return cv.texture(rng, noise=0.05, cells=(12.0, 4.0))
