"""A second, independent scene generator for cross-renderer testing; training never sees it.

`scenegen.py` ray-casts a 3-D scene with a physical water model. This one paints in image space
with different models for everything, so a model that learned scenegen's look rather than
"a pipeline" shows it here:
- seabed: Voronoi cobbles, random-sinusoid ripples or blotchy stains, colours from an HSV palette;
- pipe: a band between two image-space Bezier curves with perspective taper, shaded across its
  width as a cylinder seen from above (cosine law plus a specular stripe), with stripes or
  blotches as texture, partly covered by sediment drifts and rocks painted on top;
- water: haze that grows with image row (far = top) toward a veil colour, a lamp hot-spot as a
  2-D Gaussian, radial vignetting;
- camera: barrel distortion (image and mask warped alike), lateral chromatic aberration, box
  blur, Gaussian noise, unsharp masking (as many cameras apply), JPEG 30-90.
Empty scenes (seabed only, open water, wall of a structure) have an empty mask.
A frame is a pure function of (seed, index).
"""
from __future__ import annotations

import cv2
import numpy as np

W, H = 640, 480


def _palette(rng, hue, sat, val):
    hsv = np.uint8([[[int(hue) % 180, int(np.clip(sat, 0, 255)), int(np.clip(val, 0, 255))]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255


def _seabed(rng):
    style = rng.integers(3)
    base = _palette(rng, rng.uniform(10, 40), rng.uniform(30, 140), rng.uniform(90, 220))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    depth = 1.0 + 4.0 * (1 - yy / H) ** 2  # perspective-ish: rows near the top are far
    if style == 0:  # Voronoi cobbles, smaller far away
        n = int(rng.integers(80, 300))
        pts = np.column_stack([rng.uniform(0, W, n), rng.uniform(0, H, n) ** 1.2 / H ** 0.2])
        sub = cv2.Subdiv2D((0, 0, W, H))
        for p in pts:
            sub.insert((float(np.clip(p[0], 0, W - 1)), float(np.clip(p[1], 0, H - 1))))
        facets, _ = sub.getVoronoiFacetList([])
        tex = np.zeros((H, W, 3), np.float32)
        for f in facets:
            c = base * rng.uniform(0.5, 1.3, 3).astype(np.float32) * rng.uniform(0.6, 1.2)
            cv2.fillConvexPoly(tex, f.astype(np.int32), c.tolist())
            cv2.polylines(tex, [f.astype(np.int32)], True, (base * 0.3).tolist(), 2)
    elif style == 1:  # ripples from random sinusoids
        v = np.zeros((H, W), np.float32)
        for _ in range(int(rng.integers(3, 7))):
            ang, lam = rng.uniform(0, np.pi), rng.uniform(8, 60)
            v += np.sin((xx * np.cos(ang) + yy * np.sin(ang) * depth / 2) * 2 * np.pi / lam + rng.uniform(0, 6))
        v = v / np.abs(v).max()
        tex = base * (0.8 + 0.25 * v)[..., None]
    else:  # blotchy stains
        v = cv2.resize(rng.random((int(rng.integers(4, 12)), int(rng.integers(4, 12)))).astype(np.float32), (W, H),
                       interpolation=cv2.INTER_LINEAR)
        fine = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 1.5)
        tex = base * (0.6 + 0.6 * v + 0.4 * (fine - 0.5))[..., None]
        tex = tex * (1 + 0.2 * (v[..., None] - 0.5) * np.array([1.0, -0.5, -1.0], np.float32))
    return np.clip(tex, 0, 1).astype(np.float32)


def _bezier(p0, p1, p2, n=200):
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _pipe(rng, img):
    """Paint a pipe; returns image and mask (float)."""
    # Entry and exit on the frame border, control point inside: straight-ish or curved.
    def border_point():
        side = rng.integers(4)
        u = rng.uniform(0.1, 0.9)
        return np.array([[u * W, -40], [u * W, H + 40], [-40, u * H], [W + 40, u * H]][side], np.float32)
    p0 = border_point()
    p2 = border_point()
    while np.linalg.norm(p0 - p2) < 300:
        p2 = border_point()
    p1 = (p0 + p2) / 2 + rng.normal(0, 60, 2).astype(np.float32)
    c = _bezier(p0, p1, p2)
    tang = np.gradient(c, axis=0)
    tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-6)
    nrm = np.column_stack([-tang[:, 1], tang[:, 0]])
    w_near, w_far = rng.uniform(20, 110), rng.uniform(0.25, 1.0)
    # width shrinks toward the top of the frame (farther away)
    width = w_near * (w_far + (1 - w_far) * np.clip(c[:, 1] / H, 0, 1))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # For each pixel: signed offset across the pipe and position along it, via nearest centre point.
    cx, cy = c[:, 0], c[:, 1]
    step = max(1, len(c) // 200)
    best = np.full((H, W), 1e9, np.float32)
    across = np.zeros((H, W), np.float32)
    along = np.zeros((H, W), np.float32)
    for i in range(0, len(c), step):
        dx, dy = xx - cx[i], yy - cy[i]
        dist = dx * dx + dy * dy
        better = dist < best
        best = np.where(better, dist, best)
        across = np.where(better, (dx * nrm[i, 0] + dy * nrm[i, 1]) / width[i], across)
        along = np.where(better, i / len(c), along)
    u = across * 2  # -1..1 inside the pipe
    inside = np.abs(u) < 1
    shade = np.sqrt(np.clip(1 - u ** 2, 0, 1))
    light_dir = rng.uniform(-0.6, 0.6)
    lam = np.clip(shade * (1 - abs(light_dir)) + u * light_dir, 0, 1)
    spec = np.exp(-((u - light_dir * 0.5) / rng.uniform(0.05, 0.2)) ** 2) * rng.uniform(0, 0.6)
    kind = rng.integers(3)
    col = _palette(rng, rng.uniform(0, 180), rng.uniform(0, 200), rng.uniform(80, 240))
    if kind == 0:  # bands (joints, anodes)
        tex = 1 - 0.4 * (np.sin(along * rng.uniform(20, 120)) > 0.95)
    elif kind == 1:  # blotches (growth)
        b = cv2.resize(rng.random((8, 64)).astype(np.float32), (W, H))
        tex = 0.7 + 0.6 * b
    else:
        tex = np.ones((H, W), np.float32)
    pipe_rgb = col * (0.25 + 0.85 * lam * tex)[..., None] + spec[..., None]
    # Shadow beside the pipe on the seabed.
    sh = np.clip(1 - 0.5 * np.exp(-((u - np.sign(light_dir + 1e-3) * -1.6) / 0.6) ** 2), 0, 1)
    img = img * np.where(inside, 1, sh)[..., None]
    mask = inside.astype(np.float32)
    img = np.where(inside[..., None], pipe_rgb, img)
    # Sediment drifts over parts of the pipe (burial): covered pixels are seabed, not pipe.
    if rng.random() < 0.5:
        drift = cv2.resize(rng.random((6, 6)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
        cover = (drift > rng.uniform(0.55, 0.8)) & inside & (u > rng.uniform(-1, 0.3))
        sand = cv2.GaussianBlur(img, (0, 0), 6) * 0.3 + _palette(rng, 25, 60, 180) * 0.7
        img = np.where(cover[..., None], sand, img)
        mask = mask * ~cover
    return img, mask


def _rocks(rng, img, mask, n):
    for _ in range(n):
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        r = rng.uniform(4, 30) * (0.4 + cy / H)
        col = _palette(rng, rng.uniform(0, 40), rng.uniform(0, 80), rng.uniform(40, 160))
        m = np.zeros((H, W), np.uint8)
        cv2.ellipse(m, (int(cx), int(cy)), (int(r), int(r * rng.uniform(0.5, 1))), rng.uniform(0, 180), 0, 360, 1, -1)
        yy = np.arange(H)[:, None]
        grad = np.clip(1.2 - (yy - (cy - r)) / max(2 * r, 1), 0.4, 1.2)
        img = np.where(m[..., None] > 0, col * grad[..., None], img)
        mask = mask * (m == 0)
    return img, mask


def render(seed: int, index: int, kind: str | None = None):
    """One frame: (rgb uint8 HxWx3 after JPEG, mask uint8 0/255, meta, jpeg bytes)."""
    rng = np.random.default_rng([seed, 1234, index])
    if kind is None:
        kind = str(rng.choice(["pipe", "seabed", "open_water", "structure"], p=[0.8, 0.1, 0.05, 0.05]))
    mask = np.zeros((H, W), np.float32)
    if kind == "open_water":
        img = np.zeros((H, W, 3), np.float32)
    elif kind == "structure":  # a wall of a structure: panels and bolts
        col = _palette(rng, rng.uniform(0, 180), rng.uniform(0, 120), rng.uniform(80, 200))
        img = np.broadcast_to(col, (H, W, 3)).copy()
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = int(rng.uniform(0, W)), int(rng.uniform(0, H))
            cv2.rectangle(img, (x0, y0), (x0 + int(rng.uniform(40, 300)), y0 + int(rng.uniform(40, 300))),
                          (col * rng.uniform(0.5, 0.9)).tolist(), int(rng.integers(2, 8)))
        img = img * (0.8 + 0.4 * cv2.resize(rng.random((5, 5)).astype(np.float32), (W, H)))[..., None]
    else:
        img = _seabed(rng)
        if kind == "pipe":
            img, mask = _pipe(rng, img)
        img, mask = _rocks(rng, img, mask, int(rng.integers(0, 25)))
    # Water: haze growing toward the top of the frame (farther), veil colour, lamp hot-spot.
    veil = _palette(rng, rng.uniform(70, 110), rng.uniform(80, 230), rng.uniform(60, 200))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    far = (1 - yy / H) if kind not in ("structure", "open_water") else np.full((H, W), 0.5, np.float32)
    haze = 1 - np.exp(-rng.uniform(0.3, 3.0) * (0.2 + far))
    if kind == "open_water":
        haze = np.ones((H, W), np.float32)
        veil_img = veil * (0.6 + 0.6 * (1 - yy / H))[..., None]
    else:
        veil_img = np.broadcast_to(veil, (H, W, 3))
    cx, cy = W * rng.uniform(0.3, 0.7), H * rng.uniform(0.4, 0.9)
    spot = np.exp(-(((xx - cx) / (W * rng.uniform(0.25, 0.7))) ** 2 + ((yy - cy) / (H * rng.uniform(0.25, 0.7))) ** 2))
    light = rng.uniform(0.3, 0.7) + rng.uniform(0.3, 1.0) * spot
    img = (img * light[..., None]) * (1 - haze[..., None]) + veil_img * haze[..., None] * rng.uniform(0.4, 1.0)
    r2 = ((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / (W / 2) ** 2
    img = img * (1 - rng.uniform(0.1, 0.5) * r2)[..., None]
    # Camera: barrel distortion of image and mask together.
    k1 = rng.uniform(-0.25, 0.0)
    nx, ny = (xx - W / 2) / (W / 2), (yy - H / 2) / (W / 2)
    rr = nx * nx + ny * ny
    mapx = (W / 2 + nx * (1 + k1 * rr) * (W / 2)).astype(np.float32)
    mapy = (H / 2 + ny * (1 + k1 * rr) * (W / 2)).astype(np.float32)
    img = cv2.remap(img.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.remap(mask.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # Lateral chromatic aberration: red and blue scaled slightly about the centre.
    for ch, s in ((0, 1 + rng.uniform(0, 0.006)), (2, 1 - rng.uniform(0, 0.006))):
        m = cv2.getRotationMatrix2D((W / 2, H / 2), 0, s)
        img[..., ch] = cv2.warpAffine(img[..., ch], m, (W, H), borderMode=cv2.BORDER_REFLECT)
    kb = int(rng.integers(1, 4)) * 2 - 1
    img = cv2.blur(img, (kb, kb))
    img = img / max(float(np.percentile(img, 99.5)), 1e-3) * rng.uniform(0.5, 1.0)
    img = img + rng.normal(0, rng.uniform(0.005, 0.04), img.shape).astype(np.float32)
    img = np.clip(img, 0, 1) ** rng.uniform(0.6, 1.1)
    if rng.random() < 0.5:  # in-camera sharpening
        img = np.clip(img + rng.uniform(0.3, 1.0) * (img - cv2.GaussianBlur(img, (0, 0), 2)), 0, 1)
    rgb = np.round(img * 255).astype(np.uint8)
    q = int(rng.integers(30, 91))
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    mask_u8 = np.where(mask > 0.5, 255, 0).astype(np.uint8)
    meta = {"split": "xr", "index": index, "kind": kind if kind != "seabed" else "negative", "water": "altgen",
            "renderer": "altgen", "jpeg_quality": q, "pipeline_fraction": round(float((mask_u8 > 0).mean()), 5)}
    return rgb, mask_u8, meta, buf.tobytes()
