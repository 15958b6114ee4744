"""Decode and measure one image; the single place that decides what a bad image is.

Used by ingestion (to quarantine) and by ExampleGen (to derive the features
that skew and drift are computed on: raw bytes mean nothing to TFDV).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import warnings
from typing import Optional

from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = ("JPEG", "PNG")
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME = 0x0132
_EXIF_IFD = 0x8769
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)


class BadImage(ValueError):
    """The bytes are not an image Emerald accepts; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Pixel statistics are measured on the image box-reduced by an integer factor so
# that its longer side is at most this: bounded cost for camera-sized photos, and
# sharpness on a comparable scale across resolutions.
ANALYSIS_MAX_SIDE = 512


@dataclasses.dataclass(frozen=True)
class PixelStats:
    """What skew detection compares besides size: all in [0, 1] units except sharpness."""
    rms_contrast: float               # standard deviation of luminance
    mean_red: float
    mean_green: float
    mean_blue: float
    sharpness: float                  # variance of the 4-neighbour Laplacian of luminance


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    format: str                       # JPEG | PNG (what the bytes are, not the name)
    width: int                        # after EXIF orientation
    height: int
    exif_orientation: int             # 1 when absent
    capture_time: Optional[dt.datetime]
    brightness: Optional[float]       # mean luminance in [0, 1]; None from inspect()
    mode: str                         # the original colour mode (L, RGB, CMYK, ...)
    pixels: Optional[PixelStats] = None   # None from inspect()


def _capture_time(image: Image.Image) -> Optional[dt.datetime]:
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block is not a broken image
        return None
    raw = exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL) or exif.get(_EXIF_DATETIME)
    if not raw:
        return None
    try:
        return dt.datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _open_loaded(data: bytes, max_pixels: int) -> Image.Image:
    """Opens and fully decodes `data` (no draft mode); raises BadImage with a reason.

    Both decode() and inspect() go through here, so they accept and reject the
    same inputs with the same reasons.
    """
    if not data:
        raise BadImage("empty file (zero bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format
            if fmt not in ACCEPTED_FORMATS:
                raise BadImage(f"unsupported image format {fmt}")
            width, height = probe.size
            if width * height > max_pixels:
                raise BadImage(
                    f"too many pixels: {width}x{height} = {width * height} > {max_pixels}")
            probe.load()  # full decode: truncated or garbled data fails here
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadImage(f"decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"corrupt or truncated image: {exc}") from None
    return probe


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001
        return 1


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, ImageInfo]:
    """Fully decodes `data` to an RGB image, upright; raises BadImage with a reason.

    What ExampleGen uses: the pixels, plus every ImageInfo field (brightness included).
    """
    import numpy as np   # here, not at import: ingestion's worker processes start faster

    probe = _open_loaded(data, max_pixels)
    fmt, mode = probe.format, probe.mode
    exif_orientation = _orientation(probe)
    capture = _capture_time(probe)
    upright = ImageOps.exif_transpose(probe)
    rgb = upright.convert("RGB")
    brightness, pixels = _pixel_stats(rgb, np)
    info = ImageInfo(
        format=fmt, width=rgb.width, height=rgb.height,
        exif_orientation=exif_orientation, capture_time=capture,
        brightness=brightness, mode=mode, pixels=pixels)
    return rgb, info


def _pixel_stats(rgb: Image.Image, np) -> tuple[float, PixelStats]:
    """Brightness and the other pixel statistics, on the analysis-scale image."""
    factor = -(-max(rgb.size) // ANALYSIS_MAX_SIDE)
    small = rgb.reduce(factor) if factor > 1 else rgb
    channels = np.asarray(small, dtype=np.float32) / 255.0
    luminance = np.asarray(small.convert("L"), dtype=np.float32) / 255.0
    if min(luminance.shape) >= 3:
        centre = luminance[1:-1, 1:-1]
        laplacian = (luminance[:-2, 1:-1] + luminance[2:, 1:-1] + luminance[1:-1, :-2]
                     + luminance[1:-1, 2:] - 4.0 * centre)
        sharpness = float(laplacian.var())
    else:
        sharpness = 0.0
    means = channels.reshape(-1, 3).mean(axis=0)
    return float(luminance.mean()), PixelStats(
        rms_contrast=float(luminance.std()), mean_red=float(means[0]),
        mean_green=float(means[1]), mean_blue=float(means[2]), sharpness=sharpness)


def inspect(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """decode()'s verdict and metadata at the cost of a bare full decode (ingestion's path).

    Accepts and rejects exactly what decode() does, with the same BadImage
    reasons: the pixels are fully decoded (`load()`, never `draft()`), so
    truncated or garbled data fails here too. The result matches decode()'s
    ImageInfo except `brightness` and `pixels`, None (not measured): no upright
    copy (width and height are swapped for EXIF orientations 5-8, as
    `exif_transpose` would), no RGB conversion, no luminance pass.
    """
    probe = _open_loaded(data, max_pixels)
    width, height = probe.size
    try:
        raw_orientation = probe.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001
        raw_orientation = 1
    if raw_orientation in _TRANSPOSED_ORIENTATIONS:   # what exif_transpose rotates by 90
        width, height = height, width
    info = ImageInfo(
        format=probe.format, width=width, height=height,
        exif_orientation=_orientation(probe), capture_time=_capture_time(probe),
        brightness=None, mode=probe.mode)
    probe.close()
    return info
