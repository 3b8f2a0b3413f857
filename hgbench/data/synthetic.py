"""Procedural human-like figures with known joints: an embedded pose dataset (no download).

:func:`render_figure` draws one stick-and-capsule "person" on a random cluttered background
and returns the image with its 14 joints in LSP order (0 right ankle, 1 right knee, 2 right
hip, 3 left hip, 4 left knee, 5 left ankle, 6 right wrist, 7 right elbow, 8 right shoulder,
9 left shoulder, 10 left elbow, 11 left wrist, 12 neck, 13 head top).

Layout and units. The figure is built in its own frame (units of person height, origin at the
hip midpoint, x to the image right, y down, figure upright): a torso (neck, shoulders, hips), a
head ellipse above the neck whose top point *is* the head-top joint, and two-segment arms and
legs with sampled joint angles, segment lengths, limb thickness and foreshortening. The frame
is then scaled to a person height of 40-75 % of the image, rotated in-plane (mostly near
upright, sometimes up to +-45 deg) and placed mostly inside the image. Joints are returned in
image pixels with OpenCV's convention (pixel centres at integer coordinates, x right, y down).

Facing convention (how left/right is decidable without colour coding). About 80 % of figures
face the camera: they get a face (eyes, mouth) and often a V-neck, and their RIGHT shoulder and
hip lie on the image-LEFT side of the neck -> hip-midpoint axis, as in a photo of a person
facing you. The rest face away: the head is hair from behind (no face) and the right side lies
on the image-right side. Mirroring an image and swapping left/right labels maps each kind of
figure onto the same kind, so the rule survives flip augmentation. In the figure frame,
``cross(hip_mid - neck, right_shoulder - neck) > 0`` (image coordinates, y down) iff the figure
faces the camera.

Rendering order: background (smooth colour field, optional stripes/checker/grain texture,
clutter shapes including limb-like bars, optional blur), then the figure in painter's order
(far arms, legs, pelvis, torso, head, near arms, so self-occlusion happens), then
content-independent photometric jitter (gain/offset, sometimes low contrast, blur, noise).
:func:`render_background` returns the same image without the figure.

Only numpy and cv2 are used; the output is a pure function of the ``np.random.Generator``
state (about 1.5 ms per 256 x 256 image on one CPU core).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from hgbench.data.base import PoseAnnotation, PoseDataset
from hgbench.data.keypoints import LSP
from hgbench.data.transforms import box_from_joints

NUM_JOINTS = 14
R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE = range(6)
R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST, NECK, HEAD_TOP = range(6, 14)

SHIFT = 4  # cv2 fixed-point bits: sub-pixel accurate drawing
ONE = 1 << SHIFT
AA = cv2.LINE_AA

FACING_CAMERA_PROB = 0.8
HEIGHT_FRAC = (0.40, 0.75)  # person height (figure-frame unit) / image size
UPRIGHT_PROB, UPRIGHT_SIGMA_DEG, MAX_TILT_DEG = 0.7, 7.0, 45.0
FULLY_INSIDE_PROB, MAX_OVERFLOW = 0.85, 0.2  # else up to 20 % of the figure may leave the image
ACTIVE_POSE_PROB, TURNED_BODY_PROB, FORESHORTEN_PROB = 0.65, 0.25, 0.2
NEAR_ARM_PROB = 0.6  # an arm drawn after (in front of) the torso
LOW_CONTRAST_PROB = 0.15
MIN_FIGURE_CONTRAST = 70.0  # RGB distance between clothes and the background behind them

# Figure-frame proportions (fractions of person height): (low, high) uniform ranges.
TORSO_LEN, NECK_LEN = (0.27, 0.32), (0.03, 0.05)
SHOULDER_HALF_W, HIP_HALF_W = (0.085, 0.12), (0.055, 0.08)
HEAD_RY, HEAD_ASPECT = (0.06, 0.075), (0.75, 0.9)
UPPER_ARM, FOREARM, THIGH, SHIN = (0.15, 0.19), (0.14, 0.17), (0.22, 0.26), (0.21, 0.25)
THICK = {"upper_arm": 0.042, "forearm": 0.035, "thigh": 0.062, "shin": 0.047, "neck": 0.04}
BUILD = (0.75, 1.35)  # multiplies all limb thicknesses

# Limb angles in degrees. Abduction: 0 = hanging down, 90 = sideways out, 180 = straight up,
# negative = across the body. Bend: rotation of the lower segment relative to the upper one.
ARM_RELAXED, ARM_FREE_ABD, ARM_FREE_BEND = (15.0, 10.0), (-50.0, 175.0), (-150.0, 150.0)
LEG_RELAXED, LEG_FREE_ABD, LEG_BEND_SIGMA, LEG_KICK = (5.0, 5.0), (-25.0, 70.0), 45.0, (70.0, 110.0)

SKIN = np.array(
    [[255, 224, 196], [234, 192, 160], [210, 160, 120], [175, 120, 85], [130, 85, 60], [90, 60, 45]], np.float64
)
EYE, MOUTH = (20.0, 20.0, 30.0), (150.0, 30.0, 40.0)
HAIR = np.array(
    [[25, 20, 15], [70, 45, 25], [140, 100, 55], [210, 180, 120], [160, 160, 160], [110, 30, 20]], np.float64
)


def render_figure(rng: np.random.Generator, image_size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one random figure.

    Returns ``(image, joints, visible)``: ``image`` (H, W, 3) uint8 RGB with H == W ==
    ``image_size``; ``joints`` (14, 2) float32 pixel (x, y) in LSP order, OpenCV pixel-centre
    convention; ``visible`` (14,) bool, False only where a joint lies outside
    ``[0, image_size - 1]`` (self-occluded joints are still annotated and visible).
    Right/left follow the facing convention of the module docstring.
    """
    image, joints, visible, _ = render_figure_with_meta(rng, image_size)
    return image, joints, visible


def render_figure_with_meta(
    rng: np.random.Generator, image_size: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """As :func:`render_figure`, plus a dict: ``facing_camera`` (bool), ``rotation_deg`` (in-plane
    tilt, degrees), ``height_px`` (person height, pixels) and ``torso_center`` ((x, y) pixels,
    midway between the neck and the hip midpoint). Consumes the rng exactly like
    :func:`render_figure`, so both give the same image for the same rng state."""
    return _render(rng, image_size, draw_figure=True)


def render_background(rng: np.random.Generator, image_size: int = 256) -> np.ndarray:
    """The image :func:`render_figure` would return for the same rng state, without the figure."""
    return _render(rng, image_size, draw_figure=False)[0]


# --------------------------------------------------------------------------- helpers
def _u(rng, lohi):
    return float(rng.uniform(*lohi))


def _rot(v, deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _fx(p):
    return int(round(p[0] * ONE)), int(round(p[1] * ONE))


def _poly(img, pts, color, edge=None):
    fixed = [np.round(np.asarray(pts) * ONE).astype(np.int32)]
    cv2.fillPoly(img, fixed, color, AA, SHIFT)
    if edge is not None:
        cv2.polylines(img, fixed, True, edge, 1, AA, SHIFT)


def _capsule(img, p0, p1, width, color, light):
    """Thick round-ended segment with a dark outline and a highlight stripe towards ``light``."""
    w = max(1, int(round(width)))
    outline = max(1, int(round(0.12 * w)))
    cv2.line(img, _fx(p0), _fx(p1), _shade(color, 0.55), w + 2 * outline, AA, SHIFT)
    cv2.line(img, _fx(p0), _fx(p1), color, w, AA, SHIFT)
    d = np.asarray(p1, float) - p0
    n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-6)
    off = n * (0.22 * w) * (1.0 if n @ light > 0 else -1.0)
    cv2.line(img, _fx(p0 + off), _fx(p1 + off), _shade(color, 1.25), max(1, w // 4), AA, SHIFT)


def _shade(color, k):
    return tuple(float(min(255.0, c * k + (20.0 if k > 1 else 0.0))) for c in color)


def _ellipse_pts(center, axis, rx, ry, t0=0.0, t1=2 * math.pi, n=28):
    """Points of an ellipse with semi-axis ``ry`` along unit ``axis`` (t = pi/2 is its tip)."""
    t = np.linspace(t0, t1, n)
    perp = np.array([-axis[1], axis[0]])
    return center + np.outer(np.sin(t) * ry, axis) + np.outer(np.cos(t) * rx, perp)


def _colour(rng, avoid):
    """Random RGB colour, preferring ones far from the background colours in ``avoid``."""
    best, best_d = None, -1.0
    for _ in range(8):
        c = rng.uniform(0, 255, 3)
        d = min(np.linalg.norm(c - a) for a in avoid)
        if d > best_d:
            best, best_d = c, d
        if d >= MIN_FIGURE_CONTRAST:
            break
    return tuple(float(x) for x in best)


# --------------------------------------------------------------------------- background
def _background(rng, size):
    """Smooth colour field, optional texture, then 2-14 clutter shapes (incl. limb-like bars)."""
    grid = int(rng.choice([2, 2, 3, 4, 6, 8]))
    small = rng.uniform(0, 255, (grid, grid, 3))
    small += (small.mean(2, keepdims=True) - small) * rng.uniform(0, 1)  # desaturate a bit
    img = cv2.resize(small.astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    kind = rng.integers(4)  # 0 plain, 1 stripes, 2 checker, 3 grain
    if kind:
        if kind == 3:
            small = rng.integers(0, 256, (size // 4, size // 4), dtype=np.uint8)
            tex = cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)
        else:
            period = int(rng.integers(4, 33))
            ramp = (np.arange(size) // period) % 2
            tex = (ramp[None, :] ^ (ramp[:, None] if kind == 2 else 0)).astype(np.uint8) * 255
            rot = cv2.getRotationMatrix2D((size / 2, size / 2), _u(rng, (0, 180)), 1.0)
            tex = cv2.warpAffine(
                np.ascontiguousarray(np.broadcast_to(tex, (size, size))),
                rot,
                (size, size),
                borderMode=cv2.BORDER_REFLECT_101,
            )
        amp = _u(rng, (0.06, 0.25))
        img = cv2.addWeighted(img, 1.0, cv2.cvtColor(tex, cv2.COLOR_GRAY2RGB), amp, -127.5 * amp)
    for _ in range(int(rng.integers(2, 15))):
        c = tuple(float(v) for v in rng.uniform(0, 255, 3))
        p, q = rng.uniform(-0.1, 1.1, (2, 2)) * size
        shape = rng.integers(5)
        if shape == 0:
            cv2.rectangle(img, _fx(p), _fx(q), c, -1 if rng.random() < 0.6 else 2, AA, SHIFT)
        elif shape == 1:
            r = int(_u(rng, (0.02, 0.15)) * size * ONE)
            cv2.circle(img, _fx(p), r, c, -1 if rng.random() < 0.6 else 2, AA, SHIFT)
        elif shape == 2:
            cv2.line(img, _fx(p), _fx(q), c, int(rng.integers(1, 4)), AA, SHIFT)
        else:  # limb-like distractor: one or two round-ended bars with outline and highlight
            light = _rot(np.array([1.0, 0.0]), _u(rng, (0, 360)))
            width = _u(rng, (0.015, 0.05)) * size
            q = p + _rot(np.array([0.0, 1.0]), _u(rng, (0, 360))) * _u(rng, (0.08, 0.2)) * size
            _capsule(img, p, q, width, c, light)
            if shape == 4:
                r = q + _rot(q - p, _u(rng, (-150, 150)))
                _capsule(img, q, r, width * 0.85, c, light)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), _u(rng, (0.8, 2.5)))
    return img


# --------------------------------------------------------------------------- figure
def _limb(rng, root, side, lengths, active, relaxed, free_abd, free_bend, kick=None):
    """Two-segment chain from ``root`` on ``side`` (+1 image-right, -1 image-left of the axis)."""
    if kick is not None and active and rng.random() < 0.08:
        abd, bend = _u(rng, kick), float(rng.normal(0, 30))
    elif active and rng.random() < 0.75:
        abd = _u(rng, free_abd)
        if free_bend:
            bend = _u(rng, free_bend)
        else:
            bend = float(np.clip(rng.normal(0, LEG_BEND_SIGMA), -130, 130))
    else:
        abd, bend = float(rng.normal(*relaxed)), float(rng.normal(0, 10))
    a = math.radians(abd)
    d1 = np.array([side * math.sin(a), math.cos(a)])
    d2 = _rot(d1, side * bend)
    f1, f2 = rng.uniform(0.5, 1.0, 2) if rng.random() < FORESHORTEN_PROB else (1.0, 1.0)
    mid = root + d1 * _u(rng, lengths[0]) * f1
    return mid, mid + d2 * _u(rng, lengths[1]) * f2


def _skeleton(rng, facing):
    """Joints (14, 2) in the figure frame, plus head (centre, axis, rx, ry)."""
    j = np.zeros((NUM_JOINTS, 2))
    right = -1.0 if facing else 1.0  # x side of the figure's right shoulder/hip
    torso = _u(rng, TORSO_LEN)
    width = _u(rng, (0.55, 1.0)) if rng.random() < TURNED_BODY_PROB else 1.0
    sw, hw = _u(rng, SHOULDER_HALF_W) * width, _u(rng, HIP_HALF_W) * width
    j[NECK] = (0.0, -torso)
    active = rng.random() < ACTIVE_POSE_PROB
    chains = (
        (right, R_SHOULDER, R_ELBOW, R_WRIST, R_HIP, R_KNEE, R_ANKLE),
        (-right, L_SHOULDER, L_ELBOW, L_WRIST, L_HIP, L_KNEE, L_ANKLE),
    )
    for side, sh, el, wr, hip, kn, an in chains:
        j[sh] = (side * sw, -torso + _u(rng, (0.02, 0.04)))
        j[hip] = (side * hw, _u(rng, (-0.01, 0.01)))
        j[el], j[wr] = _limb(rng, j[sh], side, (UPPER_ARM, FOREARM), active, ARM_RELAXED, ARM_FREE_ABD, ARM_FREE_BEND)
        j[kn], j[an] = _limb(rng, j[hip], side, (THIGH, SHIN), active, LEG_RELAXED, LEG_FREE_ABD, None, LEG_KICK)
    ry = _u(rng, HEAD_RY)
    rx = ry * _u(rng, HEAD_ASPECT)
    axis = _rot(np.array([0.0, -1.0]), float(np.clip(rng.normal(0, 12), -30, 30)))
    centre = j[NECK] + axis * (_u(rng, NECK_LEN) + ry)
    j[HEAD_TOP] = centre + axis * ry
    return j, (centre, axis, rx, ry)


def _placement(rng, local, size):
    """Sample person height (px) and tilt (deg); return them and the figure-frame -> image map."""
    height = _u(rng, HEIGHT_FRAC) * size
    tilt = (
        float(np.clip(rng.normal(0, UPRIGHT_SIGMA_DEG), -20, 20))
        if rng.random() < UPRIGHT_PROB
        else _u(rng, (-MAX_TILT_DEG, MAX_TILT_DEG))
    )
    c, s = math.cos(math.radians(tilt)), math.sin(math.radians(tilt))
    lin = np.array([[c, -s], [s, c]]) * height
    pts = local @ lin.T
    lo, hi = pts.min(0) - 0.04 * height, pts.max(0) + 0.04 * height  # joints + limb margin
    slack = 0.0 if rng.random() < FULLY_INSIDE_PROB else MAX_OVERFLOW * (hi - lo)
    low, high = -lo - slack, size - 1 - hi + slack
    shift = rng.uniform(np.minimum(low, high), np.maximum(low, high))
    shift = np.where(low <= high, shift, (low + high) / 2)  # figure larger than image: centre it
    return height, tilt, lambda p: np.asarray(p, float) @ lin.T + shift


def _sample_look(rng, img, joints, torso_c):
    """Colours and clothing; clothes are chosen to stand out from the background behind them."""
    size = img.shape[0]

    def bg_at(p):
        x, y = np.clip(np.round(p), 0, size - 1).astype(int)
        return img[y, x].astype(float)

    def palette(table):
        base = table[rng.integers(len(table))]
        return tuple(float(v) for v in np.clip(base + rng.normal(0, 10, 3), 0, 255))

    top = _colour(rng, [bg_at(torso_c), bg_at(joints[R_ELBOW]), bg_at(joints[L_ELBOW])])
    return {
        "top": top,
        "bottom": _colour(rng, [bg_at(joints[R_KNEE]), bg_at(joints[L_KNEE]), np.array(top)]),
        "skin": palette(SKIN),
        "hair": palette(HAIR),
        "shoes": tuple(float(v) for v in rng.uniform(0, 120, 3)),
        "long_sleeves": rng.random() < 0.6,
        "shorts": rng.random() < 0.25,
        "v_neck": rng.random() < 0.7,
        "bald": rng.random() < 0.1,
        "build": _u(rng, BUILD),  # limb thickness factor
        "light": _rot(np.array([1.0, 0.0]), _u(rng, (0, 360))),  # highlight side
        "near_arms": rng.random(2) < NEAR_ARM_PROB,  # (right, left) drawn in front of the torso
        "right_leg_first": rng.random() < 0.5,
    }


def _render(rng, size, draw_figure):
    img = _background(rng, size)
    facing = bool(rng.random() < FACING_CAMERA_PROB)
    local, head = _skeleton(rng, facing)
    height, tilt, to_img = _placement(rng, local, size)
    joints = to_img(local).astype(np.float32)
    visible = np.all((joints >= 0) & (joints <= size - 1), axis=1)
    torso_c = (joints[NECK] + (joints[R_HIP] + joints[L_HIP]) / 2) / 2
    look = _sample_look(rng, img, joints, torso_c)
    if draw_figure:
        _draw_figure(img, local, head, facing, height, to_img, look)
    img = _photometric(rng, img)
    meta = {
        "facing_camera": facing,
        "rotation_deg": tilt,
        "height_px": height,
        "torso_center": (float(torso_c[0]), float(torso_c[1])),
    }
    return img, joints, visible, meta


def _draw_figure(img, loc, head, facing, height, to_img, look):
    """Painter's order: far arms, legs, pelvis, torso, neck, head (+face or hair), near arms.

    Geometry is given in the figure frame (``loc``, ``head``) and mapped by ``to_img``.
    """
    j = to_img(loc)
    top, bottom, skin, light = look["top"], look["bottom"], look["skin"], look["light"]
    px = {k: t * look["build"] * height for k, t in THICK.items()}  # limb widths in pixels
    right = -1.0 if facing else 1.0
    lat, up = np.array([right, 0.0]), np.array([0.0, -1.0])  # figure's right side, figure's up

    def arm(sh, el, wr):
        _capsule(img, j[sh], j[el], px["upper_arm"], top, light)
        _capsule(img, j[el], j[wr], px["forearm"], top if look["long_sleeves"] else skin, light)
        d = (j[wr] - j[el]) / (np.linalg.norm(j[wr] - j[el]) + 1e-6)
        hand = j[wr] + d * px["forearm"] * 0.6
        cv2.circle(img, _fx(hand), int(px["forearm"] * 0.75 * ONE), skin, -1, AA, SHIFT)

    def leg(hip, kn, an):
        _capsule(img, j[hip], j[kn], px["thigh"], bottom, light)
        _capsule(img, j[kn], j[an], px["shin"], skin if look["shorts"] else bottom, light)
        d = (j[an] - j[kn]) / (np.linalg.norm(j[an] - j[kn]) + 1e-6)
        _capsule(img, j[an], j[an] + d * 0.03 * height, px["shin"] * 1.15, look["shoes"], light)

    arms = [(R_SHOULDER, R_ELBOW, R_WRIST), (L_SHOULDER, L_ELBOW, L_WRIST)]
    legs = [(R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)]
    for a, near in zip(arms, look["near_arms"], strict=True):
        if not near:
            arm(*a)
    for lg in legs if look["right_leg_first"] else legs[::-1]:
        leg(*lg)

    ua, th = THICK["upper_arm"] / 2 * look["build"], THICK["thigh"] / 2 * look["build"]
    rs, ls, rh, lh, neck = loc[R_SHOULDER], loc[L_SHOULDER], loc[R_HIP], loc[L_HIP], loc[NECK]
    waist = neck * 0.4
    pelvis = [
        rh + lat * th + up * 0.03,
        lh - lat * th + up * 0.03,
        lh - lat * th - up * 0.04,
        -up * 0.07,
        rh + lat * th - up * 0.04,
    ]
    _poly(img, to_img(pelvis), bottom, _shade(bottom, 0.55))
    torso = [
        ls - lat * ua + up * ua,
        neck + up * 0.01,
        rs + lat * ua + up * ua,
        rs + lat * ua - up * 2 * ua,
        waist + lat * (abs(rh[0]) + th * 0.6),
        rh + lat * th,
        lh - lat * th,
        waist - lat * (abs(lh[0]) + th * 0.6),
        ls - lat * ua - up * 2 * ua,
    ]
    _poly(img, to_img(torso), top, _shade(top, 0.55))
    if facing and look["v_neck"]:
        _poly(img, to_img([neck + lat * 0.035, neck - lat * 0.035, neck - up * 0.06]), skin)

    centre, axis, rx, ry = head
    cv2.line(img, _fx(j[NECK]), _fx(to_img(centre)), skin, max(1, round(px["neck"])), AA, SHIFT)
    _poly(img, to_img(_ellipse_pts(centre, axis, rx, ry)), skin if facing else look["hair"], _shade(skin, 0.5))
    if facing:
        if not look["bald"]:  # hair cap: the part of the head above a chord at 0.35 ry
            t0 = math.asin(0.35)
            cap = _ellipse_pts(centre, axis, rx, ry, t0, math.pi - t0, 16)
            _poly(img, to_img(cap), look["hair"])
        perp = np.array([-axis[1], axis[0]])
        for side in (-1, 1):
            eye = to_img(centre + axis * 0.08 * ry + perp * side * 0.38 * rx)
            cv2.circle(img, _fx(eye), int(max(0.7, 0.15 * rx * height) * ONE), EYE, -1, AA, SHIFT)
        m0, m1 = (to_img(centre - axis * 0.5 * ry + perp * k * 0.28 * rx) for k in (-1, 1))
        cv2.line(img, _fx(m0), _fx(m1), MOUTH, max(1, round(0.08 * rx * height)), AA, SHIFT)
    else:  # back of the head: all hair except the nape below a chord at -0.55 ry
        t0 = math.asin(0.55)
        nape = _ellipse_pts(centre, axis, rx, ry, math.pi + t0, 2 * math.pi - t0, 12)
        _poly(img, to_img(nape), skin)

    for a, near in zip(arms, look["near_arms"], strict=True):
        if near:
            arm(*a)


def _photometric(rng, img):
    """Content-independent colour gain/offset (sometimes low contrast), blur and sensor noise."""
    contrast = _u(rng, (0.35, 0.6)) if rng.random() < LOW_CONTRAST_PROB else _u(rng, (0.85, 1.15))
    gain = contrast * rng.uniform(0.9, 1.1, 3)
    offset = 128.0 * (1.0 - gain) + rng.uniform(-20, 20)
    img = cv2.transform(img, np.hstack([np.diag(gain), offset[:, None]]))
    if rng.random() < 0.25:
        img = cv2.GaussianBlur(img, (0, 0), _u(rng, (0.5, 1.2)))
    if rng.random() < 0.6:  # uniform luminance noise, +-amp/2 grey levels
        amp = int(rng.integers(6, 28))
        noise = rng.integers(0, amp + 1, img.shape[:2], dtype=np.uint8)
        img = cv2.addWeighted(img, 1.0, cv2.cvtColor(noise, cv2.COLOR_GRAY2RGB), 1.0, -amp / 2)
    return img


class SyntheticDataset(PoseDataset):
    """The embedded default dataset: figures from :func:`render_figure`, LSP's 14-joint
    layout, no download.

    Sample ``i`` of a split is rendered from the seed ``(SPLIT_SEEDS[split], i)`` on a
    ``IMAGE_SIZE`` square image, so the data are the same on every machine; the person crop
    comes from the joints as for LSPET (:func:`hgbench.data.transforms.box_from_joints`).
    Sizes: ``train`` 2,000 samples, ``val`` 200 (``num_samples`` overrides).
    """

    keypoints = LSP
    name = "synthetic"
    IMAGE_SIZE = 256
    SIZES = {"train": 2000, "val": 200}
    SPLIT_SEEDS = {"train": 1, "val": 2}

    def __init__(self, split: str = "train", num_samples: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if split not in self.SIZES:
            raise ValueError(f"synthetic dataset: split must be one of {sorted(self.SIZES)}, got {split!r}")
        self.split = split
        self._len = num_samples if num_samples is not None else self.SIZES[split]
        self._cache: tuple[int, tuple] | None = None

    def __len__(self) -> int:
        return self._len

    def _sample(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if index < 0 or index >= self._len:
            raise IndexError(index)
        if self._cache is None or self._cache[0] != index:  # annotation() and load_image() share a render
            rng = np.random.default_rng((self.SPLIT_SEEDS[self.split], index))
            self._cache = (index, render_figure(rng, self.IMAGE_SIZE))
        return self._cache[1]

    def annotation(self, index: int) -> PoseAnnotation:
        _, joints, visible = self._sample(index)
        center, side = box_from_joints(joints, visible)
        return PoseAnnotation(
            f"{self.split}-{index:05d}", joints.astype(np.float32), visible.astype(bool), center, side
        )

    def load_image(self, index: int) -> np.ndarray:
        return self._sample(index)[0]


SPLITS = tuple(SyntheticDataset.SIZES)
"""The splits :class:`SyntheticDataset` renders (as the other loaders' ``SPLITS``)."""
