"""Procedural CAD models of NeMo's 12 PASCAL3D+ categories, several sub-types each.

Each category has a few styles (a sedan, a van, a pickup, ...); style ``k`` is CAD model ``k + 1``
(``cad_index``), built from primitives (:mod:`nemo_jax.data.scenes.primitives`) with proportions
drawn from a generator seeded by the category and the style only, so the models are the same in
every tree (as a release's CAD folder is). Shape traits that matter for pose are kept: thin parts and
holes (spoked wheels, chair backs with slats, table legs, masts, stands), not only boxes.

Frame and scale: the PASCAL3D+ CAD frame, x to the object's side, y along it with the FRONT at -y
(azimuth 0 looks at the front), z up; centred on the bounding box. The largest extent is about
:data:`SIZES` CAD units (+-8 % per sub-type), chosen so that at NeMo's crop distance 5 (3000-px
focal: 600 px per CAD unit) typical views fill NeMo's per-category crop (car: 0.9 units long,
PASCAL3D+'s car CAD models are about 0.88).
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

from nemo_jax.data.scenes.primitives import (
    Model,
    Part,
    arc_patch,
    assemble,
    box,
    disc,
    ellipsoid,
    hull,
    mirror_x,
    prism,
    revolve,
    ring,
    rounded_box,
    tube,
    wheel_spokes,
)

#: Largest extent (CAD units) of each category's models, before the per-sub-type variation.
SIZES = {
    "aeroplane": 1.4,
    "bicycle": 0.9,
    "boat": 1.3,
    "bottle": 0.75,
    "bus": 1.15,
    "car": 0.9,
    "chair": 0.8,
    "diningtable": 1.1,
    "motorbike": 0.8,
    "sofa": 1.0,
    "train": 1.0,
    "tvmonitor": 0.7,
}


def _wheel(parts, centre, radius, width, axis="x", hub=0.6):
    """A car-like wheel: a rubber cylinder and a metal hub proud of it on both sides."""
    parts.append(Part(disc(centre, axis, radius, width, sections=20), "tyre"))
    parts.append(Part(disc(centre, axis, radius * hub, width * 1.06, sections=16), "hub"))


def _spoked_wheel(parts, centre, radius, tyre, spokes, spoke_radius, rim=True):
    """A bicycle-like wheel in the y-z plane: a torus tyre, a rim, a hub and thin spokes (holes)."""
    parts.append(Part(ring(centre, "x", radius - tyre, tyre, 40, 8), "tyre"))
    inner = radius - 2 * tyre
    if rim:
        parts.append(Part(ring(centre, "x", inner - 0.008, 0.01, 40, 6), "metal"))
    parts.append(Part(disc(centre, "x", 0.03 + 0.2 * spoke_radius, 0.1, sections=10), "metal"))
    for spoke in wheel_spokes(centre, "x", 0.02, inner - 0.01, spokes, spoke_radius, phase=0.3):
        parts.append(Part(spoke, "metal"))


# --------------------------------------------------------------------------- car
def _car(rng, style):
    u = rng.uniform
    length = {"hatchback": u(3.8, 4.2), "van": u(4.8, 5.2)}.get(style, u(4.3, 4.9))
    width = u(1.7, 1.9)
    r = u(0.36, 0.4) if style == "suv" else u(0.3, 0.34)
    z0 = u(0.22, 0.28) if style == "suv" else u(0.14, 0.18)
    z1 = z0 + (u(0.75, 0.85) if style in ("suv", "van") else u(0.55, 0.65))
    cabin_h = {"van": u(0.95, 1.05), "suv": u(0.6, 0.7)}.get(style, u(0.45, 0.55))
    z2 = z1 + cabin_h
    half = length / 2
    body = [
        (-half, z0 + 0.12),
        (-half + 0.15, z0),
        (half - 0.15, z0),
        (half, z0 + 0.12),
        (half, z1 - 0.08),
        (half - 0.25, z1),
        (-half + 0.35, z1),
        (-half, z1 - 0.18),
    ]
    parts = [Part(prism(body, "x", -width / 2, width / 2), "body")]
    hood, trunk, front_slope, rear_slope = {
        "sedan": (0.3, 0.2, 0.6, 0.45),
        "hatchback": (0.25, 0.03, 0.55, 0.2),
        "suv": (0.25, 0.03, 0.45, 0.12),
        "van": (0.12, 0.01, 0.6, 0.05),
        "pickup": (0.27, 0.45, 0.45, 0.05),
    }[style]
    yf, yr = -half + hood * length, half - trunk * length
    cw = width * 0.9
    cabin = [(yf, z1), (yr, z1), (yr - rear_slope, z2), (yf + front_slope, z2)]
    parts.append(Part(prism(cabin, "x", -cw / 2, cw / 2), "glass"))
    roof = [
        (yf + front_slope, z2 - 0.04),
        (yr - rear_slope, z2 - 0.04),
        (yr - rear_slope, z2 + 0.02),
        (yf + front_slope, z2 + 0.02),
    ]
    parts.append(Part(prism(roof, "x", -cw / 2 - 0.01, cw / 2 + 0.01), "body"))
    for sx in (-1, 1):  # pillars
        x = sx * (cw / 2 + 0.005)
        parts.append(Part(tube((x, yf, z1), (x, yf + front_slope, z2), 0.035, 6), "body"))
        parts.append(Part(tube((x, yr, z1), (x, yr - rear_slope, z2), 0.05, 6), "body"))
        ym = (yf + front_slope + yr - rear_slope) / 2
        parts.append(Part(box((0.03, 0.08, z2 - z1), (x, ym, (z1 + z2) / 2)), "body"))
        parts.append(Part(box((0.12, 0.08, 0.1), (sx * (width / 2 + 0.05), yf + 0.1, z1 + 0.08)), "body"))
    if style == "pickup":  # an open bed: floor and walls, a hole seen from above and behind
        wall = 0.06
        parts.append(Part(box((width, half - yr, wall), (0, (yr + half) / 2, z1 + wall / 2)), "body"))
        for sx in (-1, 1):
            parts.append(
                Part(
                    box((wall, half - yr, 0.4), (sx * (width - wall) / 2, (yr + half) / 2, z1 + 0.2)), "body"
                )
            )
        parts.append(Part(box((width, wall, 0.4), (0, half - wall / 2, z1 + 0.2)), "body"))
    axles = (-half + 0.18 * length, half - 0.2 * length)
    for y in axles:
        for sx in (-1, 1):
            _wheel(parts, (sx * (width / 2 - 0.08), y, r), r, 0.2)
    lamp_z = z1 - 0.26
    for sx in (-1, 1):
        parts.append(
            Part(box((0.36, 0.04, 0.13), (sx * (width / 2 - 0.25), -half - 0.005, lamp_z)), "lamp_front")
        )
        parts.append(
            Part(box((0.3, 0.04, 0.12), (sx * (width / 2 - 0.2), half + 0.005, lamp_z + 0.04)), "lamp_rear")
        )
    parts.append(Part(box((width * 0.35, 0.04, 0.16), (0, -half - 0.004, lamp_z - 0.06)), "trim"))
    for sy in (-1, 1):
        parts.append(Part(box((width * 1.01, 0.12, 0.15), (0, sy * half, z0 + 0.09)), "trim"))
        parts.append(Part(box((0.5, 0.03, 0.12), (0, sy * (half + 0.06), z0 + 0.28)), "plate"))
    materials = {
        "body": "paint",
        "glass": "glass",
        "tyre": "rubber",
        "hub": "metal",
        "lamp_front": "lamp_front",
        "lamp_rear": "lamp_rear",
        "trim": "dark",
        "plate": "label",
    }
    return parts, materials, True


# --------------------------------------------------------------------------- bicycle
def _bicycle(rng, style):
    u = rng.uniform
    r = {"bmx": u(0.24, 0.27), "road": u(0.33, 0.35)}.get(style, u(0.32, 0.36))
    tyre = {"road": 0.013, "mountain": 0.028, "bmx": 0.027}.get(style, 0.02)
    wb = {"mountain": u(1.05, 1.12), "bmx": u(0.85, 0.92)}.get(style, u(0.97, 1.04))
    front, rear = np.array([0, -wb / 2, r]), np.array([0, wb / 2, r])
    bb = np.array([0, wb / 2 - (0.36 if style == "bmx" else 0.42), r - 0.06])
    seat_h = {"bmx": 0.32, "road": u(0.58, 0.64)}.get(style, u(0.5, 0.56))
    st = bb + np.array([0, 0.16, seat_h])
    ht_top = np.array([0, -wb / 2 + 0.2, r + (0.42 if style == "bmx" else 0.56)])
    ht_bot = ht_top + np.array([0, 0.05, -0.16])
    tr = 0.018 if style == "road" else 0.022
    parts = []
    for spoke_count, centre in ((16, front), (16, rear)):
        if style == "bmx":
            _spoked_wheel(parts, centre, r, tyre, 5, 0.016)
        else:
            _spoked_wheel(parts, centre, r, tyre, spoke_count, 0.004)
    frame = [(bb, ht_bot), (bb, st)]
    if style == "city":  # step-through: a low second tube instead of the top tube
        frame.append((bb + np.array([0, -0.05, 0.22]), ht_bot + np.array([0, 0.0, 0.05])))
    else:
        frame.append((st - np.array([0, 0.02, 0.06]), ht_top))
    frame.append((ht_bot, ht_top))
    for a, b in frame:
        parts.append(Part(tube(a, b, tr), "frame"))
    for sx in (-1, 1):
        off = np.array([sx * 0.045, 0, 0])
        parts.append(Part(tube(bb + off * 0.6, rear + off, tr * 0.6), "frame"))  # chain stays
        parts.append(Part(tube(st - np.array([0, 0, 0.05]) + off * 0.4, rear + off, tr * 0.6), "frame"))
        parts.append(Part(tube(ht_bot + off * 0.5, front + off, tr * 0.8), "frame"))  # fork
    post_top = st + np.array([0, 0.03, 0.1])
    parts.append(Part(tube(st, post_top, 0.012), "metal"))
    saddle = [
        post_top + np.array(p)
        for p in (
            (0, -0.14, 0.02),
            (0.02, -0.14, 0.04),
            (-0.02, -0.14, 0.04),
            (0.08, 0.08, 0.0),
            (-0.08, 0.08, 0.0),
            (0.08, 0.08, 0.05),
            (-0.08, 0.08, 0.05),
            (0, 0.1, 0.03),
        )
    ]
    parts.append(Part(hull(saddle), "saddle"))
    stem_top = ht_top + np.array([0, -0.05, 0.08 if style != "city" else 0.16])
    parts.append(Part(tube(ht_top, stem_top, 0.014), "metal"))
    half_bar = {"mountain": 0.34, "city": 0.3, "bmx": 0.3}.get(style, 0.21)
    left, right = stem_top + np.array([-half_bar, 0, 0]), stem_top + np.array([half_bar, 0, 0])
    if style == "city":
        left, right = left + np.array([0, 0.12, 0.02]), right + np.array([0, 0.12, 0.02])
        parts.append(Part(tube(stem_top, left, 0.011), "metal"))
        parts.append(Part(tube(stem_top, right, 0.011), "metal"))
    else:
        parts.append(Part(tube(left, right, 0.011), "metal"))
    if style == "road":  # drops
        for end in (left, right):
            parts.append(Part(tube(end, end + np.array([0, -0.08, -0.12]), 0.011), "grip"))
    for end, sx in ((left, -1), (right, 1)):
        parts.append(Part(tube(end, end + np.array([sx * 0.1, 0, 0]), 0.016), "grip"))
    # drivetrain: chainring, crank arms, pedals
    parts.append(Part(ring(bb + np.array([0.06, 0, 0]), "x", 0.09, 0.006, 24, 6), "metal"))
    for sx, ang in ((1, 0.7), (-1, 0.7 + np.pi)):
        end = bb + np.array([sx * 0.08, 0.17 * np.cos(ang), 0.17 * np.sin(ang)])
        parts.append(Part(tube(bb + np.array([sx * 0.07, 0, 0]), end, 0.01), "metal"))
        parts.append(Part(box((0.1, 0.06, 0.02), end + np.array([sx * 0.06, 0, 0])), "grip"))
    parts.append(Part(disc(bb, "x", 0.03, 0.14, sections=10), "metal"))
    if style == "city":  # mudguards as arcs of short tubes, a rack and a basket
        for centre in (front, rear):
            angles = np.linspace(0.15 * np.pi, 0.85 * np.pi, 7)
            pts = [centre + (r + 0.03) * np.array([0, np.cos(a), np.sin(a)]) for a in angles]
            for a, b in zip(pts[:-1], pts[1:], strict=True):
                parts.append(
                    Part(
                        hull(
                            [a + (dx, 0, dz) for dx in (-0.03, 0.03) for dz in (0, 0.006)]
                            + [b + (dx, 0, dz) for dx in (-0.03, 0.03) for dz in (0, 0.006)]
                        ),
                        "frame",
                    )
                )
        parts.append(Part(box((0.16, 0.3, 0.012), rear + np.array([0, 0.02, r + 0.08])), "metal"))
        basket = stem_top + np.array([0, -0.17, -0.12])
        parts.append(Part(box((0.3, 0.22, 0.2), basket), "basket"))
    materials = {
        "tyre": "rubber",
        "metal": "metal",
        "frame": "paint",
        "saddle": "dark",
        "grip": "dark",
        "basket": "wood",
    }
    return parts, materials, True


# --------------------------------------------------------------------------- motorbike
def _motorbike(rng, style):
    u = rng.uniform
    r, minor = {"dirt": (0.36, 0.05), "scooter": (0.2, 0.06)}.get(style, (u(0.3, 0.33), 0.07))
    wb = {"cruiser": u(1.55, 1.65), "scooter": u(1.2, 1.3)}.get(style, u(1.35, 1.45))
    front, rear = np.array([0, -wb / 2, r]), np.array([0, wb / 2, r])
    parts = []
    for centre in (front, rear):
        parts.append(Part(ring(centre, "x", r - minor, minor, 40, 10), "tyre"))
        parts.append(Part(ring(centre, "x", r - 2 * minor - 0.01, 0.015, 40, 6), "metal"))
        parts.append(Part(disc(centre, "x", 0.06, 0.16, sections=12), "metal"))
        if style in ("dirt", "cruiser"):
            for s in wheel_spokes(centre, "x", 0.05, r - 2 * minor - 0.02, 14, 0.005):
                parts.append(Part(s, "metal"))
        else:
            for s in wheel_spokes(centre, "x", 0.05, r - 2 * minor - 0.02, 5, 0.02):
                parts.append(Part(s, "metal"))
            parts.append(
                Part(disc(centre + np.array([0.06, 0, 0]), "x", r * 0.5, 0.01, sections=20), "metal")
            )
    head = np.array([0, -wb / 2 + 0.2, r + (0.5 if style == "scooter" else 0.62)])
    for sx in (-1, 1):
        parts.append(
            Part(
                tube(head + np.array([sx * 0.08, 0, 0]), front + np.array([sx * 0.08, 0, 0]), 0.025), "metal"
            )
        )
    bar_z = {"cruiser": 0.2, "dirt": 0.12}.get(style, 0.06)
    bar = head + np.array([0, 0.05, bar_z])
    parts.append(Part(tube(head, bar, 0.02), "metal"))
    parts.append(
        Part(tube(bar + np.array([-0.38, 0.06, 0]), bar + np.array([0.38, 0.06, 0]), 0.014), "metal")
    )
    for sx in (-1, 1):
        g = bar + np.array([sx * 0.38, 0.06, 0])
        parts.append(Part(tube(g, g + np.array([sx * 0.1, 0.02, 0]), 0.022), "seat"))
        parts.append(Part(box((0.05, 0.08, 0.05), bar + np.array([sx * 0.3, 0.02, 0.1])), "metal"))  # mirrors
    if style == "scooter":
        parts.append(
            Part(
                hull(
                    [
                        (x, y, z)
                        for x in (-0.18, 0.18)
                        for y, z in (
                            (-0.2, r + 0.05),
                            (0.45, r + 0.05),
                            (0.45, r + 0.6),
                            (0.05, r + 0.45),
                            (0.6, r + 0.35),
                        )
                    ]
                ),
                "body",
            )
        )
        parts.append(
            Part(
                hull(
                    [
                        (x, y, z)
                        for x in (-0.22, 0.22)
                        for y, z in (
                            (-wb / 2 + 0.18, r + 0.05),
                            (-wb / 2 + 0.3, r + 0.05),
                            (-wb / 2 + 0.12, r + 0.65),
                            (-wb / 2 + 0.24, r + 0.65),
                        )
                    ]
                ),
                "body",
            )
        )
        parts.append(Part(box((0.3, 0.5, 0.04), (0, -0.15, r - 0.02)), "seat"))
        parts.append(Part(rounded_box((0.3, 0.5, 0.1), (0, 0.22, r + 0.67), 0.04), "seat"))
    else:
        parts.append(Part(rounded_box((0.3, 0.5, 0.36), (0, 0.0, r + 0.06), 0.06), "engine"))
        parts.append(Part(ellipsoid((0, -0.18, r + 0.48), (0.17, 0.3, 0.13)), "body"))
        seat_z = r + (0.38 if style == "cruiser" else 0.46)
        parts.append(Part(rounded_box((0.26, 0.55, 0.09), (0, 0.28, seat_z), 0.04), "seat"))
        parts.append(Part(tube(head, (0, 0.0, r + 0.3), 0.03), "frame"))
        parts.append(Part(tube((0, 0.1, seat_z - 0.05), rear, 0.03), "frame"))
        parts.append(Part(tube((0, 0.15, r + 0.05), rear, 0.03), "frame"))
        if style == "sport":
            parts.append(
                Part(
                    hull(
                        [
                            (x, y, z)
                            for x in (-0.2, 0.2)
                            for y, z in (
                                (-wb / 2 + 0.12, r + 0.3),
                                (-wb / 2 + 0.28, r + 0.1),
                                (-0.1, r + 0.15),
                                (-wb / 2 + 0.2, r + 0.7),
                                (-0.25, r + 0.55),
                            )
                        ]
                    ),
                    "body",
                )
            )
            parts.append(
                Part(
                    hull(
                        [
                            (x, y, z)
                            for x in (-0.12, 0.12)
                            for y, z in (
                                (-wb / 2 + 0.2, r + 0.7),
                                (-wb / 2 + 0.28, r + 0.7),
                                (-wb / 2 + 0.3, r + 0.86),
                            )
                        ]
                    ),
                    "glass",
                )
            )
            parts.append(
                Part(
                    hull(
                        [
                            (x, y, z)
                            for x in (-0.1, 0.1)
                            for y, z in ((0.45, seat_z), (0.45, seat_z - 0.15), (wb / 2 + 0.1, seat_z + 0.1))
                        ]
                    ),
                    "body",
                )
            )
    parts.append(Part(disc(head + np.array([0, -0.1, -0.06]), "y", 0.08, 0.08), "lamp_front"))
    parts.append(Part(box((0.12, 0.03, 0.05), (0, wb / 2 + 0.12, r + 0.42)), "lamp_rear"))
    parts.append(Part(tube((0.13, -0.05, r - 0.06), (0.16, wb / 2 + 0.05, r + 0.08), 0.045, 10), "metal"))
    fender = [front + (r + 0.02) * np.array([0, np.cos(a), np.sin(a)]) for a in np.linspace(0.2, 2.2, 6)]
    for a, b in zip(fender[:-1], fender[1:], strict=True):
        parts.append(
            Part(
                hull(
                    [a + (dx, 0, 0) for dx in (-0.07, 0.07)]
                    + [b + (dx, 0, 0) for dx in (-0.07, 0.07)]
                    + [a * (1, 1, 1) + (0, 0, 0.01)]
                ),
                "body",
            )
        )
    materials = {
        "tyre": "rubber",
        "metal": "metal",
        "body": "paint",
        "seat": "dark",
        "engine": "metal",
        "frame": "dark",
        "glass": "glass",
        "lamp_front": "lamp_front",
        "lamp_rear": "lamp_rear",
    }
    return parts, materials, True


# --------------------------------------------------------------------------- aeroplane
def _wing(x_root, x_tip, y_le_root, chord_root, chord_tip, sweep, z_root, z_tip, thickness):
    """One wing half from ``x_root`` to ``x_tip`` (x > 0): a lens-section hull."""
    pts = []
    for x, y_le, chord, z, t in (
        (x_root, y_le_root, chord_root, z_root, thickness),
        (x_tip, y_le_root + sweep, chord_tip, z_tip, thickness * chord_tip / chord_root),
    ):
        pts += [
            (x, y_le, z),
            (x, y_le + 0.3 * chord, z + t / 2),
            (x, y_le + 0.3 * chord, z - t / 2),
            (x, y_le + chord, z),
        ]
    return hull(pts)


def _aeroplane(rng, style):
    u = rng.uniform
    length = u(0.9, 1.1)
    rf = {"fighter": 0.045, "propeller": 0.05, "jumbo": 0.06}.get(style, 0.05) * length
    half = length / 2
    nose = 0.06 if style == "fighter" else 0.1
    profile = [
        (0, -half),
        (rf * 0.45, -half + 0.02),
        (rf * 0.85, -half + nose * 0.5),
        (rf, -half + nose),
        (rf, half - 0.3 * length),
        (rf * 0.35, half - 0.03),
        (0, half),
    ]
    parts = [Part(revolve(profile, axis="y", sections=20), "body")]
    span = {"fighter": u(0.55, 0.65), "propeller": u(1.15, 1.3), "jumbo": u(0.95, 1.05)}.get(
        style, u(0.9, 1.0)
    ) * length
    if style == "fighter":
        w = _wing(rf * 0.6, span / 2, -0.1 * length, 0.5 * length, 0.06 * length, 0.42 * length, 0, 0, 0.02)
        fin = hull(
            [
                (0, 0.2 * length, rf),
                (0, 0.45 * length, rf),
                (0, 0.47 * length, rf + 0.16 * length),
                (0, 0.4 * length, rf + 0.16 * length),
            ]
            + [(dx, 0.3 * length, rf) for dx in (-0.006, 0.006)]
        )
        for sx in (-1, 1):
            parts.append(Part(fin.copy().apply_translation((sx * rf * 0.8, 0, 0)), "tail"))
        parts.append(
            Part(ellipsoid((0, -half + 0.2 * length, rf * 0.8), (rf * 0.6, 0.1 * length, rf * 0.6)), "glass")
        )
        parts.append(Part(disc((0, half, 0), "y", rf * 0.8, 0.03 * length), "engine"))
    else:
        high = style in ("propeller", "cargo")
        z_wing = rf * 0.85 if high else -rf * 0.45
        dihedral = -0.02 if high else 0.05
        sweep = 0.04 * length if style == "propeller" else 0.22 * span / 2 * 1.2
        chord = (0.13 if style == "propeller" else 0.2) * length
        w = _wing(
            rf * 0.5,
            span / 2,
            -0.08 * length,
            chord,
            chord * 0.35,
            sweep,
            z_wing,
            z_wing + dihedral * span,
            0.12 * chord,
        )
        t_span = 0.35 * span
        tail = _wing(
            rf * 0.3,
            t_span / 2,
            half - 0.17 * length,
            0.1 * length,
            0.04 * length,
            0.05 * length,
            rf * 0.2,
            rf * 0.4,
            0.012 * length,
        )
        parts += [Part(tail, "tail"), Part(mirror_x(tail), "tail")]
        fin = hull(
            [
                (0, half - 0.22 * length, rf * 0.8),
                (0, half - 0.02, rf * 0.6),
                (0, half - 0.02, rf + 0.18 * length),
                (0, half - 0.07 * length, rf + 0.18 * length),
            ]
            + [(dx, half - 0.12 * length, rf) for dx in (-0.008 * length, 0.008 * length)]
        )
        parts.append(Part(fin, "tail"))
        parts.append(
            Part(
                ellipsoid((0, -half + 0.06 * length, rf * 0.45), (rf * 0.75, 0.035 * length, rf * 0.3)),
                "glass",
            )
        )
        if style == "propeller":
            nose_pt = np.array([0, -half - 0.005, 0])
            parts.append(Part(disc(nose_pt, "y", rf * 0.35, 0.02), "engine"))
            for a in (0.3, 0.3 + np.pi):
                tip = nose_pt + 0.13 * length * np.array([np.cos(a), 0, np.sin(a)])
                parts.append(Part(tube(nose_pt, tip, 0.008 * length, 6), "engine"))
            for sx in (-1, 1):  # struts and landing gear
                parts.append(
                    Part(
                        tube(
                            (sx * rf * 0.8, -0.02 * length, -rf * 0.6),
                            (sx * span * 0.22, -0.0 * length, z_wing),
                            0.004 * length,
                            6,
                        ),
                        "engine",
                    )
                )
                foot = np.array([sx * rf * 1.6, -0.1 * length, -rf * 2.2])
                parts.append(
                    Part(tube((sx * rf * 0.7, -0.1 * length, -rf * 0.7), foot, 0.004 * length, 6), "engine")
                )
                parts.append(Part(disc(foot, "x", rf * 0.45, rf * 0.3), "gear"))
        else:
            engines = (0.35, 0.7) if style == "jumbo" else (0.36,)
            for frac in engines:
                for sx in (-1, 1):
                    x = sx * frac * span / 2
                    y = -0.08 * length + sweep * frac - 0.06 * length
                    z = z_wing - (rf * 0.9 if not high else -rf * 0.1)
                    nacelle = revolve(
                        [
                            (0, 0),
                            (rf * 0.55, 0.005),
                            (rf * 0.6, 0.1 * length),
                            (rf * 0.35, 0.16 * length),
                            (0, 0.16 * length),
                        ],
                        centre=(x, y, z),
                        axis="y",
                        sections=16,
                    )
                    parts.append(Part(nacelle, "engine"))
    parts += [Part(w, "wing"), Part(mirror_x(w), "wing")]
    materials = {
        "body": "paint",
        "wing": "metal" if rng.random() < 0.5 else "paint",
        "tail": "paint",
        "glass": "glass",
        "engine": "metal",
        "gear": "rubber",
    }
    return parts, materials, False


# --------------------------------------------------------------------------- chair
def _chair(rng, style):
    u = rng.uniform
    w, d = u(0.42, 0.5), u(0.42, 0.5)
    hs = u(0.7, 0.78) if style == "stool" else u(0.43, 0.48)
    hb = u(0.42, 0.55)
    lt = u(0.03, 0.045)
    parts = []
    if style == "office":
        parts.append(Part(rounded_box((w, d, 0.09), (0, 0, hs), 0.03), "seat"))
        parts.append(
            Part(rounded_box((w * 0.95, 0.08, hb), (0, d / 2 + 0.02, hs + 0.08 + hb / 2), 0.03), "seat")
        )
        parts.append(Part(tube((0, 0.05, hs - 0.02), (0, d / 2 + 0.02, hs + 0.1), 0.02), "frame"))
        parts.append(Part(disc((0, 0, (hs + 0.1) / 2), "z", 0.025, hs - 0.15), "frame"))
        for k in range(5):
            a = 2 * np.pi * k / 5 + 0.3
            end = np.array([0.3 * np.cos(a), 0.3 * np.sin(a), 0.06])
            parts.append(Part(tube((0, 0, 0.09), end, 0.018), "frame"))
            parts.append(Part(ellipsoid(end - (0, 0, 0.03), (0.025, 0.025, 0.025), 1), "wheel"))
        for sx in (-1, 1):
            parts.append(Part(tube((sx * w * 0.45, 0, hs), (sx * w * 0.5, 0, hs + 0.2), 0.012), "frame"))
            parts.append(Part(box((0.05, d * 0.6, 0.03), (sx * w * 0.5, 0, hs + 0.2)), "seat"))
        materials = {"seat": "fabric", "frame": "metal" if rng.random() < 0.5 else "dark", "wheel": "dark"}
        return parts, materials, True
    if style == "stool":
        parts.append(Part(disc((0, 0, hs), "z", w * 0.42, 0.05, sections=24), "seat"))
        for k in range(4):
            a = np.pi / 4 + k * np.pi / 2
            top = np.array([w * 0.3 * np.cos(a), w * 0.3 * np.sin(a), hs - 0.02])
            foot = np.array([w * 0.5 * np.cos(a), w * 0.5 * np.sin(a), 0.0])
            parts.append(Part(tube(top, foot, 0.015), "frame"))
        parts.append(Part(ring((0, 0, 0.28), "z", w * 0.42, 0.012, 32, 6), "frame"))
        back = hs + 0.25
        for sx in (-1, 1):
            parts.append(
                Part(tube((sx * w * 0.25, w * 0.32, hs), (sx * w * 0.28, w * 0.4, back), 0.013), "frame")
            )
        parts.append(Part(box((w * 0.65, 0.03, 0.08), (0, w * 0.41, back)), "seat"))
        materials = {"seat": "wood" if rng.random() < 0.5 else "plastic", "frame": "metal"}
        return parts, materials, True
    seat_t = 0.1 if style == "armchair" else 0.045
    seat_mesh = (
        rounded_box((w, d, seat_t), (0, 0, hs - seat_t / 2), 0.02)
        if style == "armchair"
        else box((w, d, seat_t), (0, 0, hs - seat_t / 2))
    )
    parts.append(Part(seat_mesh, "seat"))
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (w / 2 - lt / 2), sy * (d / 2 - lt / 2)
            top = hs + hb if (sy > 0 and style != "armchair") else hs - seat_t
            parts.append(Part(box((lt, lt, top), (x, y, top / 2)), "frame"))
    if style in ("plain", "armchair"):
        back_t = 0.1 if style == "armchair" else 0.03
        back_mesh = box(
            (w - 2 * lt if style == "plain" else w, back_t, hb * (0.55 if style == "plain" else 0.9)),
            (0, d / 2 - back_t / 2, hs + hb * (0.7 if style == "plain" else 0.47)),
        )
        parts.append(Part(back_mesh, "back"))
    if style == "slats":  # top rail and vertical spindles: holes
        parts.append(Part(box((w - 2 * lt, 0.03, 0.07), (0, d / 2 - lt / 2, hs + hb - 0.04)), "frame"))
        parts.append(Part(box((w - 2 * lt, 0.025, 0.04), (0, d / 2 - lt / 2, hs + 0.08)), "frame"))
        n = int(rng.integers(3, 6))
        for k in range(n):
            x = (k + 1) / (n + 1) * (w - 2 * lt) - (w - 2 * lt) / 2
            parts.append(
                Part(box((0.02, 0.018, hb - 0.12), (x, d / 2 - lt / 2, hs + 0.06 + (hb - 0.12) / 2)), "frame")
            )
    if style in ("plain", "slats"):  # stretchers between the legs
        z = u(0.12, 0.2)
        for sx in (-1, 1):
            x = sx * (w / 2 - lt / 2)
            parts.append(Part(tube((x, -d / 2 + lt, z), (x, d / 2 - lt, z), 0.011, 6), "frame"))
        parts.append(Part(tube((-w / 2 + lt, 0, z + 0.03), (w / 2 - lt, 0, z + 0.03), 0.011, 6), "frame"))
    if style == "armchair":
        for sx in (-1, 1):
            parts.append(Part(box((0.05, d, 0.04), (sx * (w / 2 + 0.025), 0, hs + 0.2)), "frame"))
            parts.append(
                Part(box((0.03, 0.03, 0.2), (sx * (w / 2 + 0.025), -d / 2 + 0.04, hs + 0.1)), "frame")
            )
    wood = rng.random() < 0.6
    materials = {
        "seat": "fabric" if style == "armchair" or rng.random() < 0.3 else ("wood" if wood else "plastic"),
        "frame": "wood" if wood else "metal",
        "back": "fabric" if style == "armchair" else ("wood" if wood else "plastic"),
    }
    return parts, materials, True


# --------------------------------------------------------------------------- diningtable
def _diningtable(rng, style):
    u = rng.uniform
    length = u(1.4, 1.7) if style != "long" else u(2.0, 2.4)
    depth = u(0.8, 0.95)
    h = u(0.72, 0.77)
    t = u(0.03, 0.05)
    parts = []
    if style == "round":
        rad = u(0.5, 0.65)
        parts.append(Part(disc((0, 0, h - t / 2), "z", rad, t, sections=40), "top"))
        parts.append(Part(disc((0, 0, h / 2), "z", 0.06, h - t), "leg"))
        for k in range(4):
            a = np.pi / 4 + k * np.pi / 2
            parts.append(Part(tube((0, 0, 0.04), (0.35 * np.cos(a), 0.35 * np.sin(a), 0.02), 0.03), "leg"))
        return parts, {"top": "wood", "leg": "wood" if rng.random() < 0.6 else "metal"}, True
    parts.append(Part(box((length, depth, t), (0, 0, h - t / 2)), "top"))
    lt = u(0.05, 0.08)
    if style == "trestle":
        for sx in (-1, 1):
            x = sx * (length / 2 - 0.2)
            for sy in (-1, 1):
                parts.append(Part(tube((x, sy * 0.06, h - t), (x, sy * depth * 0.4, 0), 0.03), "leg"))
            parts.append(Part(box((0.06, depth * 0.8, 0.05), (x, 0, 0.025)), "leg"))
        parts.append(Part(box((length - 0.4, 0.06, 0.06), (0, 0, 0.35)), "leg"))
    else:
        for sx in (-1, 1):
            for sy in (-1, 1):
                x, y = sx * (length / 2 - lt / 2 - 0.04), sy * (depth / 2 - lt / 2 - 0.04)
                parts.append(Part(box((lt, lt, h - t), (x, y, (h - t) / 2)), "leg"))
        apron = 0.09
        for sy in (-1, 1):
            parts.append(
                Part(
                    box((length - 0.1, 0.025, apron), (0, sy * (depth / 2 - 0.06), h - t - apron / 2)), "leg"
                )
            )
        for sx in (-1, 1):
            parts.append(
                Part(
                    box((0.025, depth - 0.1, apron), (sx * (length / 2 - 0.06), 0, h - t - apron / 2)), "leg"
                )
            )
    top_material = "wood" if rng.random() < 0.75 else "plastic"
    return parts, {"top": top_material, "leg": "wood" if rng.random() < 0.7 else "metal"}, True


# --------------------------------------------------------------------------- sofa
def _sofa(rng, style):
    u = rng.uniform
    seats = {"loveseat": 2, "armless": 3}.get(style, 3)
    length = seats * u(0.6, 0.7) + (0.0 if style == "armless" else 0.4)
    depth, height, base_h = u(0.85, 0.95), u(0.8, 0.9), u(0.38, 0.44)
    arm_w = 0.0 if style == "armless" else u(0.16, 0.24)
    leg = 0.08
    parts = [
        Part(rounded_box((length, depth, base_h - leg), (0, 0, leg + (base_h - leg) / 2), 0.04), "frame")
    ]
    back_t = u(0.18, 0.25)
    parts.append(
        Part(
            rounded_box(
                (length, back_t, height - leg), (0, depth / 2 - back_t / 2, leg + (height - leg) / 2), 0.06
            ),
            "frame",
        )
    )
    inner = length - 2 * arm_w
    for k in range(seats):
        x = -inner / 2 + (k + 0.5) * inner / seats
        parts.append(
            Part(
                rounded_box(
                    (inner / seats - 0.02, depth - back_t - 0.04, 0.14),
                    (x, -back_t / 2 + 0.0, base_h + 0.07),
                    0.05,
                ),
                "cushion",
            )
        )
        if style != "chesterfield":
            parts.append(
                Part(
                    rounded_box(
                        (inner / seats - 0.03, 0.16, height - base_h - 0.18),
                        (x, depth / 2 - back_t - 0.06, base_h + 0.14 + (height - base_h - 0.18) / 2),
                        0.06,
                    ),
                    "cushion",
                )
            )
    if arm_w:
        arm_h = u(0.55, 0.65) if style != "chesterfield" else height
        for sx in (-1, 1):
            parts.append(
                Part(
                    rounded_box(
                        (arm_w, depth, arm_h - leg),
                        (sx * (length / 2 - arm_w / 2), 0, leg + (arm_h - leg) / 2),
                        0.06,
                    ),
                    "frame",
                )
            )
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                Part(
                    disc((sx * (length / 2 - 0.08), sy * (depth / 2 - 0.08), leg / 2), "z", 0.025, leg), "leg"
                )
            )
    cushion = "=frame" if style in ("three", "chesterfield") else "fabric"  # same cover as the frame
    return parts, {"frame": "fabric", "cushion": cushion, "leg": "dark"}, True


# --------------------------------------------------------------------------- bus
def _bus(rng, style):
    u = rng.uniform
    length = {"minibus": u(5.5, 6.5), "double": u(9.5, 10.5), "school": u(9.0, 10.0)}.get(
        style, u(11.0, 12.5)
    )
    width = u(2.4, 2.55)
    height = {"minibus": u(2.4, 2.7), "double": u(4.2, 4.4), "coach": u(3.4, 3.7)}.get(style, u(2.9, 3.2))
    z0, r = 0.35, u(0.48, 0.52)
    half = length / 2
    nose = 1.4 if style == "school" else 0.0
    body_len = length - nose
    yc = nose / 2
    parts = [Part(rounded_box((width, body_len, height - z0), (0, yc, z0 + (height - z0) / 2), 0.18), "body")]
    if nose:
        parts.append(
            Part(rounded_box((width * 0.8, nose + 0.2, 1.1), (0, -half + nose / 2, z0 + 0.55), 0.1), "body")
        )
    decks = 2 if style == "double" else 1
    deck_h = (height - z0) / decks
    for k in range(decks):
        zw = z0 + deck_h * (k + 0.62)
        wh = deck_h * (0.38 if decks == 2 else 0.4)
        for sx in (-1, 1):
            parts.append(
                Part(
                    box((0.03, body_len * 0.86, wh), (sx * (width / 2 + 0.005), yc + 0.02 * length, zw)),
                    "glass",
                )
            )
        parts.append(
            Part(
                box(
                    (width * 0.86, 0.03, wh * (1.5 if k == decks - 1 and decks == 1 else 1.0)),
                    (0, -half + nose - 0.005, zw - (0.2 if decks == 1 else 0)),
                ),
                "glass",
            )
        )
        parts.append(Part(box((width * 0.7, 0.03, wh * 0.8), (0, half + 0.005, zw)), "glass"))
    parts.append(
        Part(
            box((0.03, 1.0, height * 0.6), (-(width / 2 + 0.01), -half + nose + 1.3, z0 + height * 0.32)),
            "glass",
        )
    )
    parts.append(Part(box((width * 0.6, 0.03, 0.25), (0, -half + nose - 0.006, height - 0.25)), "sign"))
    axles = [-half + nose + 0.22 * body_len, half - 0.2 * body_len]
    if style == "coach":
        axles.append(half - 0.2 * body_len - 1.3)
    for y in axles:
        for sx in (-1, 1):
            _wheel(parts, (sx * (width / 2 - 0.12), y, r), r, 0.3)
    for sx in (-1, 1):
        parts.append(
            Part(box((0.3, 0.03, 0.18), (sx * (width / 2 - 0.3), -half - 0.005, z0 + 0.45)), "lamp_front")
        )
        parts.append(
            Part(box((0.2, 0.03, 0.3), (sx * (width / 2 - 0.2), half + 0.005, z0 + 0.6)), "lamp_rear")
        )
    parts.append(Part(box((width * 1.01, 0.15, 0.3), (0, -half, z0 + 0.1)), "trim"))
    parts.append(Part(box((width * 1.01, 0.15, 0.3), (0, half, z0 + 0.1)), "trim"))
    materials = {
        "body": "paint",
        "glass": "glass",
        "tyre": "rubber",
        "hub": "metal",
        "lamp_front": "lamp_front",
        "lamp_rear": "lamp_rear",
        "trim": "dark",
        "sign": "label",
    }
    return parts, materials, True


# --------------------------------------------------------------------------- train
def _train(rng, style):
    u = rng.uniform
    length = {"tram": u(14, 18), "steam": u(13, 15)}.get(style, u(18, 22))
    width, height = u(2.8, 3.1), u(3.7, 4.1)
    half = length / 2
    z0 = 1.0
    parts = []
    for y in (-half + 0.18 * length, half - 0.18 * length):  # bogies
        parts.append(Part(box((width * 0.7, 2.6, 0.5), (0, y, 0.75)), "under"))
        for dy in (-0.9, 0.9):
            for sx in (-1, 1):
                parts.append(Part(disc((sx * width * 0.36, y + dy, 0.45), "x", 0.45, 0.12), "wheel"))
    if style == "steam":
        parts.append(Part(disc((0, -0.05 * length, z0 + 1.2), "y", 1.0, 0.62 * length), "body"))
        parts.append(Part(disc((0, -half + 0.2, z0 + 1.2), "y", 1.05, 0.4), "under"))
        parts.append(Part(disc((0, -half + 1.2, z0 + 2.5), "z", 0.3, 1.0), "under"))
        parts.append(Part(disc((0, -0.05 * length, z0 + 2.3), "z", 0.35, 0.5), "body"))
        cab = half - 0.14 * length
        parts.append(Part(box((width, 0.28 * length, 2.6), (0, cab, z0 + 1.3)), "cab"))
        parts.append(Part(box((width * 1.05, 0.3 * length, 0.15), (0, cab, z0 + 2.65)), "under"))
        for sx in (-1, 1):
            parts.append(
                Part(box((0.03, 0.15 * length, 0.8), (sx * (width / 2 + 0.01), cab, z0 + 1.7)), "glass")
            )
            for k in range(3):
                c = (sx * (width / 2 - 0.1), -0.25 * length + k * 1.8, 0.9)
                parts.append(Part(disc(c, "x", 0.85, 0.12, sections=24), "wheel"))
        parts.append(
            Part(
                hull(
                    [(x, -half - 0.6, 0.1) for x in (-1.2, 1.2)]
                    + [(x, -half, 1.0) for x in (-1.3, 1.3)]
                    + [(x, -half, 0.1) for x in (-1.3, 1.3)]
                ),
                "under",
            )
        )
        parts.append(Part(disc((0, -half - 0.02, z0 + 1.3), "y", 0.2, 0.05), "lamp_front"))
    else:
        nose = 0.2 * length if style == "highspeed" else 0.0
        parts.append(
            Part(
                rounded_box((width, length - nose, height - z0), (0, nose / 2, z0 + (height - z0) / 2), 0.3),
                "body",
            )
        )
        if nose:
            y0 = -half + nose
            pts = [(x, y0 + 0.3, z) for x in (-width / 2, width / 2) for z in (z0, height)]
            pts += [(x, -half, z0 + 0.3) for x in (-0.5, 0.5)] + [(x, -half + 0.3, z0) for x in (-0.8, 0.8)]
            parts.append(Part(hull(pts), "body"))
            parts.append(
                Part(
                    hull(
                        [(x, y0 - 1.5, z) for x in (-1.0, 1.0) for z in (z0 + 1.65, z0 + 1.68)]
                        + [(x, y0 + 0.35, z) for x in (-1.3, 1.3) for z in (height - 0.3, height - 0.25)]
                    ),
                    "glass",
                )
            )
        else:
            parts.append(Part(box((width * 0.8, 0.04, 1.0), (0, -half - 0.01, height - 1.1)), "glass"))
        band = 1.2 if style == "tram" else 0.8
        for sx in (-1, 1):
            parts.append(
                Part(
                    box(
                        (0.03, (length - nose) * 0.85, band),
                        (sx * (width / 2 + 0.005), nose / 2, height - 1.2),
                    ),
                    "glass",
                )
            )
            parts.append(
                Part(
                    box((0.03, 1.0, 2.0), (sx * (width / 2 + 0.008), nose / 2 + 0.2 * length, z0 + 1.2)),
                    "trim",
                )
            )
        for sx in (-1, 1):
            parts.append(
                Part(
                    box(
                        (0.35, 0.03, 0.2),
                        (sx * (width / 2 - 0.4), -half - 0.01 + (0.3 if nose else 0), z0 + 0.6),
                    ),
                    "lamp_front",
                )
            )
            parts.append(
                Part(box((0.3, 0.03, 0.2), (sx * (width / 2 - 0.4), half + 0.01, z0 + 0.6)), "lamp_rear")
            )
        if style in ("tram", "highspeed"):  # pantograph: thin struts on the roof
            base = np.array([0, 0.1 * length, height])
            top = base + np.array([0, 0.6, 1.2])
            for sx in (-1, 1):
                parts.append(Part(tube(base + (sx * 0.4, -0.8, 0), top + (sx * 0.4, 0, 0), 0.04, 6), "metal"))
            parts.append(Part(tube(top + (-0.8, 0, 0), top + (0.8, 0, 0), 0.05, 6), "metal"))
        if style == "diesel":
            for k in range(3):
                parts.append(Part(disc((0, -0.2 * length + k * 2.5, height + 0.05), "z", 0.5, 0.12), "metal"))
    materials = {
        "body": "paint",
        "cab": "paint",
        "glass": "glass",
        "wheel": "dark",
        "under": "dark",
        "lamp_front": "lamp_front",
        "lamp_rear": "lamp_rear",
        "trim": "paint",
        "metal": "metal",
    }
    return parts, materials, True


# --------------------------------------------------------------------------- boat
def _boat_hull(length, width, depth, bow=0.15, stern=0.85):
    """A V hull, pointed at the bow (-y): the hull of deck outline, chines and keel."""
    half = length / 2
    pts = [(0, -half - bow * length * 0.2, depth + 0.05 * depth)]
    for y, f in ((-half * 0.6, 0.55), (-half * 0.2, 0.9), (half * 0.3, 1.0), (half, stern)):
        pts += [(sx * width / 2 * f, y, depth) for sx in (-1, 1)]
        pts += [(sx * width / 2 * f * 0.8, y, depth * 0.3) for sx in (-1, 1)]
    pts += [(0, -half * 0.7, depth * 0.2), (0, 0, 0), (0, half * 0.95, depth * 0.05)]
    return hull(pts)


def _boat(rng, style):
    u = rng.uniform
    length = {"ship": u(14, 18), "canoe": u(4.5, 5.5), "rowboat": u(3.5, 4.2)}.get(style, u(7, 9))
    width = length * {"canoe": 0.17, "ship": 0.2, "rowboat": 0.38}.get(style, 0.33)
    depth = width * {"ship": 0.6, "canoe": 0.35}.get(style, 0.42)
    parts = [Part(_boat_hull(length, width, depth), "hull")]
    deck = _boat_hull(length * 0.96, width * 0.9, depth * 1.0)
    deck.apply_translation((0, 0, depth * 0.03))
    parts.append(Part(deck, "deck"))
    half = length / 2
    if style == "sailboat":
        mast_y = -0.1 * length
        top = length * u(1.1, 1.3)
        parts.append(Part(tube((0, mast_y, depth), (0, mast_y, depth + top), 0.04 * length / 8, 8), "metal"))
        parts.append(Part(tube((0, mast_y, depth + 0.6), (0, half * 0.85, depth + 0.6), 0.03, 8), "metal"))
        sail = (
            [(dx, mast_y + 0.1, depth + 0.65) for dx in (-0.01, 0.01)]
            + [(dx, half * 0.8, depth + 0.65) for dx in (-0.01, 0.01)]
            + [(dx, mast_y + 0.05, depth + top * 0.95) for dx in (-0.01, 0.01)]
        )
        parts.append(Part(hull(sail), "sail"))
        jib = (
            [(dx, -half * 0.9, depth + 0.2) for dx in (-0.01, 0.01)]
            + [(dx, mast_y - 0.15, depth + 0.4) for dx in (-0.01, 0.01)]
            + [(dx, mast_y - 0.05, depth + top * 0.85) for dx in (-0.01, 0.01)]
        )
        parts.append(Part(hull(jib), "sail"))
        parts.append(
            Part(
                rounded_box((width * 0.5, length * 0.25, 0.5), (0, 0.12 * length, depth + 0.25), 0.1), "cabin"
            )
        )
    elif style == "motorboat":
        cabin_y = -0.05 * length
        parts.append(
            Part(
                rounded_box((width * 0.7, length * 0.35, depth * 0.9), (0, cabin_y, depth * 1.45), 0.15),
                "cabin",
            )
        )
        parts.append(
            Part(
                hull(
                    [(x, cabin_y - length * 0.18, depth * 1.9) for x in (-width * 0.33, width * 0.33)]
                    + [(x, cabin_y - length * 0.28, depth * 1.4) for x in (-width * 0.33, width * 0.33)]
                    + [(x, cabin_y - length * 0.17, depth * 1.4) for x in (-width * 0.33, width * 0.33)]
                ),
                "glass",
            )
        )
        for sx in (-1, 1):
            parts.append(
                Part(
                    box((0.03, length * 0.25, depth * 0.3), (sx * width * 0.355, cabin_y, depth * 1.6)),
                    "glass",
                )
            )
        parts.append(Part(rounded_box((0.35, 0.3, 0.8), (0, half + 0.1, depth * 0.8), 0.08), "motor"))
    elif style == "ship":
        for k, (w_f, l_f) in enumerate(((0.8, 0.45), (0.65, 0.3), (0.5, 0.18))):
            z = depth + (k + 0.5) * 1.8
            parts.append(Part(box((width * w_f, length * l_f, 1.8), (0, 0.08 * length, z)), "cabin"))
            for sx in (-1, 1):
                parts.append(
                    Part(
                        box((0.04, length * l_f * 0.9, 0.5), (sx * width * w_f / 2, 0.08 * length, z + 0.2)),
                        "glass",
                    )
                )
        parts.append(Part(disc((0, 0.15 * length, depth + 6.5), "z", width * 0.12, 2.0), "funnel"))
    elif style in ("rowboat", "canoe"):
        for k in range(2 if style == "rowboat" else 1):
            parts.append(
                Part(
                    box((width * 0.8, 0.25, 0.04), (0, -0.15 * length + k * 0.35 * length, depth * 0.8)),
                    "cabin",
                )
            )
        oar = (width * 0.3, -0.05 * length, depth * 0.9)
        parts.append(Part(tube(oar, (width * 1.3, 0.15 * length, depth * 0.1), 0.03, 6), "cabin"))
    materials = {
        "hull": "paint",
        "deck": "wood",
        "metal": "metal",
        "sail": "sail",
        "cabin": "paint" if style != "ship" else "sail",
        "glass": "glass",
        "motor": "dark",
        "funnel": "paint",
    }
    return parts, materials, False


# --------------------------------------------------------------------------- bottle
def _bottle(rng, style):
    u = rng.uniform
    r = {"jug": u(0.11, 0.13), "sauce": u(0.055, 0.065), "wine": u(0.04, 0.045)}.get(style, u(0.035, 0.045))
    h = {"jug": u(0.28, 0.32), "sauce": u(0.2, 0.22), "wine": u(0.3, 0.32)}.get(style, u(0.22, 0.26))
    if style == "wine":
        prof = [
            (0, 0),
            (r, 0),
            (r, 0.62 * h),
            (0.6 * r, 0.72 * h),
            (0.32 * r, 0.78 * h),
            (0.3 * r, h),
            (0, h),
        ]
    elif style == "beer":
        prof = [
            (0, 0),
            (r, 0),
            (r, 0.58 * h),
            (0.45 * r, 0.75 * h),
            (0.32 * r, 0.92 * h),
            (0.36 * r, h),
            (0, h),
        ]
    elif style == "water":
        prof = [
            (0, 0),
            (r * 0.95, 0),
            (r, 0.05 * h),
            (r, 0.3 * h),
            (r * 0.9, 0.35 * h),
            (r, 0.4 * h),
            (r, 0.7 * h),
            (0.4 * r, 0.88 * h),
            (0.4 * r, h),
            (0, h),
        ]
    elif style == "jug":
        prof = [
            (0, 0),
            (r, 0),
            (r * 1.05, 0.5 * h),
            (r * 0.8, 0.78 * h),
            (0.3 * r, 0.9 * h),
            (0.3 * r, h),
            (0, h),
        ]
    else:  # sauce
        prof = [
            (0, 0),
            (r * 0.8, 0),
            (r, 0.15 * h),
            (r, 0.6 * h),
            (0.5 * r, 0.82 * h),
            (0.25 * r, 0.92 * h),
            (0.25 * r, h),
            (0, h),
        ]
    parts = [Part(revolve(prof, sections=24), "glass")]
    cap_r = prof[-2][0] * 1.12
    parts.append(Part(disc((0, 0, h + 0.01), "z", cap_r, 0.03 * h + 0.01, sections=16), "cap"))
    label_r = r * (0.98 if style == "water" else 1.0) + 0.002
    z0, z1 = (0.15 * h, 0.5 * h) if style != "wine" else (0.2 * h, 0.48 * h)
    parts.append(Part(arc_patch((0, 0, 0), label_r, z0, z1, u(0.7, 1.1), 0.3 * r), "label"))
    if style == "jug":  # a handle on the side
        parts.append(Part(ring((r * 0.95, 0, 0.6 * h), "y", 0.08, 0.012, 24, 6), "glass"))
    materials = {
        "glass": "bottle_glass" if style in ("wine", "beer") else "plastic",
        "cap": "plastic",
        "label": "label",
    }
    return parts, materials, True


# --------------------------------------------------------------------------- tvmonitor
def _tvmonitor(rng, style):
    u = rng.uniform
    w = {"crt": u(0.5, 0.6), "monitor": u(0.55, 0.65)}.get(style, u(1.0, 1.2))
    h = w * (0.75 if style == "crt" else u(0.56, 0.62))
    zc = {"wall": h / 2, "crt": h / 2 + 0.04}.get(style, h / 2 + (0.12 if style == "monitor" else 0.08))
    bezel = 0.03 * w if style != "crt" else 0.08 * w
    thick = 0.04 if style != "crt" else 0.06
    parts = [Part(box((w, thick, h), (0, 0, zc)), "case")]
    parts.append(Part(box((w - 2 * bezel, 0.01, h - 2 * bezel), (0, -thick / 2 - 0.004, zc)), "screen"))
    if style == "crt":
        parts.append(
            Part(
                hull(
                    [(x, thick / 2, z) for x in (-w * 0.48, w * 0.48) for z in (zc - h * 0.48, zc + h * 0.48)]
                    + [(x, 0.75 * w, z) for x in (-w * 0.25, w * 0.25) for z in (zc - h * 0.3, zc + h * 0.2)]
                ),
                "case",
            )
        )
        parts.append(Part(box((w * 0.5, 0.5 * w, 0.04), (0, 0.3 * w, 0.02)), "stand"))
    else:
        parts.append(Part(box((w * 0.7, 0.03, h * 0.6), (0, thick / 2 + 0.015, zc)), "case"))
        if style == "monitor":
            parts.append(Part(tube((0, 0.08, 0.01), (0, 0.05, zc), 0.025), "stand"))
            parts.append(Part(disc((0, 0.05, 0.008), "z", 0.12, 0.016, sections=24), "stand"))
        elif style == "flat":
            parts.append(
                Part(box((0.08, 0.04, zc - h / 2 + 0.05), (0, 0.03, (zc - h / 2 + 0.05) / 2)), "stand")
            )
            parts.append(Part(box((0.35 * w, 0.22, 0.02), (0, 0.0, 0.01)), "stand"))
        elif style == "feet":
            for sx in (-1, 1):
                foot = (sx * w * 0.38, 0.0, 0.0)
                parts.append(Part(tube(foot, (sx * w * 0.36, 0.0, zc - h / 2 + 0.02), 0.012, 6), "stand"))
                parts.append(Part(box((0.05, 0.2, 0.015), foot), "stand"))
    materials = {"case": "dark" if rng.random() < 0.7 else "plastic", "screen": "screen", "stand": "metal"}
    return parts, materials, True


_BUILDERS = {
    "aeroplane": (_aeroplane, ("airliner", "jumbo", "propeller", "fighter", "cargo")),
    "bicycle": (_bicycle, ("road", "mountain", "city", "bmx")),
    "boat": (_boat, ("sailboat", "motorboat", "ship", "rowboat", "canoe")),
    "bottle": (_bottle, ("wine", "beer", "water", "jug", "sauce")),
    "bus": (_bus, ("city", "coach", "double", "minibus", "school")),
    "car": (_car, ("sedan", "hatchback", "suv", "van", "pickup")),
    "chair": (_chair, ("plain", "slats", "armchair", "stool", "office")),
    "diningtable": (_diningtable, ("rect", "round", "trestle", "long")),
    "motorbike": (_motorbike, ("sport", "cruiser", "dirt", "scooter")),
    "sofa": (_sofa, ("three", "loveseat", "armless", "chesterfield")),
    "train": (_train, ("diesel", "highspeed", "tram", "steam")),
    "tvmonitor": (_tvmonitor, ("flat", "monitor", "crt", "wall", "feet")),
}
#: The categories with procedural models (NeMo's 12 PASCAL3D+ categories).
CATEGORIES = tuple(sorted(_BUILDERS))


def styles(category: str) -> tuple[str, ...]:
    """The sub-type names of ``category``; sub-type ``k`` is CAD model ``k + 1``."""
    if category not in _BUILDERS:
        raise ValueError(f"scenes: unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    return _BUILDERS[category][1]


@functools.cache
def cad_models(category: str) -> tuple[Model, ...]:
    """The procedural CAD models of ``category``, one per sub-type (``cad_index`` order).
    Deterministic: the same models in every call, process and tree."""
    builder, names = _BUILDERS[category] if category in _BUILDERS else (None, styles(category))
    out = []
    for k, style in enumerate(names):
        rng = np.random.default_rng([zlib.crc32(category.encode()), k])
        parts, materials, on_ground = builder(rng, style)
        size = SIZES[category] * rng.uniform(0.92, 1.08)
        out.append(assemble(parts, materials, size, on_ground))
    return tuple(out)
