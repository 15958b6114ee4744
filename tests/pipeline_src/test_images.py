"""pipeline_src.images: decode() (ExampleGen) and inspect() (ingestion) agree on what a bad image is."""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import sys
from pathlib import Path

import pytest
import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[2]

import emerald_testing as testing  # noqa: E402  (tests/emerald_testing.py: no Airflow import)
from pipeline_src import images  # noqa: E402

MAX = testing.BAD_MAX_PIXELS


def via_decode(data, max_pixels=MAX):
    image, info = images.decode(data, max_pixels)
    assert image.mode == "RGB" and image.size == (info.width, info.height)
    assert 0.0 <= info.brightness <= 1.0
    return info


def via_inspect(data, max_pixels=MAX):
    info = images.inspect(data, max_pixels)
    assert info.brightness is None                      # not measured on the light path
    return info


BOTH = pytest.mark.parametrize("path", [via_decode, via_inspect], ids=["decode", "inspect"])


@BOTH
def test_good_jpeg(path):
    info = path(testing.jpeg((64, 48)))
    assert (info.format, info.mode, info.width, info.height) == ("JPEG", "RGB", 64, 48)
    assert info.exif_orientation == 1 and info.capture_time is None


@BOTH
def test_png_is_decoded_by_content_whatever_the_name(path):
    info = path(testing.png((30, 40)))                  # what tiger/png-named.jpg holds
    assert (info.format, info.width, info.height) == ("PNG", 30, 40)


@BOTH
@pytest.mark.parametrize("mode,size", [("L", (32, 32)), ("CMYK", (36, 24))])
def test_grayscale_and_cmyk_are_accepted_keeping_their_original_mode(path, mode, size):
    info = path(testing.jpeg(size, mode=mode))
    assert (info.mode, info.width, info.height) == (mode, *size)


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_decode_converts_grayscale_and_cmyk_to_rgb(mode):
    image, info = images.decode(testing.jpeg((36, 24), mode=mode))
    assert image.mode == "RGB" and info.mode == mode
    if mode == "L":
        assert info.brightness == pytest.approx(128 / 255, abs=0.02)


@BOTH
@pytest.mark.parametrize("orientation,swapped", [(1, False), (2, False), (3, False), (4, False),
                                                 (5, True), (6, True), (7, True), (8, True)])
def test_exif_orientation_swaps_width_and_height_for_5_to_8(path, orientation, swapped):
    info = path(testing.jpeg((48, 64), exif={0x0112: orientation}))
    assert info.exif_orientation == orientation
    assert (info.width, info.height) == ((64, 48) if swapped else (48, 64))


def test_decode_returns_the_upright_pixels():
    image, info = images.decode(testing.jpeg((48, 64), exif={0x0112: 6}))
    assert image.size == (64, 48) == (info.width, info.height)


@BOTH
def test_capture_time_from_exif_datetime_original(path):
    info = path(testing.jpeg(exif={0x0112: 6, 0x9003: "2026:01:02 03:04:05"}))
    assert info.capture_time == dt.datetime(2026, 1, 2, 3, 4, 5)


@BOTH
def test_capture_time_falls_back_to_datetime_and_ignores_garbage(path):
    assert path(testing.jpeg(exif={0x0132: "2025:12:31 23:59:58"})).capture_time == \
        dt.datetime(2025, 12, 31, 23, 59, 58)
    assert path(testing.jpeg(exif={0x9003: "yesterday-ish"})).capture_time is None


def truncated_png() -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((200, 150), 64).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


REJECTED = {
    "zero bytes": (lambda: b"", "empty file (zero bytes)"),
    "truncated jpeg": (testing.truncated, "corrupt or truncated image"),
    "truncated png": (truncated_png, "corrupt or truncated image"),
    "garbled": (testing.garbled, None),                  # the header or the scan breaks
    "non-image": (lambda: b"this is not an image\n" * 10, "not an image (unrecognised format)"),
    "gif": (testing.gif, "unsupported image format GIF"),
    "pixel limit": (testing.bomb, "too many pixels: 3000x3000 = 9000000 > 1000000"),
}


@BOTH
@pytest.mark.parametrize("case", list(REJECTED))
def test_each_bad_input_is_rejected_with_its_reason(path, case):
    make, expected = REJECTED[case]
    with pytest.raises(images.BadImage) as exc:
        path(make())
    reason = exc.value.reason
    assert str(exc.value) == reason
    if expected is None:
        assert reason.startswith(("not an image", "corrupt or truncated image")), reason
    else:
        assert reason.startswith(expected), reason


@pytest.mark.parametrize("case", list(REJECTED))
def test_decode_and_inspect_give_the_same_reason(case):
    data = REJECTED[case][0]()
    reasons = []
    for fn in (lambda d: images.decode(d, MAX), lambda d: images.inspect(d, MAX)):
        with pytest.raises(images.BadImage) as exc:
            fn(data)
        reasons.append(exc.value.reason)
    assert reasons[0] == reasons[1]


@pytest.mark.parametrize("name", list(testing.GOOD))
def test_inspect_matches_decode_except_brightness(name):
    data = testing.GOOD[name]()
    full = images.decode(data, MAX)[1]
    light = images.inspect(data, MAX)
    assert full.pixels is not None
    assert light == dataclasses.replace(full, brightness=None, pixels=None)


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def test_pixel_statistics_have_the_values_their_definitions_give():
    flat = np.zeros((40, 60, 3)); flat[..., 0], flat[..., 1], flat[..., 2] = 255, 51, 102
    stats = images.decode(_png(flat))[1].pixels
    assert (stats.mean_red, stats.mean_green, stats.mean_blue) == pytest.approx(
        (1.0, 0.2, 0.4), abs=1e-4)
    assert stats.rms_contrast == pytest.approx(0.0, abs=1e-6)
    assert stats.sharpness == pytest.approx(0.0, abs=1e-9)   # no edges at all
    # Half black, half white columns: contrast 0.5; a checkerboard is much sharper
    # than the same checkerboard blurred.
    halves = np.zeros((40, 60, 3)); halves[:, 30:] = 255
    assert images.decode(_png(halves))[1].pixels.rms_contrast == pytest.approx(0.5, abs=1e-3)
    board = (np.indices((64, 64)).sum(axis=0) % 2 * 255)[..., None].repeat(3, axis=2)
    crisp = images.decode(_png(board))[1].pixels.sharpness
    blurred = Image.fromarray(board.astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    soft = images.decode(_png(np.asarray(blurred)))[1].pixels.sharpness
    assert crisp > 10 * soft > 0


def test_pixel_statistics_of_large_photos_are_measured_at_bounded_scale():
    big = np.zeros((1536, 2048, 3)); big[:, 1024:] = 255
    info = images.decode(_png(big))[1]
    assert (info.width, info.height) == (2048, 1536)             # the image itself is not resized
    assert info.pixels.rms_contrast == pytest.approx(0.5, abs=1e-3)
    assert info.brightness == pytest.approx(0.5, abs=1e-3)


def test_inspect_fully_decodes_without_draft(monkeypatch):
    """draft() would let a JPEG with a damaged scan through: the light path must not use it."""
    def no_draft(self, *a, **k):
        raise AssertionError("draft() used")
    from PIL import JpegImagePlugin
    monkeypatch.setattr(Image.Image, "draft", no_draft)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", no_draft)
    assert images.inspect(testing.jpeg((640, 480))).width == 640
    with pytest.raises(images.BadImage, match="corrupt or truncated"):
        images.inspect(testing.truncated())
