"""Synthetic lion/tiger/bear photos, laid out the way users fill the bucket.

Emerald has no real photos to ship, yet every stage downstream (ingestion,
skew and drift checks, training, the nightly DAG) needs images that behave
like the real ones: a bright, well-framed curated corpus, and nightly folders
of Toto's camera-trap shots that are portrait, darker, blurrier and framed
worse. That shift is the point: skew detection must see it and the model must
still learn the classes through it. Everything is seeded per image, so the
same arguments give byte-identical files and tests can pin exact outputs.

Only numpy and Pillow are imported: `emerald --help` must stay instant.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEFAULT_LABELS = ("lion", "tiger", "bear")
# portrait: Toto's camera (portrait, dark, blurred); landscape: like the corpus;
# dim: like the corpus but underexposed (x0.6); upright: like the corpus but held
# upright (300x400: the same pixel area, only the aspect ratio differs).
TOTO_STYLES = ("portrait", "landscape", "dim", "upright")
DIM_FACTOR = 0.6
CORPUS_SIZE = (400, 300)        # landscape 4:3, like the curated stock photos
TOTO_SIZE = (240, 320)          # portrait 3:4: Toto holds the phone upright
CORPUS_QUALITY = 92
TOTO_QUALITY = 85

_EXIF_IFD = 0x8769
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME = 0x0132
_EXIF_MAKE = 0x010F
_EXIF_MODEL = 0x0110

# Stable stream ids for the per-image seed (never reorder: files would change).
_STREAM_CORPUS = 1
_STREAM_TOTO = 2


# --------------------------------------------------------------------------- #
# Small drawing helpers
# --------------------------------------------------------------------------- #
def _rgb(colour) -> tuple[int, int, int]:
    return tuple(int(min(max(float(v), 0.0), 255.0)) for v in colour[:3])


def _jitter(rng: np.random.Generator, colour, scale=0.1, shift=8.0) -> tuple[int, int, int]:
    """Same hue family, different individual: one brightness factor plus small per-channel shifts."""
    c = np.asarray(colour, dtype=np.float64) * rng.uniform(1 - scale, 1 + scale)
    return _rgb(c + rng.uniform(-shift, shift, size=3))


def _shade(colour, factor: float) -> tuple[int, int, int]:
    return _rgb(np.asarray(colour, dtype=np.float64) * factor)


def _ellipse(draw: ImageDraw.ImageDraw, cx, cy, rx, ry, fill) -> None:
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=fill)


def _seed_for(seed: int, stream: int, label: str, night: int, index: int) -> np.random.Generator:
    """One generator per image, so a file never depends on how many others were drawn."""
    key = [int(seed) & 0xFFFFFFFF, stream, zlib.crc32(label.encode("utf-8")), night, index]
    return np.random.default_rng(np.random.SeedSequence(key))


# --------------------------------------------------------------------------- #
# Backgrounds: shared by every class, so scenery is never a label cue
# --------------------------------------------------------------------------- #
_SKIES = (
    ((95, 150, 215), (185, 215, 240)),    # clear blue
    ((150, 170, 190), (210, 215, 220)),   # overcast
    ((120, 160, 205), (225, 210, 185)),   # hazy late afternoon
    ((70, 120, 190), (160, 200, 235)),    # deep blue
)
_GROUNDS = {
    "savanna": ((205, 192, 140), (170, 150, 100)),   # pale dry grass
    "grass": ((120, 160, 85), (70, 120, 50)),
    "forest": ((85, 110, 70), (50, 75, 45)),
    "scrub": ((165, 150, 120), (120, 110, 85)),
}


def _background(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, int]:
    scene = ("savanna", "grass", "forest", "scrub")[int(rng.integers(4))]
    sky_top, sky_low = (np.asarray(_jitter(rng, c, 0.08, 10)) for c in
                        _SKIES[int(rng.integers(len(_SKIES)))])
    far, near = (np.asarray(_jitter(rng, c, 0.1, 10)) for c in _GROUNDS[scene])
    horizon = int(height * rng.uniform(0.28, 0.55))

    arr = np.empty((height, width, 3), dtype=np.float32)
    t = np.linspace(0.0, 1.0, max(horizon, 1), dtype=np.float32)[:, None]
    arr[:horizon] = (sky_top * (1 - t) + sky_low * t)[:, None, :]
    t = np.linspace(0.0, 1.0, height - horizon, dtype=np.float32)[:, None]
    arr[horizon:] = (far * (1 - t) + near * t)[:, None, :]
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)

    if scene == "forest" or rng.random() < 0.25:   # tree line on the horizon
        for _ in range(int(rng.integers(3, 9))):
            x = rng.uniform(0, width)
            trunk_h = rng.uniform(0.15, 0.4) * height
            trunk_w = rng.uniform(0.01, 0.03) * width
            trunk = _jitter(rng, (105, 98, 90), 0.15)
            draw.rectangle([x - trunk_w, horizon - trunk_h, x + trunk_w, horizon + 2], fill=trunk)
            canopy = _jitter(rng, (55, 95, 50), 0.2)
            _ellipse(draw, x, horizon - trunk_h, rng.uniform(0.05, 0.12) * width,
                     rng.uniform(0.04, 0.1) * height, canopy)
    if scene == "savanna" and rng.random() < 0.6:  # an acacia, flat-topped
        x = rng.uniform(0.05, 0.95) * width
        top = horizon - rng.uniform(0.1, 0.2) * height
        draw.line([x, horizon, x, top], fill=_jitter(rng, (85, 70, 55)), width=max(2, width // 120))
        _ellipse(draw, x, top, rng.uniform(0.08, 0.15) * width, 0.025 * height,
                 _jitter(rng, (80, 105, 60), 0.15))
    for _ in range(int(rng.integers(0, 4))):         # rocks and bushes
        x = rng.uniform(0, width)
        y = rng.uniform(horizon, height)
        rx = rng.uniform(0.02, 0.07) * width
        colour = _jitter(rng, (140, 138, 130) if rng.random() < 0.5 else (80, 110, 60), 0.15)
        _ellipse(draw, x, y, rx, rx * rng.uniform(0.4, 0.7), colour)
    blade_light, blade_dark = _shade(near, 1.18), _shade(near, 0.75)
    for _ in range(int(rng.integers(40, 110))):       # grass blades
        x = rng.uniform(0, width)
        y = rng.uniform(horizon, height)
        length = (4 + 14 * (y - horizon) / max(height - horizon, 1)) * rng.uniform(0.6, 1.4)
        draw.line([x, y, x + rng.uniform(-3, 3), y - length],
                  fill=blade_light if rng.random() < 0.5 else blade_dark, width=1)
    return image, horizon


# --------------------------------------------------------------------------- #
# Animals. Each has one cue that survives darkening and blur (hue, not
# brightness) and one shape cue: lion = golden body + dark shaggy mane,
# tiger = saturated orange + black stripes, bear = dark, unsaturated, round
# body with small round ears.
# --------------------------------------------------------------------------- #
def _legs(draw, rng, cx, cy, a, b, leg_len, leg_w, near, far, d) -> None:
    for i, (rel, colour) in enumerate(((-0.62, far), (0.45, far), (-0.45, near), (0.62, near))):
        x = cx + d * rel * a + rng.uniform(-0.04, 0.04) * a
        top = cy + b * 0.3
        bottom = cy + b * 0.85 + leg_len * rng.uniform(0.9, 1.1)
        draw.rounded_rectangle([x - leg_w / 2, top, x + leg_w / 2, bottom],
                               radius=leg_w / 2.5, fill=colour)


def _lion(draw, rng, cx, cy, s, d) -> None:
    body = _jitter(rng, (226, 186, 78), 0.07, 6)
    mane = _jitter(rng, (150, 84, 24), 0.1, 6)
    a, b = s / 2, s * rng.uniform(0.19, 0.23)
    lying = rng.random() < 0.3
    leg_len = s * (0.07 if lying else rng.uniform(0.22, 0.3))
    # tail with the dark tuft
    tx, ty = cx - d * a * 0.95, cy - b * 0.2
    ex, ey = tx - d * s * rng.uniform(0.25, 0.35), cy + b * rng.uniform(-0.2, 0.9)
    draw.line([tx, ty, (tx + ex) / 2, ty + b * 0.5, ex, ey], fill=body, width=max(2, int(s * 0.035)))
    _ellipse(draw, ex, ey, s * 0.04, s * 0.05, mane)
    _legs(draw, rng, cx, cy, a, b, leg_len, s * 0.085, body, _shade(body, 0.82), d)
    _ellipse(draw, cx, cy, a, b, body)
    # head, framed by a shaggy mane ring
    r = s * rng.uniform(0.13, 0.16)
    hx = cx + d * a * rng.uniform(0.78, 0.95)
    hy = cy - b * rng.uniform(0.7, 1.3)
    _ellipse(draw, hx, hy, r * 1.55, r * 1.6, mane)
    for _ in range(int(rng.integers(18, 28))):
        theta = rng.uniform(0, 2 * np.pi)
        spread = rng.uniform(0.12, 0.25)
        tip = r * rng.uniform(1.75, 2.1)
        base = r * 1.3
        pts = [(hx + base * np.cos(theta - spread), hy + base * np.sin(theta - spread)),
               (hx + tip * np.cos(theta), hy + tip * np.sin(theta)),
               (hx + base * np.cos(theta + spread), hy + base * np.sin(theta + spread))]
        draw.polygon(pts, fill=_shade(mane, rng.uniform(0.75, 1.15)))
    _ellipse(draw, hx, hy, r, r * 1.05, _shade(body, 1.05))
    _ellipse(draw, hx + d * r * 0.35, hy + r * 0.45, r * 0.5, r * 0.35, _jitter(rng, (235, 215, 170), 0.05))
    eye = _rgb((40, 30, 20))
    for ox in (-0.35, 0.35):
        _ellipse(draw, hx + d * r * 0.2 + ox * r, hy - r * 0.2, r * 0.1, r * 0.1, eye)
    _ellipse(draw, hx + d * r * 0.45, hy + r * 0.3, r * 0.14, r * 0.1, _rgb((70, 40, 30)))


def _stripe(draw, x, y_top, length, width, tilt, colour) -> None:
    draw.polygon([(x - width / 2, y_top), (x + width / 2, y_top),
                  (x + tilt + width * 0.15, y_top + length), (x + tilt - width * 0.15, y_top + length)],
                 fill=colour)


def _tiger(draw, rng, cx, cy, s, d) -> None:
    body = _jitter(rng, (236, 98, 14), 0.06, 6)
    black = _jitter(rng, (22, 16, 12), 0.2, 4)
    cream = _jitter(rng, (240, 228, 205), 0.04, 5)
    a, b = s / 2, s * rng.uniform(0.18, 0.22)
    lying = rng.random() < 0.3
    leg_len = s * (0.07 if lying else rng.uniform(0.22, 0.3))
    # ringed tail
    tx, ty = cx - d * a * 0.95, cy - b * 0.1
    ex, ey = tx - d * s * rng.uniform(0.3, 0.4), cy + b * rng.uniform(-0.6, 0.8)
    width = max(3, int(s * 0.045))
    for k in range(6):
        t0, t1 = k / 6, (k + 1) / 6
        draw.line([tx + (ex - tx) * t0, ty + (ey - ty) * t0, tx + (ex - tx) * t1, ty + (ey - ty) * t1],
                  fill=black if k % 2 else body, width=width)
    _legs(draw, rng, cx, cy, a, b, leg_len, s * 0.08, body, _shade(body, 0.85), d)
    _ellipse(draw, cx, cy, a, b, body)
    _ellipse(draw, cx + d * a * 0.1, cy + b * 0.65, a * 0.5, b * 0.3, cream)
    # the stripes: dark, tapering, across the back
    n = int(rng.integers(7, 10))
    for x in np.linspace(cx - 0.82 * a, cx + 0.72 * a, n) + rng.uniform(-0.04, 0.04, n) * a:
        half = b * np.sqrt(max(1 - ((x - cx) / a) ** 2, 0.0))
        _stripe(draw, x, cy - half - 1, 2 * half * rng.uniform(0.45, 0.8),
                s * rng.uniform(0.045, 0.06), rng.uniform(-0.04, 0.04) * s, black)
    for x0 in (cx - d * 0.45 * a, cx + d * 0.62 * a):    # stripes on the legs
        for k in range(2):
            y = cy + b + leg_len * (0.25 + 0.3 * k)
            draw.line([x0 - s * 0.05, y, x0 + s * 0.05, y + 2], fill=black, width=max(1, int(s * 0.018)))
    # head
    r = s * rng.uniform(0.13, 0.15)
    hx = cx + d * a * rng.uniform(0.85, 1.0)
    hy = cy - b * rng.uniform(0.5, 1.1)
    for ox in (-0.65, 0.65):
        _ellipse(draw, hx + ox * r, hy - r * 0.8, r * 0.3, r * 0.3, body)
        _ellipse(draw, hx + ox * r, hy - r * 0.8, r * 0.15, r * 0.15, black)
    _ellipse(draw, hx, hy, r, r * 0.95, body)
    _ellipse(draw, hx - r * 0.45, hy + r * 0.4, r * 0.45, r * 0.35, cream)
    _ellipse(draw, hx + r * 0.45, hy + r * 0.4, r * 0.45, r * 0.35, cream)
    for ox in (-0.3, 0.0, 0.3):
        _stripe(draw, hx + ox * r, hy - r * 0.95, r * 0.55, r * 0.14, 0, black)
    for ox in (-1, 1):
        draw.line([hx + ox * r, hy, hx + ox * r * 0.55, hy + r * 0.1], fill=black, width=max(1, int(r * 0.12)))
        _ellipse(draw, hx + ox * r * 0.35, hy - r * 0.15, r * 0.09, r * 0.09, _rgb((50, 60, 20)))
    _ellipse(draw, hx, hy + r * 0.3, r * 0.13, r * 0.09, _rgb((180, 90, 90)))


def _bear(draw, rng, cx, cy, s, d) -> None:
    base = ((74, 56, 46), (62, 48, 42), (86, 66, 54))[int(rng.integers(3))]
    body = _jitter(rng, base, 0.1, 5)
    snout = _jitter(rng, (135, 105, 80), 0.08, 6)
    black = _rgb((25, 20, 18))
    if rng.random() < 0.3:   # sitting upright: a tall round lump
        rx, ry = s * rng.uniform(0.24, 0.3), s * rng.uniform(0.32, 0.38)
        cy = cy - s * 0.05
        _ellipse(draw, cx - rx * 0.6, cy + ry * 0.9, rx * 0.45, ry * 0.22, _shade(body, 0.85))
        _ellipse(draw, cx + rx * 0.6, cy + ry * 0.9, rx * 0.45, ry * 0.22, _shade(body, 0.85))
        _ellipse(draw, cx, cy, rx, ry, body)
        r = s * rng.uniform(0.15, 0.17)
        hx, hy = cx + d * rx * 0.15, cy - ry - r * 0.55
    else:                    # on all fours, shoulder hump, head low
        a, b = s / 2 * rng.uniform(0.9, 1.0), s * rng.uniform(0.27, 0.32)
        leg_len = s * rng.uniform(0.12, 0.18)
        _legs(draw, rng, cx, cy, a, b, leg_len, s * 0.13, body, _shade(body, 0.8), d)
        _ellipse(draw, cx, cy, a, b, body)
        _ellipse(draw, cx + d * a * 0.4, cy - b * 0.45, a * 0.45, b * 0.65, body)   # hump
        r = s * rng.uniform(0.15, 0.17)
        hx, hy = cx + d * a * rng.uniform(0.9, 1.05), cy - b * rng.uniform(-0.1, 0.5)
    # small round ears, then head and pale snout
    for ox in (-0.62, 0.62):
        _ellipse(draw, hx + ox * r, hy - r * 0.8, r * 0.3, r * 0.3, body)
        _ellipse(draw, hx + ox * r, hy - r * 0.8, r * 0.14, r * 0.14, snout)
    _ellipse(draw, hx, hy, r, r, body)
    _ellipse(draw, hx + d * r * 0.45, hy + r * 0.35, r * 0.55, r * 0.4, snout)
    _ellipse(draw, hx + d * r * 0.8, hy + r * 0.25, r * 0.16, r * 0.12, black)
    _ellipse(draw, hx - d * r * 0.05, hy - r * 0.25, r * 0.09, r * 0.09, black)
    _ellipse(draw, hx + d * r * 0.35, hy - r * 0.25, r * 0.09, r * 0.09, black)


def _other(draw, rng, cx, cy, s, d, label: str) -> None:
    """Any label the schema does not know: a grey canine, tinted by its name."""
    tint = (np.array([zlib.crc32(label.encode()) >> k & 0xFF for k in (0, 8, 16)]) - 128) / 6
    body = _jitter(rng, np.array((138, 138, 145)) + tint, 0.08, 6)
    pale = _shade(body, 1.3)
    a, b = s * 0.45, s * rng.uniform(0.14, 0.17)
    tx, ty = cx - d * a * 0.9, cy - b * 0.2
    draw.polygon([(tx, ty - b * 0.3), (tx - d * s * 0.35, cy + b * 1.2), (tx, ty + b * 0.4)], fill=body)
    _legs(draw, rng, cx, cy, a, b, s * rng.uniform(0.3, 0.36), s * 0.055, body, _shade(body, 0.8), d)
    _ellipse(draw, cx, cy, a, b, body)
    _ellipse(draw, cx + d * a * 0.1, cy + b * 0.5, a * 0.7, b * 0.4, pale)
    r = s * 0.1
    hx, hy = cx + d * a * 1.0, cy - b * rng.uniform(1.2, 1.8)
    draw.line([cx + d * a * 0.6, cy - b * 0.3, hx, hy], fill=body, width=int(r * 1.4))
    for ox in (-0.5, 0.4):
        draw.polygon([(hx + ox * r - r * 0.35, hy - r * 0.6), (hx + ox * r, hy - r * 1.8),
                      (hx + ox * r + r * 0.35, hy - r * 0.6)], fill=body)
    _ellipse(draw, hx, hy, r, r, body)
    draw.polygon([(hx + d * r * 0.5, hy - r * 0.5), (hx + d * r * 2.2, hy + r * 0.2),
                  (hx + d * r * 0.5, hy + r * 0.7)], fill=pale)
    _ellipse(draw, hx + d * r * 2.1, hy + r * 0.2, r * 0.18, r * 0.15, _rgb((20, 20, 20)))
    _ellipse(draw, hx + d * r * 0.3, hy - r * 0.2, r * 0.12, r * 0.12, _rgb((20, 20, 20)))


_ANIMALS = {"lion": _lion, "tiger": _tiger, "bear": _bear}


# --------------------------------------------------------------------------- #
# One photo
# --------------------------------------------------------------------------- #
def _photo(rng: np.random.Generator, label: str, toto_look: bool,
           size: tuple[int, int] | None = None, exposure: float = 1.0) -> Image.Image:
    """Corpus look: large, centred, bright, sharp. Toto look: small, off-centre, dark, soft.

    `size` and `exposure` vary one property of the corpus look alone (the
    `upright` and `dim` styles), so a test knows which property moved.
    """
    width, height = size or (TOTO_SIZE if toto_look else CORPUS_SIZE)
    image, horizon = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    d = 1 if rng.random() < 0.5 else -1
    if toto_look:
        s = width * rng.uniform(0.46, 0.6)
        side = 1 if rng.random() < 0.5 else -1
        cx = width * (0.5 + side * rng.uniform(0.08, 0.2))
        cx = min(max(cx, 0.62 * s), width - 0.62 * s)   # off-centre, but head and body in frame
        cy = height * rng.uniform(0.55, 0.78)
    else:
        s = width * rng.uniform(0.46, 0.6)
        cx = width * (0.5 + rng.uniform(-0.06, 0.06))
        cy = height * rng.uniform(0.55, 0.62)
    cy = max(cy, horizon + s * 0.05)
    draw_animal = _ANIMALS.get(label)
    if draw_animal is None:
        _other(draw, rng, cx, cy, s, d, label)
    else:
        draw_animal(draw, rng, cx, cy, s, d)

    # lighting: a colour cast and a left-right falloff, then (luma) sensor noise
    arr = np.asarray(image, dtype=np.float32)
    ramp = np.linspace(1 - rng.uniform(0, 0.12), 1 + rng.uniform(0, 0.12), width, dtype=np.float32)
    if rng.random() < 0.5:
        ramp = ramp[::-1]
    cast = rng.uniform(0.93, 1.07, size=3).astype(np.float32)
    arr = arr * ramp[None, :, None] * cast[None, None, :]
    noise_sigma = rng.uniform(3, 7) if toto_look else rng.uniform(1.5, 4)
    arr += rng.standard_normal(size=(height, width, 1), dtype=np.float32) * np.float32(noise_sigma)
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if toto_look:
        # focus blur smooths the sensor noise too (as the phone's denoiser does), then dusk
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.1, 1.9))))
        factor = rng.uniform(0.5, 0.75)
    else:
        factor = rng.uniform(0.85, 1.1)
    arr = np.asarray(image, dtype=np.float32) * factor * exposure
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


def _encode(image: Image.Image, when: dt.datetime, camera: str, quality: int) -> bytes:
    exif = Image.Exif()
    stamp = when.strftime("%Y:%m:%d %H:%M:%S")
    exif[_EXIF_MAKE] = "Emerald"
    exif[_EXIF_MODEL] = camera
    exif[_EXIF_DATETIME] = stamp
    exif.get_ifd(_EXIF_IFD)[_EXIF_DATETIME_ORIGINAL] = stamp
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def _corpus_time(rng: np.random.Generator, start_date: dt.date) -> dt.datetime:
    """Stock photos: daytime, some day in the year before Toto started."""
    day = start_date - dt.timedelta(days=int(rng.integers(30, 395)))
    return dt.datetime.combine(day, dt.time(int(rng.integers(8, 17)), int(rng.integers(60)),
                                            int(rng.integers(60))))


def _toto_time(rng: np.random.Generator, night: dt.date) -> dt.datetime:
    """Toto shoots after dinner: 17:00-23:59 on the night's own date, so date == folder."""
    return dt.datetime.combine(night, dt.time(int(rng.integers(17, 24)), int(rng.integers(60)),
                                              int(rng.integers(60))))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return round(size[0] * scale), round(size[1] * scale)


def synthesize(out_dir, nights: int = 3, seed: int = 0,
               start_date: dt.date = dt.date(2026, 1, 1),
               corpus_per_label: int = 40, toto_per_label: int = 12,
               labels: Sequence[str] = DEFAULT_LABELS, toto_style: str = "portrait",
               extra_toto_labels: Iterable[str] = (), scale: float = 1.0) -> dict:
    """Writes {out}/corpus/{label}/*.jpg and {out}/toto/{YYYY-MM-DD}/{label}/*.jpg.

    Existing files with the same names are overwritten; nothing is deleted, so
    reuse a fresh directory when shrinking `nights`. `scale` multiplies every
    photo's width and height (1.6: a 640x480 corpus, as a benchmark at a real
    camera's size wants); the demo's 1.0 keeps them small and quick.
    """
    if toto_style not in TOTO_STYLES:
        raise ValueError(f"toto_style {toto_style!r} is not one of {TOTO_STYLES}")
    if nights < 0 or corpus_per_label < 0 or toto_per_label < 0:
        raise ValueError("nights and per-label counts must be >= 0")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, not {scale}")
    corpus_size = _scaled(CORPUS_SIZE, scale)
    toto_size = _scaled({"portrait": TOTO_SIZE, "upright": CORPUS_SIZE[::-1]}.get(
        toto_style, CORPUS_SIZE), scale)
    labels = tuple(labels)
    extra = tuple(x for x in extra_toto_labels if x not in labels)
    out = Path(out_dir)

    corpus_counts = {}
    for label in labels:
        for i in range(corpus_per_label):
            rng = _seed_for(seed, _STREAM_CORPUS, label, 0, i)
            image = _photo(rng, label, toto_look=False, size=corpus_size)
            data = _encode(image, _corpus_time(rng, start_date), "Curated", CORPUS_QUALITY)
            _write(out / "corpus" / label / f"{label}_{i:04d}.jpg", data)
        corpus_counts[label] = corpus_per_label

    night_dates, toto_counts = [], {}
    for n in range(nights):
        night = start_date + dt.timedelta(days=n)
        iso = night.isoformat()
        night_dates.append(iso)
        toto_counts[iso] = {}
        for label in labels + extra:
            for i in range(toto_per_label):
                rng = _seed_for(seed, _STREAM_TOTO, label, night.toordinal(), i)
                image = _photo(rng, label, toto_look=toto_style == "portrait", size=toto_size,
                               exposure=DIM_FACTOR if toto_style == "dim" else 1.0)
                data = _encode(image, _toto_time(rng, night), "Toto", TOTO_QUALITY)
                name = f"toto_{night:%Y%m%d}_{label}_{i:04d}.jpg"
                _write(out / "toto" / iso / label / name, data)
            toto_counts[iso][label] = toto_per_label

    return {
        "out_dir": str(out),
        "corpus": corpus_counts,
        "toto": toto_counts,
        "nights": night_dates,
        "total": sum(corpus_counts.values()) + sum(sum(c.values()) for c in toto_counts.values()),
    }


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="write a synthetic corpus and Toto nights (the demo's bucket)",
        description="Write deterministic synthetic photos in the bucket layout "
                    "corpus/{label}/ and toto/{YYYY-MM-DD}/{label}/.")
    p.add_argument("--out", required=True, help="directory to write (created if missing)")
    p.add_argument("--nights", type=int, default=3, help="Toto nights to write (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-date", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1),
                   help="date of the first night, YYYY-MM-DD (default 2026-01-01)")
    p.add_argument("--corpus-per-label", type=int, default=40)
    p.add_argument("--toto-per-label", type=int, default=12)
    p.add_argument("--toto-style", choices=TOTO_STYLES, default="portrait",
                   help="landscape makes Toto's nights look like the corpus (no skew); dim: "
                        "the corpus underexposed; upright: the corpus held upright (3:4)")
    p.add_argument("--extra-toto-label", action="append", default=[], metavar="NAME",
                   help="add a label folder the schema does not know to every night (repeatable)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every photo's width and height (1.6: a 640x480 corpus)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    summary = synthesize(
        args.out, nights=args.nights, seed=args.seed, start_date=args.start_date,
        corpus_per_label=args.corpus_per_label, toto_per_label=args.toto_per_label,
        toto_style=args.toto_style, extra_toto_labels=tuple(args.extra_toto_label),
        scale=args.scale)
    corpus = ", ".join(f"{k} {v}" for k, v in summary["corpus"].items())
    print(f"corpus: {sum(summary['corpus'].values())} images ({corpus})")
    for night, counts in summary["toto"].items():
        per = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"toto {night}: {sum(counts.values())} images ({per})")
    print(f"wrote {summary['total']} images to {summary['out_dir']}")
    return 0
