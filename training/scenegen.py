"""Synthetic underwater pipeline scenes: 640x480 RGB frames with an exact pipeline mask.

Geometry is ray-cast per pixel (pinhole camera over a seabed plane, a pipe made of short
cylinder segments, rocks as spheres), so the mask is exactly the set of pixels where the
visible pipe is the nearest surface. Image formation follows the underwater model
I = J * exp(-beta_c d) + B_c (1 - exp(-beta_c d)) with vehicle lamps, then sensor effects.
Every random choice comes from one numpy Generator seeded per frame: a frame is a pure
function of (seed, split, index).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

W, H = 640, 480
HFOV_DEG = 75.0
F = (W / 2) / math.tan(math.radians(HFOV_DEG / 2))
MAX_RANGE = 80.0

# Diffuse attenuation per channel (R, G, B) in 1/m, after Jerlov water types as used by
# Akkaynak & Treibitz: red attenuates most; coastal water absorbs blue more than green.
JERLOV = {
    "I": (0.30, 0.045, 0.025),
    "II": (0.36, 0.075, 0.07),
    "1C": (0.40, 0.12, 0.16),
    "3C": (0.46, 0.18, 0.27),
    "5C": (0.55, 0.25, 0.42),
    "7C": (0.66, 0.35, 0.62),
    "9C": (0.82, 0.52, 0.95),
}
TRAIN_WATERS = ["1C", "3C", "5C", "7C"]

# Split -> frame kinds and their weights.
SPLITS = {
    "train": {"pipe": 0.78, "negative": 0.22},
    "val": {"pipe": 0.78, "negative": 0.22},
    "shift_clear": {"pipe": 0.8, "negative": 0.2},
    "shift_turbid": {"pipe": 0.8, "negative": 0.2},
    "ood": {"open_water": 0.25, "plume": 0.25, "wall": 0.25, "overexposed": 0.25},
    # Domain-randomised splits (`make model` since issue 9). Legacy splits above keep their
    # bytes: their code path never touches a style.
    "train_dr": {"pipe": 0.66, "negative": 0.14, "open_water": 0.04, "plume": 0.05, "wall": 0.06, "overexposed": 0.05},
    "val_dr": {"pipe": 0.66, "negative": 0.14, "open_water": 0.04, "plume": 0.05, "wall": 0.06, "overexposed": 0.05},
    "nopipe_dr": {"negative": 0.25, "open_water": 0.2, "plume": 0.2, "wall": 0.2, "overexposed": 0.15},
    "ho_water": {"pipe": 0.85, "negative": 0.15},
    "ho_seabed": {"pipe": 0.85, "negative": 0.15},
    "ho_coating": {"pipe": 1.0},
    "ho_light": {"pipe": 0.85, "negative": 0.15},
}
SPLIT_CODE = {name: i for i, name in enumerate(SPLITS)}

# Families of the randomised generator. One family of each axis is held out of training and
# rendered only in its `ho_*` split (MODEL_CARD.md reports each).
DR_WATERS = ["oceanic", "coastal", "green", "turbid"]          # held out: "murky" (Jerlov 9C x1-1.6, dim)
DR_SEABEDS = ["sand", "mud", "gravel", "rock", "shell"]         # held out: "weed" (vegetated)
DR_COATINGS = ["concrete", "steel", "growth", "fbe", "rust", "wrap"]  # held out: "fouled" (full cover)
DR_LIGHTS = ["lamps"]                                           # 1-4 lamps in random rigs; held out: "daylight" (no lamps, caustics)
HELD_OUT = {"ho_water": ("water", "murky"), "ho_seabed": ("seabed", "weed"),
            "ho_coating": ("coating", "fouled"), "ho_light": ("light", "daylight")}
DR_SPLITS = {"train_dr", "val_dr", "nopipe_dr", *HELD_OUT}


@dataclass
class Style:
    """What the randomised generator varies per frame (drawn from its own RNG stream)."""
    water: str
    seabed: str
    coating: str
    light: str
    bed_mix: np.ndarray   # 3x3 colour mixing of seabed albedo (style perturbation)
    pipe_mix: np.ndarray  # the same for the pipe


def near_identity_mix(rng, amount):
    m = np.eye(3, dtype=np.float32) + rng.normal(0, amount, (3, 3)).astype(np.float32)
    return m / m.sum(1, keepdims=True)


def draw_style(seed: int, split: str, index: int) -> Style:
    srng = np.random.default_rng([seed, SPLIT_CODE[split], index, 99])
    st = Style(water=str(srng.choice(DR_WATERS, p=[0.2, 0.35, 0.2, 0.25])),
               seabed=str(srng.choice(DR_SEABEDS, p=[0.35, 0.2, 0.15, 0.15, 0.15])),
               coating=str(srng.choice(DR_COATINGS, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1])),
               light="lamps",
               bed_mix=near_identity_mix(srng, srng.uniform(0.0, 0.25)),
               pipe_mix=near_identity_mix(srng, srng.uniform(0.0, 0.25)))
    if split in HELD_OUT:
        axis, fam = HELD_OUT[split]
        setattr(st, axis, fam)
    return st


def frame_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The one source of randomness for a frame."""
    return np.random.default_rng([seed, SPLIT_CODE[split], index])


# ----------------------------------------------------------------------------- textures
def fractal_noise(rng, size=(256, 256), octaves=5, base=4, persistence=0.55):
    """Smooth value noise in [0,1] by summing upsampled random grids."""
    out = np.zeros(size, np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = base * 2**o
        grid = rng.random((n, n), dtype=np.float32)
        out += amp * cv2.resize(grid, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
    out /= total
    lo, hi = np.percentile(out, [1, 99])
    return np.clip((out - lo) / max(hi - lo, 1e-6), 0, 1)


def sample_tex(tex, u, v):
    """Sample a wrapping texture at continuous texel coordinates (u: x, v: y)."""
    return cv2.remap(tex, u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_WRAP)


# ----------------------------------------------------------------------------- geometry
@dataclass
class Camera:
    altitude: float
    pitch: float  # radians below horizontal
    origin: np.ndarray = field(init=False)
    dirs: np.ndarray = field(init=False)  # (H, W, 3) unit rays in world frame
    fwd: np.ndarray = field(init=False)
    right: np.ndarray = field(init=False)
    down: np.ndarray = field(init=False)

    def __post_init__(self):
        p = self.pitch
        self.origin = np.array([0.0, 0.0, self.altitude], np.float32)
        self.fwd = np.array([math.cos(p), 0.0, -math.sin(p)], np.float32)
        self.right = np.array([0.0, -1.0, 0.0], np.float32)
        self.down = np.array([-math.sin(p), 0.0, -math.cos(p)], np.float32)
        u = (np.arange(W, dtype=np.float32) + 0.5 - W / 2) / F
        v = (np.arange(H, dtype=np.float32) + 0.5 - H / 2) / F
        uu, vv = np.meshgrid(u, v)
        d = uu[..., None] * self.right + vv[..., None] * self.down + self.fwd
        self.dirs = d / np.linalg.norm(d, axis=-1, keepdims=True)

    def project(self, pts):
        """World points (N,3) -> pixel coords (N,2) and depth along the optical axis."""
        rel = pts - self.origin
        z = rel @ self.fwd
        x = rel @ self.right
        y = rel @ self.down
        zs = np.maximum(z, 1e-3)
        return np.stack([F * x / zs + W / 2, F * y / zs + H / 2], -1), z


def roi_of(cam: Camera, pts, margin=4):
    """Pixel bounding box (y0,y1,x0,x1) that contains the projection of pts, or full frame."""
    uv, z = cam.project(pts)
    if np.any(z < 0.05):
        return 0, H, 0, W
    x0 = int(max(0, math.floor(uv[:, 0].min()) - margin))
    x1 = int(min(W, math.ceil(uv[:, 0].max()) + margin))
    y0 = int(max(0, math.floor(uv[:, 1].min()) - margin))
    y1 = int(min(H, math.ceil(uv[:, 1].max()) + margin))
    return y0, y1, x0, x1


def hit_cylinder(o, d, a, b, r):
    """Nearest outer-surface hit of rays o + t d with the finite cylinder from a to b.

    o: (3,) or (...,3); d: (...,3). Returns t (inf where no hit), axial coordinate s and the
    outward unit normal."""
    axis = b - a
    length = float(np.linalg.norm(axis))
    u = axis / length
    w = o - a
    du = d @ u
    wu = w @ u
    dp = d - du[..., None] * u
    wp = w - wu[..., None] * u if np.ndim(wu) else w - wu * u
    qa = np.einsum("...i,...i->...", dp, dp)
    qb = 2 * np.einsum("...i,...i->...", wp, dp)
    qc = np.einsum("...i,...i->...", wp, wp) - r * r
    disc = qb * qb - 4 * qa * qc
    ok = (disc > 0) & (qa > 1e-9)
    t = (-qb - np.sqrt(np.where(ok, disc, 0))) / (2 * np.maximum(qa, 1e-9))
    s = wu + t * du
    ok &= (t > 1e-4) & (s >= 0) & (s <= length)
    t0 = np.where(ok, t, 0)
    t = np.where(ok, t, np.inf)
    n = wp + t0[..., None] * dp
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    return t.astype(np.float32), s.astype(np.float32), n.astype(np.float32)


def hit_ellipsoid(o, d, c, r, flat):
    """Nearest hit with an ellipsoid of semi-axes (r, r, r*flat): a rock."""
    sc = np.array([1.0, 1.0, 1.0 / flat], np.float32)
    w = (o - c) * sc
    ds = d * sc
    qa = np.einsum("...i,...i->...", ds, ds)
    qb = ds @ w
    qc = float(w @ w) - r * r
    disc = qb * qb - qa * qc
    ok = disc > 0
    t = (-qb - np.sqrt(np.where(ok, disc, 0))) / qa
    ok &= t > 1e-4
    t = np.where(ok, t, np.inf).astype(np.float32)
    p = o + np.where(ok, t, 0)[..., None] * d - c
    n = p * sc * sc
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    return t, n.astype(np.float32)


# ----------------------------------------------------------------------------- scene
def smooth_profile(rng, s, scale, lo, hi):
    """A smooth random function of s with values in [lo, hi]."""
    k = rng.uniform(0.5, 2.0) / scale
    ph = rng.uniform(0, 2 * np.pi, 2)
    v = 0.6 * np.sin(2 * np.pi * k * s + ph[0]) + 0.4 * np.sin(2 * np.pi * 2.3 * k * s + ph[1])
    return lo + (hi - lo) * (v + 1) / 2


class Pipe:
    """A pipeline as a chain of straight cylinder segments along a gently curved centreline."""

    def __init__(self, rng, cam: Camera, material: str, r_range=(0.15, 0.6), burial_p=0.55):
        # Keep the vehicle clear of the pipe: its top stays >= 0.5 m below the camera.
        self.r = min(rng.uniform(*r_range), (cam.altitude - 0.5) / 2)
        self.material = material
        heading = rng.uniform(0, np.pi)
        # Footprint of the optical axis on the seabed; the pipe passes near it.
        reach = cam.altitude / max(math.tan(cam.pitch), 0.25)
        rng_c = math.hypot(reach, cam.altitude)
        half_w = rng_c * math.tan(math.radians(HFOV_DEG / 2))
        centre = np.array([reach, 0.0])
        along = np.array([math.cos(heading), math.sin(heading)])
        normal = np.array([-along[1], along[0]])
        centre = centre + normal * rng.uniform(-0.7, 0.7) * half_w
        curv = 0.0 if rng.random() < 0.5 else rng.uniform(-0.025, 0.025)
        span = 45.0
        # Short segments even for a straight pipe: burial and free spans change along it.
        s = np.linspace(-span / 2, span / 2, 31)
        lat = 0.5 * curv * s**2
        xy = centre + s[:, None] * along + lat[:, None] * normal
        # Burial fraction of the diameter (>=1: fully buried) and free spans above the seabed.
        burial = np.zeros_like(s)
        if rng.random() < burial_p:
            burial = smooth_profile(rng, s, 15.0, rng.uniform(-0.3, 0.3), rng.uniform(0.3, 1.2))
            burial = np.clip(burial, 0, 1.2)
        lift = np.zeros_like(s)
        if rng.random() < 0.25:
            c0, wdt = rng.uniform(-8, 8), rng.uniform(2, 8)
            room = max(0.0, cam.altitude - 0.5 - 2 * self.r)
            lift = min(rng.uniform(0.1, 0.6), room) * np.exp(-(((s - c0) / wdt) ** 4))
            burial = burial * (lift < 0.02)
        z = self.r - 2 * self.r * burial + lift
        self.pts = np.column_stack([xy, z]).astype(np.float32)
        self.s = s.astype(np.float32)
        self.centre, self.along, self.normal, self.curv = centre, along, normal, curv

    def segments(self):
        for i in range(len(self.pts) - 1):
            yield i, self.pts[i], self.pts[i + 1]


def intersect_pipe(cam, pipe, roi_pad=1.0):
    """Nearest hit of camera rays with the pipe: t, normal, s (along), phi (around)."""
    t_best = np.full((H, W), np.inf, np.float32)
    n_best = np.zeros((H, W, 3), np.float32)
    s_best = np.zeros((H, W), np.float32)
    phi_best = np.zeros((H, W), np.float32)
    r = pipe.r
    for i, a, b in pipe.segments():
        if min(a[2], b[2]) + r < -0.01:
            continue  # entirely below the seabed
        rel = np.array([a - cam.origin, b - cam.origin])
        if np.all(np.linalg.norm(rel, axis=1) > MAX_RANGE):
            continue
        corners = np.array([p + np.array(o) * r * roi_pad for p in (a, b)
                            for o in [(1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1),
                                      (-1, 1, 1), (-1, 1, -1), (-1, -1, 1), (-1, -1, -1)]])
        y0, y1, x0, x1 = roi_of(cam, corners)
        if y1 <= y0 or x1 <= x0:
            continue
        d = cam.dirs[y0:y1, x0:x1]
        t, s, n = hit_cylinder(cam.origin, d, a, b, r)
        p_z = cam.origin[2] + t * d[..., 2]
        t = np.where(p_z > 0, t, np.inf)  # below the seabed: buried, not visible
        closer = t < t_best[y0:y1, x0:x1]
        if not closer.any():
            continue
        t_best[y0:y1, x0:x1][closer] = t[closer]
        n_best[y0:y1, x0:x1][closer] = n[closer]
        s_best[y0:y1, x0:x1][closer] = (pipe.s[i] + s)[closer]
        # angle around the axis, measured from "up"
        up = np.array([0, 0, 1], np.float32)
        side = np.cross(b - a, up)
        side /= max(np.linalg.norm(side), 1e-9)
        phi = np.arctan2(n @ side, n @ up)
        phi_best[y0:y1, x0:x1][closer] = phi[closer]
    return t_best, n_best, s_best, phi_best


def occluded_by_pipe(points, light, pipe):
    """Boolean mask: the segment from each point to the light crosses the pipe."""
    shp = points.shape[:-1]
    pts = points.reshape(-1, 3)
    hit = np.zeros(len(pts), bool)
    # Only points within the pipe's possible shadow length of its centreline can be shadowed.
    rel = pts[:, :2] - pipe.centre
    s_pt = rel @ pipe.along
    lat = np.abs(rel @ pipe.normal - 0.5 * pipe.curv * s_pt**2)
    top = float(pipe.pts[:, 2].max()) + pipe.r
    light = np.broadcast_to(light, pts.shape)
    horiz = np.linalg.norm(light[:, :2] - pts[:, :2], axis=1)
    reach = pipe.r + top * horiz / np.maximum(light[:, 2], 0.2) + 0.05
    cand = np.nonzero(lat < reach)[0]
    if len(cand) == 0:
        return hit.reshape(shp)
    p = pts[cand]
    to_l = light[cand] - p
    dist = np.linalg.norm(to_l, axis=1)
    d = to_l / dist[:, None]
    sc = s_pt[cand]
    sh = np.zeros(len(cand), bool)
    for i, a, b in pipe.segments():
        if min(a[2], b[2]) + pipe.r < 0:
            continue
        lo, hi = pipe.s[i], pipe.s[i + 1]
        near = np.nonzero((sc > lo - reach[cand]) & (sc < hi + reach[cand]))[0]
        if len(near) == 0:
            continue
        t, _, _ = hit_cylinder(p[near], d[near], a, b, pipe.r)
        sh[near] |= t < dist[near]
    hit[cand] = sh
    return hit.reshape(shp)


# ----------------------------------------------------------------------------- materials
SEABEDS = {
    "sand": ((0.55, 0.75), (0.48, 0.65), (0.32, 0.48)),
    "mud": ((0.22, 0.38), (0.20, 0.33), (0.15, 0.26)),
    "gravel": ((0.30, 0.50), (0.30, 0.46), (0.26, 0.40)),
}


def uniform3(rng, ranges):
    return np.array([rng.uniform(*r) for r in ranges], np.float32)


def water_for(rng, split):
    """Attenuation beta (1/m, RGB), water-type name and backscatter colour."""
    if split == "shift_clear":
        a, b = JERLOV["I"], JERLOV["II"]
        name = "oceanic I-II"
        beta = np.array(a) + rng.random() * (np.array(b) - np.array(a))
    elif split == "shift_turbid":
        name = "9C x1.0-1.6"
        beta = np.array(JERLOV["9C"]) * rng.uniform(1.0, 1.6)
    else:
        i = rng.integers(0, len(TRAIN_WATERS) - 1)
        a, b = JERLOV[TRAIN_WATERS[i]], JERLOV[TRAIN_WATERS[i + 1]]
        name = f"{TRAIN_WATERS[i]}-{TRAIN_WATERS[i + 1]}"
        beta = np.array(a) + rng.random() * (np.array(b) - np.array(a))
    beta = (beta * rng.uniform(0.9, 1.1, 3)).astype(np.float32)
    # Veiling light is brightest in the colour the water attenuates least.
    tint = (beta.min() / beta) ** 0.8 * rng.uniform(0.85, 1.15, 3)
    level = rng.uniform(0.04, 0.3) * (1.8 if split == "shift_turbid" else 1.0)
    return beta, name, (tint / tint.max() * level).astype(np.float32)


def water_dr(rng, st: Style):
    """Attenuation, name and veiling light for the randomised generator's water families."""
    fam = st.water
    if fam == "oceanic":
        a, b = np.array(JERLOV["I"]), np.array(JERLOV["1C"])
    elif fam == "coastal":
        a, b = np.array(JERLOV["1C"]), np.array(JERLOV["5C"])
    elif fam == "green":  # yellow substance: blue absorbed, green clearest
        a, b = np.array((0.42, 0.10, 0.30)), np.array((0.6, 0.22, 0.6))
    elif fam == "turbid":
        a, b = np.array(JERLOV["5C"]), np.array(JERLOV["7C"]) * 1.25
    else:  # murky: held out
        a, b = np.array(JERLOV["9C"]), np.array(JERLOV["9C"]) * 1.6
    beta = (a + rng.random() * (b - a)) * rng.uniform(0.75, 1.3, 3)
    beta = beta.astype(np.float32)
    tint = (beta.min() / beta) ** rng.uniform(0.4, 1.2) * rng.uniform(0.75, 1.25, 3)
    level = rng.uniform(0.03, 0.45) * (1.8 if fam == "murky" else 1.0)
    return beta, fam, (tint / tint.max() * level).astype(np.float32)


SEABEDS_DR = {
    "rock": ((0.25, 0.45), (0.24, 0.42), (0.2, 0.38)),
    "shell": ((0.6, 0.85), (0.58, 0.8), (0.5, 0.72)),
    "weed": ((0.4, 0.6), (0.38, 0.55), (0.28, 0.42)),
}


def seabed_albedo(rng, x, y, kind):
    base = uniform3(rng, SEABEDS[kind] if kind in SEABEDS else SEABEDS_DR[kind])
    coarse = fractal_noise(rng, (128, 128), octaves=4, base=2)
    fine = fractal_noise(rng, (128, 128), octaves=4, base=4)
    c_scale, f_scale = 128 / rng.uniform(10, 30), 128 / rng.uniform(0.8, 2.5)
    cn = sample_tex(coarse, x * c_scale, y * c_scale)
    fn = sample_tex(fine, x * f_scale, y * f_scale)
    shade = 0.7 + 0.35 * cn + 0.25 * (fn - 0.5)
    alb = base * shade[..., None]
    if kind == "gravel" or rng.random() < 0.2:
        stones = (rng.random((96, 96)) < 0.35).astype(np.float32) * rng.uniform(0.3, 1.2, (96, 96)).astype(np.float32)
        s_scale = 96 / rng.uniform(0.4, 1.2)
        sn = sample_tex(stones, x * s_scale, y * s_scale)
        alb = alb * (0.75 + 0.45 * sn[..., None])
    # A little colour variation: shells, algae film, sediment.
    hue = sample_tex(coarse[::-1].copy(), x * c_scale * 0.7, y * c_scale * 0.7)
    alb = alb * (1 + 0.12 * (hue[..., None] - 0.5) * np.array([1.0, -0.3, -0.8], np.float32))
    if kind == "shell":  # pale shell hash with bright fragments
        frag = sample_tex((rng.random((128, 128)) < 0.15).astype(np.float32), x * 128 / 0.6, y * 128 / 0.6)
        alb = alb * (0.85 + 0.4 * frag[..., None])
    elif kind == "weed":  # vegetated patches: dark green-brown fronds over sand
        patch = sample_tex(fractal_noise(rng, (128, 128), 4, 3), x * 128 / rng.uniform(3, 8), y * 128 / rng.uniform(3, 8))
        fr = sample_tex(fractal_noise(rng, (128, 128), 3, 16), x * 128 / 0.5, y * 128 / 0.5)
        cover = np.clip((patch - rng.uniform(0.3, 0.6)) * 5, 0, 1) * (0.6 + 0.4 * fr)
        wcol = uniform3(rng, ((0.06, 0.2), (0.12, 0.3), (0.03, 0.12)))
        alb = alb * (1 - cover[..., None]) + wcol * (0.6 + 0.8 * fr[..., None]) * cover[..., None]
    return np.clip(alb, 0.02, 0.95).astype(np.float32)


def ripple_normals(rng, x, y):
    """Seabed normal with sand ripples (bump mapping of a height field)."""
    if rng.random() < 0.45:
        return np.dstack([np.zeros_like(x), np.zeros_like(x), np.ones_like(x)])
    lam = rng.uniform(0.08, 0.6)
    amp = lam * rng.uniform(0.03, 0.12)
    ang = rng.uniform(0, np.pi)
    k = 2 * np.pi / lam
    warp = fractal_noise(rng, (64, 64), octaves=3, base=2)
    ph = k * (x * math.cos(ang) + y * math.sin(ang)) + 3.0 * sample_tex(warp, x * 64 / 12, y * 64 / 12)
    dh = amp * k * np.cos(ph)
    n = np.dstack([-dh * math.cos(ang), -dh * math.sin(ang), np.ones_like(x)])
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)


def pipe_albedo(rng, pipe, s, phi):
    mat = pipe.material
    u = s * 40.0  # texels per metre along
    v = (phi + np.pi) / (2 * np.pi) * 128.0
    noise = fractal_noise(rng, (128, 128), octaves=5, base=4)
    tex = sample_tex(noise, u % 128, v)
    if mat == "concrete":
        base = uniform3(rng, ((0.45, 0.65), (0.43, 0.6), (0.38, 0.55)))
        alb = base * (0.75 + 0.45 * tex)[..., None]
        # Field-joint gaps between concrete sections every ~12 m.
        joint = np.abs(((s / rng.uniform(11, 13)) % 1.0) - 0.5) > 0.49
        alb = np.where(joint[..., None], alb * 0.45, alb)
    elif mat == "fbe":  # fusion-bonded epoxy: dark green / red-brown / blue, smooth
        colours = [(0.12, 0.3, 0.15), (0.35, 0.12, 0.08), (0.1, 0.15, 0.35), (0.25, 0.25, 0.22)]
        base = np.array(colours[rng.integers(len(colours))], np.float32) * rng.uniform(0.7, 1.3)
        alb = base * (0.92 + 0.12 * tex)[..., None]
    elif mat == "rust":  # bare corroding steel: mottled orange-brown
        rust = sample_tex(fractal_noise(rng, (128, 128), 5, 8), (u * 2.3) % 128, v)
        alb = np.array([0.45, 0.22, 0.1], np.float32) * (0.5 + 0.8 * rust[..., None]) + \
            np.array([0.2, 0.2, 0.2], np.float32) * (1 - rust[..., None]) * 0.5
    elif mat == "wrap":  # wrapped / insulated line with helical tape seams
        base = uniform3(rng, ((0.1, 0.9), (0.1, 0.9), (0.1, 0.9)))
        helix = np.abs(((u / rng.uniform(3, 10) + v / 128.0) % 1.0) - 0.5) > 0.46
        alb = base * (0.85 + 0.2 * tex)[..., None]
        alb = np.where(helix[..., None], alb * 0.6, alb)
    elif mat == "fouled":  # held out: growth covers the pipe, soft coral / anemone spots
        g = sample_tex(fractal_noise(rng, (128, 128), 5, 6), (u * 1.3) % 128, v)
        gcol = uniform3(rng, ((0.2, 0.5), (0.25, 0.5), (0.1, 0.3)))
        alb = gcol * (0.5 + 0.8 * g[..., None])
        spots = sample_tex((rng.random((128, 128)) < 0.06).astype(np.float32), (u * 3.1) % 128, (v * 2.0) % 128)
        scol = np.array([0.9, 0.85, 0.75] if rng.random() < 0.5 else [0.9, 0.45, 0.2], np.float32)
        alb = alb * (1 - spots[..., None]) + scol * spots[..., None]
        return np.clip(alb, 0.02, 0.95).astype(np.float32), 0.02
    else:  # painted steel
        colours = [(0.85, 0.65, 0.1), (0.8, 0.35, 0.08), (0.08, 0.08, 0.08), (0.5, 0.5, 0.48), (0.7, 0.7, 0.65)]
        base = np.array(colours[rng.integers(len(colours))], np.float32) * rng.uniform(0.8, 1.1)
        alb = base * (0.9 + 0.15 * tex)[..., None]
    if rng.random() < 0.45:  # anode bands (bracelet anodes)
        pitch = rng.uniform(5, 12)
        width = rng.uniform(0.2, 0.45)
        band = ((s % pitch) < width)[..., None]
        alb = np.where(band, np.array([0.6, 0.6, 0.62], np.float32) * (0.8 + 0.3 * tex[..., None]), alb)
    cover = 0.0
    if mat == "growth" or rng.random() < 0.3:  # marine growth patches
        cover = rng.uniform(0.3, 0.95) if mat == "growth" else rng.uniform(0.1, 0.5)
        g = sample_tex(fractal_noise(rng, (128, 128), 5, 4), (u * 1.7) % 128, v)
        patch = np.clip((g - (1 - cover)) * 6, 0, 1)[..., None]
        gcol = uniform3(rng, ((0.2, 0.45), (0.3, 0.5), (0.12, 0.3)))
        alb = alb * (1 - patch) + gcol * (0.7 + 0.5 * g[..., None]) * patch
    return np.clip(alb, 0.02, 0.95).astype(np.float32), (0.5 if mat == "steel" else 0.08) * (1 - cover)


# ----------------------------------------------------------------------------- render
@dataclass
class Lamp:
    pos: np.ndarray
    axis: np.ndarray
    cos_half: float
    power: np.ndarray


def make_lamps(rng, cam):
    lamps = []
    up = -cam.down
    n = 1 if rng.random() < 0.35 else 2
    for i in range(n):
        side = (1 if i == 0 else -1) * rng.uniform(0.15, 0.6)
        pos = cam.origin + cam.right * side + up * rng.uniform(0.0, 0.35)
        axis = cam.fwd + cam.right * rng.uniform(-0.15, 0.15) + cam.down * rng.uniform(-0.1, 0.2)
        axis = axis / np.linalg.norm(axis)
        power = rng.uniform(0.6, 1.4) * np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.8, 1.0)], np.float32)
        lamps.append(Lamp(pos.astype(np.float32), axis.astype(np.float32),
                          math.cos(math.radians(rng.uniform(35, 65))), power))
    return lamps


def make_lamps_dr(rng, cam, st: Style):
    """1-4 lamps in random rigs (side pairs, top bar, single strobe), random cones, colours."""
    if st.light == "daylight":
        return []
    lamps = []
    up = -cam.down
    n = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.45, 0.15, 0.15]))
    warm = rng.uniform(-0.15, 0.15)
    for i in range(n):
        side = rng.uniform(-0.8, 0.8)
        pos = cam.origin + cam.right * side + up * rng.uniform(-0.2, 0.6) + cam.fwd * rng.uniform(-0.3, 0.3)
        axis = cam.fwd + cam.right * rng.uniform(-0.3, 0.3) + cam.down * rng.uniform(-0.2, 0.3)
        axis = axis / np.linalg.norm(axis)
        power = rng.uniform(0.3, 2.0) * np.array([1.0 + warm, rng.uniform(0.9, 1.0), 1.0 - warm], np.float32)
        lamps.append(Lamp(pos.astype(np.float32), axis.astype(np.float32),
                          math.cos(math.radians(rng.uniform(20, 75))), power))
    return lamps


def caustics(rng, x, y):
    """Sunlight focused by surface waves: bright cells of a warped noise, in world coords."""
    a = fractal_noise(rng, (128, 128), 3, 4)
    b = fractal_noise(rng, (128, 128), 3, 4)
    sc = 128 / rng.uniform(0.8, 3.0)
    c = np.abs(sample_tex(a, x * sc, y * sc) - sample_tex(b, x * sc * 1.1 + 17, y * sc * 0.9 + 5))
    return (1 - np.clip(c * rng.uniform(4, 9), 0, 1)) ** 3


def irradiance(lamps, p, n, beta, shadow_fn=None):
    """Lamp light arriving at points p with normals n, attenuated by the water on the way."""
    e = np.zeros(p.shape, np.float32)
    for li, lamp in enumerate(lamps):
        to_l = lamp.pos - p
        dist = np.linalg.norm(to_l, axis=-1)
        ldir = to_l / np.maximum(dist, 1e-6)[..., None]
        cos_a = -(ldir @ lamp.axis)
        cone = np.clip((cos_a - lamp.cos_half) / (1 - lamp.cos_half), 0, 1) ** 0.7
        lam = np.clip(np.einsum("...i,...i->...", n, ldir), 0, 1)
        g = cone * lam / np.maximum(dist, 0.3) ** 2
        if shadow_fn is not None:
            g = g * (1 - 0.92 * shadow_fn(li, lamp))
        e += g[..., None] * lamp.power * np.exp(-beta * dist[..., None])
    return e


def render(seed: int, split: str, index: int):
    """Render one frame. Returns (rgb uint8 HxWx3 after JPEG, mask uint8 0/255, meta dict)."""
    rng = frame_rng(seed, split, index)
    kinds = SPLITS[split]
    kind = str(rng.choice(list(kinds), p=list(kinds.values())))
    st = draw_style(seed, split, index) if split in DR_SPLITS else None
    beta, water, backscatter = water_for(rng, split) if st is None else water_dr(rng, st)
    wall = kind == "wall"
    altitude = rng.uniform(1.0, 5.0) if st is None else rng.uniform(0.8, 7.0)
    pitch = math.radians(rng.uniform(0, 25) if wall else rng.uniform(30, 90) if st is None else rng.uniform(22, 90))
    if kind == "open_water":
        altitude = rng.uniform(40, 200)
    cam = Camera(altitude, pitch)
    lamps = make_lamps(rng, cam) if st is None else make_lamps_dr(rng, cam, st)
    d = cam.dirs
    o = cam.origin
    meta = {"split": split, "index": index, "kind": kind, "water": water,
            "beta": [round(float(b), 4) for b in beta], "altitude_m": round(altitude, 3),
            "pitch_deg": round(math.degrees(pitch), 2)}

    # Seabed plane z = 0.
    t_bed = np.where(d[..., 2] < -1e-4, -o[2] / np.minimum(d[..., 2], -1e-4), np.inf).astype(np.float32)
    t_bed[t_bed > MAX_RANGE] = np.inf
    surf_t = [t_bed]
    bed_kind = str(rng.choice(list(SEABEDS), p=[0.5, 0.3, 0.2]))
    if st is not None:
        bed_kind = st.seabed
        meta.update(style={"water": st.water, "seabed": st.seabed, "coating": st.coating, "light": st.light})
    meta["seabed"] = bed_kind

    # Vertical wall (ship hull / harbour wall) in front of the camera.
    t_wall = np.full((H, W), np.inf, np.float32)
    if wall:
        dist = rng.uniform(0.4, 2.5)
        yaw = math.radians(rng.uniform(-40, 40))
        wn = np.array([-math.cos(yaw), -math.sin(yaw), 0], np.float32)  # faces the camera
        denom = d @ wn
        tw = (-(dist) - (o @ wn)) / np.where(np.abs(denom) > 1e-6, denom, 1e-6)
        t_wall = np.where((denom < -1e-6) & (tw > 0), tw, np.inf).astype(np.float32)
        meta["wall_distance_m"] = round(dist, 3)
    surf_t.append(t_wall)

    # Pipe.
    has_pipe = kind == "pipe" or (kind == "overexposed" and rng.random() < 0.7)
    if st is not None and split == "nopipe_dr":
        has_pipe = False
    pipe = None
    t_pipe = np.full((H, W), np.inf, np.float32)
    if has_pipe:
        mat = str(rng.choice(["concrete", "steel", "growth"], p=[0.45, 0.3, 0.25]))
        if st is None:
            pipe = Pipe(rng, cam, mat)
        else:
            mat = st.coating
            # A pipe is never drawn thinner than a cable could be, nor so far off that it is a
            # few pixels wide: such labels cannot be learned, only guessed (cable or pipe?).
            pipe = Pipe(rng, cam, mat, r_range=(max(0.1, 0.035 * altitude), 0.7), burial_p=0.6)
        t_pipe, n_pipe, s_pipe, phi_pipe = intersect_pipe(cam, pipe)
        meta.update(pipe_material=mat, pipe_diameter_m=round(2 * pipe.r, 3))
    surf_t.append(t_pipe)

    # Rocks as partly embedded spheres, placed on seabed pixels.
    t_rock = np.full((H, W), np.inf, np.float32)
    n_rock = np.zeros((H, W, 3), np.float32)
    n_rocks = 0 if kind == "open_water" else int(rng.integers(0, 8 if bed_kind != "gravel" else 25))
    if st is not None and kind != "open_water":
        n_rocks = int(rng.integers(0, {"rock": 60, "gravel": 30}.get(bed_kind, 12)))
    for _ in range(n_rocks):
        py, px = int(rng.integers(0, H)), int(rng.integers(0, W))
        if not np.isfinite(t_bed[py, px]) or t_bed[py, px] > 25:
            continue
        c_xy = o + t_bed[py, px] * d[py, px]
        r = rng.uniform(0.04, 0.35) * (0.5 + altitude / 5)
        flat = rng.uniform(0.35, 0.8)
        c = np.array([c_xy[0], c_xy[1], r * flat * rng.uniform(-0.6, 0.1)], np.float32)
        corners = c + r * np.array([[a, b, e] for a in (-1, 1) for b in (-1, 1) for e in (-1, 1)], np.float32)
        y0, y1, x0, x1 = roi_of(cam, corners)
        if y1 <= y0 or x1 <= x0:
            continue
        t, n = hit_ellipsoid(o, d[y0:y1, x0:x1], c, r, flat)
        t = np.where(o[2] + t * d[y0:y1, x0:x1, 2] > 0, t, np.inf)
        closer = t < t_rock[y0:y1, x0:x1]
        t_rock[y0:y1, x0:x1][closer] = t[closer]
        n_rock[y0:y1, x0:x1][closer] = n[closer]
    surf_t.append(t_rock)

    # Linear distractors: a cable lying on the seabed (crossing over the pipe if there is one).
    t_cable = np.full((H, W), np.inf, np.float32)
    n_cable = np.zeros((H, W, 3), np.float32)
    want_cable = kind in ("pipe", "negative") and rng.random() < (0.35 if kind == "negative" else 0.15)
    if st is not None:
        want_cable = kind in ("pipe", "negative") and rng.random() < (0.45 if kind == "negative" else 0.25)
    if want_cable:
        rc = rng.uniform(0.012, 0.05) if st is None else rng.uniform(0.008, 0.06)
        if st is not None and pipe is not None:  # a cable stays clearly thinner than the pipe it crosses
            rc = min(rc, 0.45 * pipe.r)
        reach = altitude / max(math.tan(pitch), 0.25)
        hd = rng.uniform(0, np.pi)
        al = np.array([math.cos(hd), math.sin(hd)])
        nm = np.array([-al[1], al[0]])
        c0 = np.array([reach, 0]) + nm * rng.uniform(-2, 2)
        ss = np.linspace(-25, 25, 41)
        xy = c0 + ss[:, None] * al + (rng.uniform(-0.02, 0.02) * ss**2)[:, None] * nm
        z = np.full(len(ss), rc)
        if pipe is not None:  # drape over the pipe where it crosses
            for i, p in enumerate(xy):
                dd = np.min(np.linalg.norm(pipe.pts[:, :2] - p, axis=1))
                if dd < pipe.r * 1.2:
                    z[i] = 2 * pipe.r + rc
        pts = np.column_stack([xy, z]).astype(np.float32)
        for i in range(len(pts) - 1):
            a, b = pts[i], pts[i + 1]
            corners = np.array([p + np.array(q) * rc for p in (a, b) for q in [(1, 1, 1), (-1, -1, -1), (1, -1, 1), (-1, 1, -1)]])
            y0, y1, x0, x1 = roi_of(cam, corners)
            if y1 <= y0 or x1 <= x0:
                continue
            t, _, n = hit_cylinder(o, d[y0:y1, x0:x1], a, b, rc)
            closer = t < t_cable[y0:y1, x0:x1]
            t_cable[y0:y1, x0:x1][closer] = t[closer]
            n_cable[y0:y1, x0:x1][closer] = n[closer]
        meta["cable"] = True
    surf_t.append(t_cable)

    stack = np.stack(surf_t)
    nearest = np.argmin(stack, axis=0)
    t_near = np.min(stack, axis=0)
    hit = np.isfinite(t_near)
    BED, WALL, PIPE, ROCK, CABLE = range(5)
    p = o + np.where(hit, t_near, 0)[..., None] * d

    # Albedo and normals per surface.
    alb = np.zeros((H, W, 3), np.float32)
    nrm = np.zeros((H, W, 3), np.float32)
    spec_k = np.zeros((H, W), np.float32)
    x, y = p[..., 0].astype(np.float32), p[..., 1].astype(np.float32)
    bed = nearest == BED
    if kind != "open_water":
        bed_alb = seabed_albedo(rng, x, y, bed_kind)
        bed_n = ripple_normals(rng, x, y)
        if kind == "negative" and rng.random() < 0.5 or (kind == "pipe" and rng.random() < (0.15 if st is None else 0.3)):
            # Sand ridge or trench: a linear albedo/shading feature, not a pipeline.
            hd = rng.uniform(0, np.pi)
            reach = altitude / max(math.tan(pitch), 0.25)
            off = rng.uniform(-1.5, 1.5)
            dist_l = (x - reach) * -math.sin(hd) + y * math.cos(hd) - off
            wdt = rng.uniform(0.15, 1.0)
            prof = np.exp(-(dist_l / wdt) ** 2)
            trench = rng.random() < 0.5
            bed_alb = bed_alb * (1 + (-0.45 if trench else 0.25) * prof)[..., None]
            slope = -2 * dist_l / wdt**2 * prof * wdt * (0.6 if not trench else -0.6)
            bed_n = bed_n + np.dstack([slope * -math.sin(hd), slope * math.cos(hd), np.zeros_like(slope)])
            bed_n /= np.linalg.norm(bed_n, axis=-1, keepdims=True)
            meta["linear_feature"] = "trench" if trench else "ridge"
        alb[bed], nrm[bed] = bed_alb[bed], bed_n[bed]
    if wall:
        m = nearest == WALL
        wx = p[..., 1] * math.cos(yaw) - p[..., 0] * math.sin(yaw)
        wz = p[..., 2]
        noise = fractal_noise(rng, (128, 128), 5, 4)
        tex = sample_tex(noise, wx * 60, wz * 60)
        if rng.random() < 0.5:  # ship hull: paint, rust streaks, weld seams
            col = np.array([[0.5, 0.12, 0.1], [0.1, 0.1, 0.1], [0.45, 0.45, 0.45], [0.2, 0.3, 0.5]][rng.integers(4)], np.float32)
            streak = sample_tex(noise, wx * 300, wz * 8)
            a = col * (0.8 + 0.3 * tex)[..., None]
            a = a * (1 - 0.5 * (streak > 0.7))[..., None] + np.array([0.45, 0.25, 0.1], np.float32) * 0.5 * (streak > 0.7)[..., None]
            seam = (np.abs((wx % rng.uniform(1, 3)) - 0.02) < 0.015) | (np.abs((wz % rng.uniform(0.8, 2)) - 0.02) < 0.015)
            a = np.where(seam[..., None], a * 0.6, a)
            meta["wall"] = "hull"
        else:  # harbour wall: concrete blocks, joints, barnacles
            bw, bh = rng.uniform(0.5, 1.5), rng.uniform(0.3, 0.8)
            row = np.floor(wz / bh)
            joint = (np.abs(wz - (row + 0.5) * bh) > bh / 2 - 0.02) | (np.abs(((wx + 0.5 * bw * (row % 2)) % bw) - bw / 2) > bw / 2 - 0.02)
            a = np.array([0.55, 0.53, 0.48], np.float32) * (0.7 + 0.5 * tex)[..., None]
            a = np.where(joint[..., None], a * 0.4, a)
            barn = sample_tex((rng.random((96, 96)) < 0.2).astype(np.float32), wx * 200, wz * 200)
            a = a * (1 + 0.4 * barn)[..., None]
            meta["wall"] = "harbour"
        alb[m] = np.clip(a, 0, 0.95)[m]
        nrm[m] = wn
    if st is not None:  # style perturbation of the seabed's colours
        alb = np.clip(alb @ st.bed_mix.T, 0.02, 0.95)
    if pipe is not None:
        m = nearest == PIPE
        pa, ks = pipe_albedo(rng, pipe, s_pipe, phi_pipe)
        if st is not None:
            pa = np.clip(pa @ st.pipe_mix.T * rng.uniform(0.7, 1.3), 0.02, 0.95)
        alb[m], nrm[m], spec_k[m] = pa[m], n_pipe[m], ks
    m = nearest == ROCK
    rock_tex = sample_tex(fractal_noise(rng, (64, 64), 4, 4), x * 60, y * 60)
    alb[m] = (uniform3(rng, ((0.2, 0.45), (0.2, 0.42), (0.18, 0.38))) * (0.6 + 0.7 * rock_tex)[..., None])[m]
    nrm[m] = n_rock[m]
    m = nearest == CABLE
    alb[m] = uniform3(rng, ((0.03, 0.25), (0.03, 0.25), (0.03, 0.2)))
    if st is not None:
        if rng.random() < 0.4:  # ropes and cables in bright jackets, the look-alikes that matter
            alb[m] = uniform3(rng, ((0.3, 0.9), (0.2, 0.9), (0.05, 0.9)))
        if rng.random() < 0.5:  # debris and rocks of any colour
            mr = nearest == ROCK
            alb[mr] = np.clip(alb[mr] * uniform3(rng, ((0.5, 2.0), (0.5, 2.0), (0.5, 2.0))), 0.02, 0.95)
    nrm[m] = n_cable[m]
    if want_cable:
        spec_k[m] = 0.3

    # Lighting: lamps (with pipe shadows on the seabed) plus weak downwelling daylight.
    shadow_px = None
    if pipe is not None:
        recv = hit & ((nearest == BED) | (nearest == ROCK)) & (t_near < 30)
        idx = np.nonzero(recv)
        pts_r = p[idx].astype(np.float32) + np.array([0, 0, 1e-3], np.float32)
        cache = {}

        def shadow_px(li, lamp):
            if li not in cache:
                sh = np.zeros((H, W), np.float32)
                sh[idx] = occluded_by_pipe(pts_r, lamp.pos, pipe)
                cache[li] = sh
            return cache[li]
    e = irradiance(lamps, p, nrm, beta, shadow_px)
    ambient = rng.uniform(0.0, 0.05) * np.exp(-beta * rng.uniform(5, 40)) * 40
    amb_shadow = np.zeros((H, W), np.float32)
    if pipe is not None:
        idx2 = np.nonzero(hit & (nearest == BED) & (t_near < 30))
        sky = p[idx2] + np.array([0, 0, 1e-3], np.float32)
        amb_shadow[idx2] = occluded_by_pipe(sky, sky + np.array([0, 0, 50.0], np.float32), pipe)
    if st is not None and st.light == "daylight":
        # Shallow water, no lamps: downwelling sunlight with caustics is the only light.
        ambient = rng.uniform(0.5, 2.0) * np.exp(-beta * rng.uniform(2, 12))
        caus = caustics(rng, x, y) if rng.random() < 0.85 else np.zeros((H, W), np.float32)
        amb_gain = (0.5 + 1.8 * caus)[..., None]
    else:
        amb_gain = 1.0
        if st is not None:
            ambient = ambient * rng.uniform(0.0, 3.0)
    e += ambient * amb_gain * (np.clip(0.5 + 0.5 * nrm[..., 2], 0, 1) * (1 - 0.8 * amb_shadow))[..., None]
    j = alb * e
    # Specular streak from the lamps (Blinn-Phong).
    if spec_k.any():
        view = -d
        for lamp in lamps:
            ldir = lamp.pos - p
            ldist = np.linalg.norm(ldir, axis=-1, keepdims=True)
            ldir = ldir / np.maximum(ldist, 1e-6)
            h = ldir + view
            h /= np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-6)
            nh = np.clip(np.einsum("...i,...i->...", nrm, h), 0, 1)
            j += (spec_k * nh**40)[..., None] * lamp.power * np.exp(-beta * ldist) / np.maximum(ldist, 0.3) ** 2
    rng_d = np.where(hit, t_near, np.inf)[..., None]
    trans = np.exp(-beta * rng_d)
    # Backscatter is lit by the lamps: brighter where their cones cross the view.
    glow = np.zeros((H, W), np.float32)
    for lamp in lamps:
        glow += np.clip((d @ lamp.axis - lamp.cos_half) / (1 - lamp.cos_half), 0, 1)
    if kind == "open_water" or (st is not None and st.light == "daylight"):  # downwelling: lighter towards the surface
        glow = glow + 1.5 * np.clip(d[..., 2] + 0.3, 0, 1)
    # Veiling light level relative to the lit scene, so haze never drowns it entirely.
    scene_ref = float(np.percentile((j * trans).mean(-1), 95)) + 1e-6
    backscatter = backscatter / backscatter.max() * scene_ref * rng.uniform(0.1, 0.9)
    bsc = backscatter * (0.45 + 0.55 * glow / max(glow.max(), 1e-6))[..., None]
    img = j * trans + bsc * (1 - trans)

    # Sediment plume filling the view.
    if kind == "plume":
        turb = fractal_noise(rng, (H, W), 5, 2)
        alpha = np.clip(rng.uniform(0.75, 1.0) - 0.35 * (1 - turb), 0, 1)[..., None]
        col = uniform3(rng, ((0.35, 0.55), (0.3, 0.45), (0.2, 0.35))) * rng.uniform(0.05, 0.5)
        img = img * (1 - alpha) + col * (0.5 + 0.7 * turb[..., None]) * alpha

    # Occluders composited in front: fish and kelp hide the pipe (excluded from the mask);
    # marine snow is part of the water, like noise, and does not cut the label.
    occ_alpha = np.zeros((H, W), np.float32)

    def composite(layer, alpha, occludes=True):
        nonlocal img, occ_alpha
        img = img * (1 - alpha[..., None]) + layer * alpha[..., None]
        if occludes:
            occ_alpha = np.maximum(occ_alpha, alpha)

    ref = float(np.percentile(img.mean(-1), 90)) + 1e-6
    if kind != "wall" and rng.random() < 0.2:
        for _ in range(int(rng.integers(1, 4))):
            lay = np.zeros((H, W, 3), np.float32)
            al = np.zeros((H, W), np.float32)
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
            ln = rng.uniform(25, 160)
            ang = rng.uniform(0, 180)
            cv2.ellipse(al, (int(cx), int(cy)), (int(ln / 2), int(ln / 6)), ang, 0, 360, 1.0, -1)
            tail = np.array([[0.5 * ln, 0], [0.8 * ln, -0.2 * ln], [0.8 * ln, 0.2 * ln]])
            rot = np.array([[math.cos(math.radians(ang)), -math.sin(math.radians(ang))],
                            [math.sin(math.radians(ang)), math.cos(math.radians(ang))]])
            cv2.fillPoly(al, [(tail @ rot.T + [cx, cy]).astype(np.int32)], 1.0)
            al = cv2.GaussianBlur(al, (0, 0), 1.0)
            col = uniform3(rng, ((0.3, 0.8), (0.3, 0.8), (0.3, 0.8))) * ref * rng.uniform(0.5, 1.5)
            lay[:] = col
            composite(lay, al)
        meta["fish"] = True
    if kind in ("pipe", "negative") and rng.random() < 0.12:
        al = np.zeros((H, W), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            x0 = rng.uniform(0, W)
            yy = np.arange(H, int(rng.uniform(0, H * 0.6)), -4)
            xx = x0 + rng.uniform(10, 40) * np.sin(yy / rng.uniform(30, 90) + rng.uniform(0, 6))
            cv2.polylines(al, [np.column_stack([xx, yy]).astype(np.int32)], False, 1.0, int(rng.integers(6, 28)))
        al = cv2.GaussianBlur(al, (0, 0), 1.2) * rng.uniform(0.8, 1.0)
        col = uniform3(rng, ((0.2, 0.4), (0.25, 0.45), (0.08, 0.2))) * ref * rng.uniform(0.4, 1.0)
        composite(np.broadcast_to(col, (H, W, 3)).astype(np.float32), al)
        meta["kelp"] = True
    n_snow = int(rng.integers(20, 400) * (3 if kind == "open_water" else 1))
    if n_snow:
        al = np.zeros((H, W), np.float32)
        xs, ys = rng.uniform(0, W, n_snow), rng.uniform(0, H, n_snow)
        rs = rng.uniform(0.5, 3.0, n_snow) ** 1.5
        a = rng.uniform(0.3, 1.0, n_snow)
        for xi, yi, ri, ai in zip(xs, ys, rs, a):
            cv2.circle(al, (int(xi), int(yi)), max(1, int(ri)), float(ai), -1)
        al = cv2.GaussianBlur(al, (0, 0), rng.uniform(0.5, 1.5))
        composite(np.full((H, W, 3), ref * rng.uniform(0.8, 1.6), np.float32), al, occludes=False)

    if st is not None and rng.random() < 0.15:  # the vehicle's own frame or skid in view
        al = np.zeros((H, W), np.float32)
        edge = int(rng.integers(4))
        th = int(rng.uniform(15, 70))
        a0, a1 = rng.uniform(0, 1, 2)
        pts = {0: [(a0 * W, 0), (a1 * W, th * 3)], 1: [(a0 * W, H), (a1 * W, H - th * 3)],
               2: [(0, a0 * H), (th * 3, a1 * H)], 3: [(W, a0 * H), (W - th * 3, a1 * H)]}[edge]
        cv2.line(al, tuple(int(v) for v in pts[0]), tuple(int(v) for v in pts[1]), 1.0, th)
        al = cv2.GaussianBlur(al, (0, 0), rng.uniform(1, 4))
        col = uniform3(rng, ((0.02, 0.9), (0.02, 0.8), (0.02, 0.3))) * ref
        composite(np.broadcast_to(col, (H, W, 3)).astype(np.float32), al)
        meta["vehicle_frame"] = True
    if st is not None and rng.random() < 0.1:  # a lamp of the vehicle itself in view: glare
        al = np.zeros((H, W), np.float32)
        cx, cy = (rng.uniform(0, W), rng.choice([0.0, H * 1.0])) if rng.random() < 0.5 else (rng.choice([0.0, W * 1.0]), rng.uniform(0, H))
        cv2.circle(al, (int(cx), int(cy)), int(rng.uniform(15, 60)), 1.0, -1)
        al = np.clip(cv2.GaussianBlur(al, (0, 0), rng.uniform(10, 40)) * 2.5, 0, 1)
        composite(np.full((H, W, 3), ref * rng.uniform(2, 5), np.float32), al, occludes=False)
        meta["lamp_in_view"] = True

    # Vignetting (cos^4 law) and auto-exposure.
    cos_off = d @ cam.fwd
    img = img * (cos_off**(4 if st is None else rng.uniform(0, 6)))[..., None]
    lum = img @ np.array([0.299, 0.587, 0.114], np.float32)
    exposure = rng.uniform(0.55, 0.95) / max(float(np.percentile(lum, 98)), 1e-6)
    if kind == "overexposed":
        exposure *= rng.uniform(2.0, 6.0)
    if split == "shift_turbid":
        exposure *= rng.uniform(0.35, 0.8)  # dark: the camera runs out of gain
    if st is not None:
        exposure *= float(np.exp(rng.normal(0, 0.35)))
        if st.water == "murky":
            exposure *= rng.uniform(0.35, 0.8)
    img = img * exposure
    # Partial auto white balance, as many subsea cameras apply.
    wb = rng.uniform(0.0, 0.8)
    gains = (img.reshape(-1, 3).mean(0) + 1e-6) ** -wb
    img = img * (gains / (gains @ np.array([0.299, 0.587, 0.114], np.float32)))
    if st is not None:  # colour cast of the camera's white balance setting
        img = img * np.exp(rng.normal(0, 0.18, 3)).astype(np.float32)

    visible = (nearest == PIPE) & hit & (occ_alpha < 0.5)
    mask = visible.astype(np.float32)

    # Motion blur (same kernel on the mask, so the label follows the smeared edge).
    if rng.random() < 0.35:
        ln = int(rng.integers(3, 12))
        k = np.zeros((ln, ln), np.float32)
        k[ln // 2, :] = 1
        k = cv2.warpAffine(k, cv2.getRotationMatrix2D((ln / 2 - 0.5, ln / 2 - 0.5), rng.uniform(0, 180), 1.0), (ln, ln))
        k /= max(k.sum(), 1e-6)
        img = cv2.filter2D(img, -1, k)
        mask = cv2.filter2D(mask, -1, k)
        meta["motion_blur_px"] = ln

    if st is not None and rng.random() < 0.4:  # defocus (the label stays the geometry)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 2.5))
        meta["defocus"] = True

    # Sensor: shot + read noise, gamma, 8 bit, JPEG.
    img = np.clip(img, 0, None)
    shot = rng.uniform(0.002, 0.02)
    read = rng.uniform(0.002, 0.012) * (2.5 if split == "shift_turbid" else 1)
    if st is not None:
        shot, read = shot * rng.uniform(0.5, 2.5), read * rng.uniform(0.5, 3.0) * (2.0 if st.water == "murky" else 1.0)
    img = img + np.sqrt(img * shot) * rng.standard_normal(img.shape, dtype=np.float32) \
        + read * rng.standard_normal(img.shape, dtype=np.float32)
    if st is None:
        img = np.clip(img, 0, 1) ** (1 / 2.2)
    else:  # camera response: gamma and an S-shaped tone curve of random strength
        img = np.clip(img, 0, 1) ** (1 / rng.uniform(1.6, 2.8))
        k = rng.uniform(0, 0.6)
        img = (1 - k) * img + k * (0.5 - 0.5 * np.cos(np.pi * img))
    rgb = np.round(img * 255).astype(np.uint8)
    quality = int(rng.integers(55, 96)) if st is None else int(rng.integers(25, 96))
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    meta["jpeg_quality"] = quality
    mask_u8 = np.where(mask > 0.5, 255, 0).astype(np.uint8)
    meta["pipeline_fraction"] = round(float((mask_u8 > 0).mean()), 5)
    return rgb, mask_u8, meta, buf.tobytes()
