"""A third scene generator, written for training beside scenegen.py (altgen.py stays the test renderer).

Neither of the other two was a template. Here every surface is evaluated per pixel from where the
camera ray meets it, with procedural (scale-aware) textures instead of scenegen's ray-cast
materials or altgen's painted bands:
- camera: pinhole at altitude 0.5-5 m, pitch 20-90 deg, roll, field of view 55-95 deg; the ray of
  each pixel meets the seabed plane (or misses it: open water above the horizon);
- seabed: value-noise octaves sampled at the ground point (octaves finer than the pixel's footprint
  fade out), a random colour ramp, ripples, stones and a trench as a height field that only bends
  the normal;
- pipe: an exact ray-cylinder hit (radius 0.07-0.6 m, lying, part buried or lifted into a free
  span), coating texture on the unwrapped surface, marine growth, field joints and anodes,
  sediment drifts that hide its lower part; cables are thinner cylinders and are not labelled;
- light: 1-4 lamps anywhere on a vehicle-sized frame, aimed near the optical axis, with cone,
  inverse-square fall-off, attenuation along the lamp path and hard shadows of the pipe, plus
  ambient light from above; water: per-channel attenuation along the view ray and a veil;
- in front: marine snow, fish, the vehicle's own frame, an on-screen text overlay;
- camera response: exposure, white balance, tone curve, defocus or motion blur, noise,
  down-sampling, monochrome or interlaced video, JPEG.
The mask is the set of pixels whose ray meets the visible pipe first. A frame is a pure function
of (seed, index).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

W, H = 640, 480
KINDS = {"pipe": 0.7, "seabed": 0.17, "open_water": 0.05, "wall": 0.08}
# "visible": a pipe pixel is labelled where the pipe shows (contrast with its surroundings);
# "geometric": wherever the ray meets the pipe first, the rule of scenegen's and altgen's masks.
LABEL = "visible"


def _noise(rng, X, Y, scale, octaves, fp, gain=0.55):
    """Value noise at ground points (X, Y) in metres: cells of `scale` m halving per octave, each
    octave faded out where a cell is under 2 pixels (fp = the pixel's footprint in metres)."""
    out = np.zeros(X.shape, np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        s = scale / 2 ** k
        g = rng.random((64, 64)).astype(np.float32)
        v = cv2.remap(g, (X / s) % 64, (Y / s) % 64, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
        fade = np.clip(s / (2 * fp) - 1, 0, 1)
        out += amp * fade * (v - 0.5)
        total += amp
        amp *= gain
    return out / total * 2  # about -1..1


def _ramp(rng, t, n=3):
    """Colour ramp: t (-1..1) mapped through n RGB stops, mostly seabed colours (sand, silt, grey
    and green-brown), sometimes any colour."""
    if rng.random() < 0.7:
        hsv = np.stack([rng.uniform(5, 45, n), rng.uniform(10, 160, n), rng.uniform(60, 240, n)], 1)
        stops = cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.float32) / 255
    else:
        stops = rng.uniform(0.05, 0.9, (n, 3)).astype(np.float32)
    stops = np.clip(stops, 0.02, 1)
    x = np.clip((t + 1) / 2, 0, 1) * (n - 1)
    i = np.minimum(x.astype(np.int32), n - 2)
    f = (x - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def _camera(rng, kind):
    hfov = math.radians(rng.uniform(55, 95))
    f = (W / 2) / math.tan(hfov / 2)
    alt = rng.uniform(0.5, 5.0)
    pitch = math.radians(rng.uniform(60, 90) if kind == "wall" else rng.uniform(20, 90))
    if kind == "open_water":
        pitch, alt = math.radians(rng.uniform(-20, 15)), 100.0
    roll = math.radians(rng.normal(0, 6))
    fwd = np.array([0, math.cos(pitch), -math.sin(pitch)])
    right = np.array([1.0, 0, 0])
    down = np.cross(fwd, right)
    right, down = (math.cos(roll) * right + math.sin(roll) * down, -math.sin(roll) * right + math.cos(roll) * down)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    u, v = (xx - W / 2) / f, (yy - H / 2) / f
    d = u[..., None] * right + v[..., None] * down + fwd
    d = (d / np.linalg.norm(d, axis=-1, keepdims=True)).astype(np.float32)
    return np.array([0, 0, alt], np.float32), d, f, fwd, right, down


def _cylinder(o, d, a0, ax, r):
    """Nearest hit t of rays o + t d (d: HxWx3 or rays of points) with the infinite cylinder through a0
    along unit ax of radius r; inf where none."""
    w = o - a0
    dp = d - (d @ ax)[..., None] * ax
    wp = w - (w @ ax)[..., None] * ax
    A = (dp * dp).sum(-1)
    B = 2 * (wp * dp).sum(-1)
    C = (wp * wp).sum(-1) - r * r
    disc = B * B - 4 * A * C
    t = (-B - np.sqrt(np.maximum(disc, 0))) / (2 * np.maximum(A, 1e-9))
    return np.where((disc > 0) & (t > 1e-4), t, np.inf).astype(np.float32)


def _pipe_params(rng, cam_o, d, t_bed):
    """A pipe lying across the view: axis point, direction, radius and centre height."""
    for _ in range(20):
        u, v = int(rng.uniform(0.15, 0.85) * W), int(rng.uniform(0.3, 0.95) * H)
        if np.isfinite(t_bed[v, u]):
            break
    else:
        return None
    p = cam_o + t_bed[v, u] * d[v, u]
    psi = math.pi / 2 + rng.normal(0, math.radians(25)) if rng.random() < 0.6 else rng.uniform(0, math.pi)
    ax = np.array([math.cos(psi), math.sin(psi), 0], np.float32)
    r = float(np.exp(rng.uniform(math.log(0.07), math.log(0.6))))
    zc = r * (1 - 2 * rng.uniform(0, 0.45)) if rng.random() < 0.5 else r
    if rng.random() < 0.15:
        zc = r * rng.uniform(1.1, 2.0)  # free span
    return np.array([p[0], p[1], zc], np.float32), ax, r


def _lamps(rng, fwd, right, down):
    """Lamp positions (relative to the camera) and beam axes."""
    out = []
    for _ in range(int(rng.integers(1, 5))):
        pos = right * rng.uniform(-1.5, 1.5) - down * rng.uniform(-0.3, 0.9) + fwd * rng.uniform(-0.5, 0.5)
        aim = fwd + right * rng.normal(0, 0.25) + down * rng.normal(0, 0.25)
        out.append((pos.astype(np.float32), (aim / np.linalg.norm(aim)).astype(np.float32),
                    math.radians(rng.uniform(15, 50)), rng.uniform(0.4, 1.6)))
    return out


def _pipe_albedo(rng, s, th, r, fp):
    """Coating, growth, joints and anodes on the unwrapped pipe (s along, th around, metres)."""
    kind = rng.choice(["concrete", "black", "paint", "steel", "rust"])
    base = {"concrete": (0.55, 0.55, 0.52), "black": (0.08, 0.08, 0.09), "paint": tuple(rng.uniform(0.2, 0.95, 3)),
            "steel": (0.45, 0.47, 0.5), "rust": (0.45, 0.25, 0.12)}[kind]
    base = np.array(base, np.float32) * rng.uniform(0.7, 1.2, 3).astype(np.float32)
    n = _noise(rng, s, th, rng.uniform(0.1, 1.0), 5, fp)
    alb = base * (1 + rng.uniform(0.1, 0.5) * n)[..., None]
    if rng.random() < 0.55:  # marine growth
        cover = rng.uniform(-0.6, 0.7)
        g = _noise(rng, s, th, rng.uniform(0.05, 0.6), 5, fp)
        col = rng.uniform(0.1, 0.8, 3).astype(np.float32)
        m = np.clip((g - (0.5 - cover)) * 4, 0, 1)[..., None]
        alb = alb * (1 - m) + col * (0.7 + 0.5 * _noise(rng, s, th, 0.03, 3, fp))[..., None] * m
    if rng.random() < 0.5:  # field joints every 6-12 m, anodes between
        per, wid = rng.uniform(6, 12), rng.uniform(0.2, 0.8)
        ph = (s + rng.uniform(0, per)) % per
        joint = (ph < wid)[..., None]
        alb = np.where(joint, np.array(rng.uniform(0.1, 0.8, 3), np.float32), alb)
    return np.clip(alb, 0.01, 1).astype(np.float32), kind, kind in ("steel", "paint", "black")


def render(seed: int, index: int, kind: str | None = None):
    """One frame: (rgb uint8 after JPEG, mask uint8 0/255, meta, jpeg bytes); `kind` forces one of KINDS."""
    rng = np.random.default_rng([seed, 3, index])
    drawn = str(rng.choice(list(KINDS), p=list(KINDS.values())))
    kind = kind or drawn
    o, d, f, fwd, right, down = _camera(rng, kind)
    max_range = rng.uniform(8, 30)
    t_bed = np.where(d[..., 2] < -1e-3, -o[2] / np.minimum(d[..., 2], -1e-3), np.inf).astype(np.float32)
    t_bed[t_bed > max_range] = np.inf
    if kind == "open_water":
        t_bed[:] = np.inf
    P = o + np.where(np.isfinite(t_bed), t_bed, 0)[..., None] * d
    X, Y = P[..., 0], P[..., 1]
    fp = np.where(np.isfinite(t_bed), t_bed / f / np.maximum(-d[..., 2], 0.15), 1e3).astype(np.float32)

    # Seabed (or wall) height field and albedo.
    eps = 0.01
    ridges = rng.random() < 0.5
    lam, ang, amp = rng.uniform(0.08, 1.0), rng.uniform(0, math.pi), rng.uniform(0.005, 0.06)
    warp_s = rng.uniform(0.5, 4)
    stones = rng.random() < 0.4
    cell, pst = rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.7)
    trench = kind in ("pipe", "seabed") and rng.random() < 0.2
    g_warp = rng.random((64, 64)).astype(np.float32)
    cell_rng = rng.random((256, 256, 4)).astype(np.float32)
    pipe = _pipe_params(rng, o, d, t_bed) if kind == "pipe" else None
    if pipe is not None:  # a trench follows the pipe; without one it runs anywhere
        tr_ax = pipe[1]
    else:
        a = rng.uniform(0, math.pi)
        tr_ax = np.array([math.cos(a), math.sin(a), 0], np.float32)
    tr_p0 = pipe[0] if pipe is not None else P[int(H * 0.7), W // 2]
    tr_w, tr_d = rng.uniform(0.5, 2.5), rng.uniform(0.1, 0.8)

    def height(x, y):
        h = np.zeros(x.shape, np.float32)
        if ridges:
            q = x * math.cos(ang) + y * math.sin(ang)
            q = q + lam * 0.6 * (cv2.remap(g_warp, (x / warp_s) % 64, (y / warp_s) % 64, cv2.INTER_CUBIC,
                                           borderMode=cv2.BORDER_WRAP) - 0.5)
            ph = (q / lam) % 1.0
            h += amp * np.where(ph < 0.7, ph / 0.7, (1 - ph) / 0.3)  # asymmetric ripple
        if stones:
            ci, cj = np.floor(x / cell).astype(np.int64), np.floor(y / cell).astype(np.int64)
            best = np.zeros(x.shape, np.float32)
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    c = cell_rng[(ci + di) % 256, (cj + dj) % 256]
                    cxs, cys, rad = (ci + di + c[..., 0]) * cell, (cj + dj + c[..., 1]) * cell, c[..., 2] * cell * 0.6
                    dd = ((x - cxs) ** 2 + (y - cys) ** 2) / np.maximum(rad, 1e-4) ** 2
                    best = np.maximum(best, np.where((c[..., 3] < pst) & (dd < 1), rad * np.sqrt(np.clip(1 - dd, 0, 1)), 0))
            h += best
        if trench:
            dist = np.abs((x - tr_p0[0]) * tr_ax[1] - (y - tr_p0[1]) * tr_ax[0])
            h -= tr_d * np.exp(-(dist / tr_w) ** 2)
        return h

    h0 = height(X, Y)
    n_bed = np.stack([-(height(X + eps, Y) - h0) / eps, -(height(X, Y + eps) - h0) / eps, np.ones_like(X)], -1)
    n_bed /= np.linalg.norm(n_bed, axis=-1, keepdims=True)
    tone = _noise(rng, X, Y, rng.uniform(1, 8), 3, fp)
    alb = _ramp(rng, tone * rng.uniform(0.5, 1.5))
    alb *= (1 + rng.uniform(0.2, 0.9) * _noise(rng, X, Y, rng.uniform(0.05, 0.5), 6, fp, rng.uniform(0.5, 0.8)))[..., None]
    if stones:
        alb = np.where((h0 > (amp if ridges else 0) + 0.01)[..., None],
                       alb * rng.uniform(0.5, 1.6, 3).astype(np.float32), alb)
    if kind == "wall":  # panels and welds of a structure
        px = rng.uniform(0.4, 2.0)
        seam = (np.minimum(X % px, Y % (px * rng.uniform(0.5, 2))) < rng.uniform(0.01, 0.05))
        alb = np.where(seam[..., None], alb * 0.4, alb)
    if rng.random() < 0.15:  # shells and burrows: bright and dark specks
        sp = _noise(rng, X, Y, 0.015, 1, fp)
        alb = np.where((sp > 0.8)[..., None], 0.9, np.where((sp < -0.85)[..., None], alb * 0.3, alb))

    # Pipe and cables: nearest surface along each ray.
    t_hit, surf = t_bed.copy(), np.zeros((H, W), np.int8)  # 0 bed/none, 1 pipe, 2 cable
    normal, albedo = n_bed, alb
    shiny = np.zeros((H, W), bool)
    meta_pipe = {}
    cyls = []
    if pipe is not None:
        a0, ax, r = pipe
        t_p = _cylinder(o, d, a0, ax, r)
        hp = o + np.where(np.isfinite(t_p), t_p, 0)[..., None] * d
        s = (hp - a0) @ ax
        drift = np.zeros_like(s)
        if rng.random() < 0.35:  # sediment drifts over the pipe's lower part
            g = rng.random(64).astype(np.float32)
            sl = rng.uniform(0.5, 4)
            ii = (s / sl) % 63
            k = np.minimum(np.floor(ii).astype(np.int32), 62)
            drift = (g[k] * (1 - (ii - k)) + g[k + 1] * (ii - k)) * rng.uniform(0.5, 2.2) * r - 0.3 * r
        vis = np.isfinite(t_p) & (t_p < t_hit) & (hp[..., 2] > np.maximum(drift, 0))
        rel = hp - a0 - s[..., None] * ax
        nrm = rel / np.maximum(np.linalg.norm(rel, axis=-1, keepdims=True), 1e-6)
        side = np.cross(ax, np.array([0, 0, 1], np.float32))
        th = np.arctan2(rel @ side, rel[..., 2]) * r
        p_alb, coat, is_shiny = _pipe_albedo(rng, s, th, r, fp)
        t_hit = np.where(vis, t_p, t_hit)
        surf[vis] = 1
        normal = np.where(vis[..., None], nrm, normal)
        albedo = np.where(vis[..., None], p_alb, albedo)
        shiny |= vis & is_shiny
        cyls.append((a0, ax, r))
        meta_pipe = {"radius_m": round(r, 3), "coating": str(coat), "centre_height_m": round(float(a0[2]), 3)}
    for _ in range(int(rng.integers(0, 3)) if kind in ("pipe", "seabed") and rng.random() < 0.35 else 0):
        rc = rng.uniform(0.005, 0.025)
        q = P[int(rng.uniform(0.3, 0.95) * H), int(rng.uniform(0.1, 0.9) * W)]
        b = rng.uniform(0, math.pi)
        cax = np.array([math.cos(b), math.sin(b), 0], np.float32)
        c0 = np.array([q[0], q[1], rc], np.float32)
        t_c = _cylinder(o, d, c0, cax, rc)
        vis = np.isfinite(t_c) & (t_c < t_hit)
        hp = o + np.where(vis, t_c, 0)[..., None] * d
        rel = hp - c0 - ((hp - c0) @ cax)[..., None] * cax
        t_hit = np.where(vis, t_c, t_hit)
        surf[vis] = 2
        normal = np.where(vis[..., None], rel / np.maximum(np.linalg.norm(rel, axis=-1, keepdims=True), 1e-6), normal)
        albedo = np.where(vis[..., None], rng.uniform(0.03, 0.9, 3).astype(np.float32), albedo)
        cyls.append((c0, cax, rc))

    # Light: lamps with cone, fall-off, attenuation and pipe shadows; ambient from above; water.
    hit = np.isfinite(t_hit)
    Pn = o + np.where(hit, t_hit, 0)[..., None] * d
    c = rng.uniform(0.2, 1.0, 3).astype(np.float32)
    c[0] += rng.uniform(0, 0.8)
    c = c / c.mean() * float(np.exp(rng.uniform(math.log(0.04), math.log(0.9))))
    radiance = np.zeros((H, W, 3), np.float32)
    lamps = _lamps(rng, fwd, right, down)
    for pos, aim, cone, power in lamps:
        lp = o + pos
        L = lp - Pn
        dl = np.maximum(np.linalg.norm(L, axis=-1), 0.05)
        L = L / dl[..., None]
        cosang = np.clip(-(L @ aim), -1, 1)
        beam = np.exp(-(np.arccos(cosang) / cone) ** 2)
        lam_ = np.clip((normal * L).sum(-1), 0, None)
        lit = np.ones((H, W), np.float32)
        for a0, ax, r in cyls:  # shadow: the path to the lamp meets a cylinder
            ts = _cylinder(Pn + L * 1e-3, L, a0, ax, r)
            lit = np.where(ts < dl, 0.0, lit)
        e = power * beam * lam_ * lit / dl ** 2
        radiance += e[..., None] * np.exp(-c * dl[..., None])
        if shiny.any():
            hv = L - d
            hv /= np.maximum(np.linalg.norm(hv, axis=-1, keepdims=True), 1e-6)
            spec = np.clip((normal * hv).sum(-1), 0, 1) ** rng.uniform(10, 80) * rng.uniform(0.2, 1.5)
            radiance += np.where(shiny, power * beam * lit * spec / dl ** 2, 0)[..., None] * np.exp(-c * dl[..., None])
    # Daylight from above, filtered by the water column over the scene (none in deep water).
    sky = rng.uniform(0, 0.3) * np.exp(-c * rng.uniform(2, 30)) if rng.random() < 0.4 else np.zeros(3, np.float32)
    radiance = (radiance + np.clip(normal[..., 2:3], 0, 1) * sky) * albedo
    if kind == "wall":
        radiance = radiance * rng.uniform(0.5, 1.5)
    dv = np.where(hit, t_hit, 1e3)[..., None]
    tr = np.exp(-c * dv)
    # The veil's strength relative to the lit scene: from clear water to a thick one.
    lit_level = float(np.percentile((radiance * tr).max(-1), 95)) if kind != "open_water" else 1.0
    veil_col = np.exp(-c * rng.uniform(1, 6))
    veil_col = veil_col / veil_col.max() * lit_level * float(np.exp(rng.uniform(math.log(0.03), math.log(1.2))))
    veil = veil_col * (1 + rng.uniform(0, 1.5) * cv2.resize(rng.random((3, 4)).astype(np.float32), (W, H),
                                                               interpolation=cv2.INTER_CUBIC))[..., None]
    if kind == "open_water":
        veil = veil * (1.6 - np.linspace(0, 1, H, dtype=np.float32)[:, None, None] * (d[..., 2:3] < 0))
    img = radiance * tr + veil * (1 - tr)
    # Exposure from the lit scene (before snow and overlays), then the label: a person labels the pipe
    # where it shows, lit itself or dark against a lit seabed, not where it fades into the dark.
    k = float(np.percentile(img.max(-1), rng.uniform(90, 99.5))) + 1e-9
    on_pipe = (surf == 1).astype(np.float32)
    bed = 1 - on_pipe
    bg = cv2.blur(img * bed[..., None], (41, 41)) / np.maximum(cv2.blur(bed, (41, 41)), 1e-3)[..., None]
    contrast = np.abs(img - bg).max(-1) / k * on_pipe
    contrast = cv2.blur(contrast, (41, 41)) / np.maximum(cv2.blur(on_pipe, (41, 41)), 1e-3)
    mask = (surf == 1) & (contrast > 0.03) if LABEL == "visible" else surf == 1

    # In front of the scene: marine snow, fish, the vehicle's frame.
    n_snow = int(rng.integers(0, 500)) if rng.random() < 0.6 else 0
    if n_snow:
        snow = np.zeros((H, W), np.float32)
        for _ in range(n_snow):
            cv2.circle(snow, (int(rng.uniform(0, W)), int(rng.uniform(0, H))), int(rng.integers(1, 4)),
                       float(rng.uniform(0.2, 1.0)), -1)
        snow = cv2.GaussianBlur(snow, (0, 0), rng.uniform(0.5, 2.5))
        img = img + snow[..., None] * k * rng.uniform(0.2, 0.8)
    for _ in range(int(rng.integers(1, 4)) if rng.random() < 0.1 else 0):
        fm = np.zeros((H, W), np.uint8)
        cv2.ellipse(fm, (int(rng.uniform(0, W)), int(rng.uniform(0, H))), (int(rng.uniform(15, 90)), int(rng.uniform(6, 35))),
                    rng.uniform(0, 180), 0, 360, 1, -1)
        img = np.where(fm[..., None] > 0, rng.uniform(0.05, 1.0, 3).astype(np.float32) * float(np.percentile(img, 90)), img)
        mask &= fm == 0
    if rng.random() < 0.1:
        fm = np.zeros((H, W), np.uint8)
        corner = np.array([[0, H], [W, H]][int(rng.integers(2))])
        pts = corner + rng.uniform(-1, 1, (4, 2)) * [W * 0.35, H * 0.35]
        cv2.fillPoly(fm, [np.vstack([corner, pts]).astype(np.int32)], 1)
        img = np.where(fm[..., None] > 0, rng.uniform(0.0, 0.8, 3).astype(np.float32) * float(np.percentile(img, 95)), img)
        mask &= fm == 0

    # Camera response.
    img = img / k * rng.uniform(0.5, 1.4) * np.exp(rng.normal(0, 0.15, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = img * (1 - rng.uniform(0, 0.5) * (((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / (W / 2) ** 2))[..., None]
    img = np.clip(img, 0, 1)
    blur = rng.random()
    if blur < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.5))
    elif blur < 0.45:
        n = int(rng.integers(3, 12))
        kern = np.zeros((n, n), np.float32)
        kern[n // 2] = 1
        kern = cv2.warpAffine(kern, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1), (n, n))
        img = cv2.filter2D(img, -1, kern / max(kern.sum(), 1e-6))
    img = img + rng.normal(0, 1, img.shape).astype(np.float32) * (rng.uniform(0, 0.03) + rng.uniform(0, 0.03) * np.sqrt(img))
    img = np.clip(img, 0, 1) ** rng.uniform(0.5, 1.4)
    if rng.random() < 0.3:  # S-shaped tone curve
        img = img + rng.uniform(0.1, 0.6) * img * (1 - img) * (2 * img - 1)
    if rng.random() < 0.2:
        sc = rng.uniform(1.5, 3.5)
        small = cv2.resize(img, (int(W / sc), int(H / sc)), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.08:
        img = np.repeat(img.mean(-1, keepdims=True), 3, -1)
    if rng.random() < 0.05:  # interlaced video with motion between fields
        sh = int(rng.integers(1, 6))
        img[1::2] = np.roll(img[1::2], sh, axis=1)
    rgb = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if rng.random() < 0.25:  # the survey system's text overlay
        col = [(255, 255, 255), (255, 255, 0), (0, 255, 0)][int(rng.integers(3))]
        for _ in range(int(rng.integers(1, 5))):
            txt = f"{rng.choice(['DEPTH', 'HDG', 'KP', 'ALT', 'DIVE'])} {rng.uniform(0, 999):.1f}"
            cv2.putText(rgb, txt, (int(rng.uniform(5, W - 200)), int(rng.choice([rng.uniform(15, 60), rng.uniform(H - 40, H - 5)]))),
                        cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.4, 0.9), col, int(rng.integers(1, 3)), cv2.LINE_AA)
    q = int(rng.integers(25, 96))
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q])
    rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    mask_u8 = np.where(mask, 255, 0).astype(np.uint8)
    meta = {"index": index, "kind": kind if kind not in ("seabed",) else "negative", "renderer": "planegen",
            "lamps": len(lamps), "jpeg_quality": q, "pipeline_fraction": round(float(mask.mean()), 5), **meta_pipe}
    return rgb, mask_u8, meta, buf.tobytes()
