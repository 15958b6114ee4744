"""The synthetic bucket must be reproducible and must carry the corpus -> Toto shift.

Downstream tests (ingestion, skew/drift, the nightly DAG) lean on these
properties, so they are pinned here, without TensorFlow.
"""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline_src import images
from pipeline_src.tools import cli
from pipeline_src.tools import synth

LABELS = ("lion", "tiger", "bear")
START = dt.date(2026, 1, 1)
NIGHTS = ("2026-01-01", "2026-01-02")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def _decode(path: Path):
    return images.decode(path.read_bytes())


def _sharpness(rgb: Image.Image) -> float:
    """Mean gradient magnitude relative to mean luminance: blur lowers it, darkening does not."""
    lum = np.asarray(rgb.convert("L"), dtype=np.float32)
    gy, gx = np.gradient(lum)
    return float(np.hypot(gx, gy).mean() / (lum.mean() + 1e-6))


def _hsv_histogram(rgb: Image.Image) -> np.ndarray:
    """Hue x saturation x relative value: a colour signature that survives darkening."""
    hsv = np.asarray(rgb.resize((64, 64)).convert("HSV"), dtype=np.float32)
    value = hsv[..., 2] / (hsv[..., 2].mean() + 1e-6) * 0.5
    hist, _ = np.histogramdd(
        np.stack([hsv[..., 0].ravel(), hsv[..., 1].ravel(), np.clip(value.ravel(), 0, 0.999)], 1),
        bins=(12, 4, 3), range=((0, 256), (0, 256), (0, 1)))
    return np.sqrt(hist.ravel() / hist.sum())


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    root = tmp_path_factory.mktemp("bucket")
    summary = synth.synthesize(root, nights=2, seed=0, start_date=START)
    return root, summary


def test_layout_counts_and_summary(bucket):
    root, summary = bucket
    assert summary["nights"] == list(NIGHTS)
    assert summary["corpus"] == {label: 40 for label in LABELS}
    assert summary["toto"] == {night: {label: 12 for label in LABELS} for night in NIGHTS}
    assert summary["total"] == 3 * 40 + 2 * 3 * 12
    assert sorted(p.name for p in root.iterdir()) == ["corpus", "toto"]
    assert sorted(p.name for p in (root / "corpus").iterdir()) == sorted(LABELS)
    assert sorted(p.name for p in (root / "toto").iterdir()) == list(NIGHTS)
    for label in LABELS:
        assert len(list((root / "corpus" / label).glob("*.jpg"))) == 40
        for night in NIGHTS:
            assert len(list((root / "toto" / night / label).glob("*.jpg"))) == 12
    names = [p.name for p in root.rglob("*.jpg")]
    assert len(names) == len(set(names)), "file names are unique across the bucket"


def test_same_arguments_same_bytes_and_per_image_seeding(tmp_path, bucket):
    kwargs = dict(nights=1, seed=0, corpus_per_label=2, toto_per_label=2)
    synth.synthesize(tmp_path / "a", **kwargs)
    synth.synthesize(tmp_path / "b", **kwargs)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 3 * 2 + 3 * 2 and a == b
    # each image has its own seed: a smaller run is a byte-exact subset of a bigger one
    big = _files(bucket[0])
    assert all(big[name] == data for name, data in a.items())


def test_different_seed_different_bytes(tmp_path):
    kwargs = dict(nights=1, corpus_per_label=2, toto_per_label=2)
    synth.synthesize(tmp_path / "a", seed=0, **kwargs)
    synth.synthesize(tmp_path / "b", seed=1, **kwargs)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in a)


def test_corpus_is_landscape_and_toto_portrait(bucket):
    root, _ = bucket
    for path in root.glob("corpus/*/*.jpg"):
        info = _decode(path)[1]
        assert info.format == "JPEG" and info.width * 3 == info.height * 4 > 0
    for path in root.glob("toto/*/*/*.jpg"):
        info = _decode(path)[1]
        assert info.format == "JPEG" and info.width * 4 == info.height * 3 > 0


def test_toto_is_darker_and_blurrier_than_the_corpus(bucket):
    root, _ = bucket
    corpus = [_decode(p) for p in sorted(root.glob("corpus/*/*.jpg"))]
    toto = [_decode(p) for p in sorted(root.glob(f"toto/{NIGHTS[-1]}/*/*.jpg"))]
    corpus_brightness = np.mean([info.brightness for _, info in corpus])
    toto_brightness = np.mean([info.brightness for _, info in toto])
    assert corpus_brightness > 0.45, "the corpus is bright"
    assert toto_brightness < 0.8 * corpus_brightness
    # mostly separate distributions, not just different means: the skew check must fire
    assert np.percentile([i.brightness for _, i in toto], 75) < np.percentile(
        [i.brightness for _, i in corpus], 25)
    corpus_sharp = np.mean([_sharpness(rgb) for rgb, _ in corpus])
    toto_sharp = np.mean([_sharpness(rgb) for rgb, _ in toto])
    assert toto_sharp < 0.7 * corpus_sharp


def test_capture_times_are_readable_and_on_their_night(bucket):
    root, _ = bucket
    for night in NIGHTS:
        hours = set()
        for path in root.glob(f"toto/{night}/*/*.jpg"):
            when = _decode(path)[1].capture_time
            assert when is not None and when.date().isoformat() == night
            assert 17 <= when.hour <= 23
            hours.add(when.hour)
        assert len(hours) >= 4, "capture hours vary (capture_hour is an eval slice)"
    for path in root.glob("corpus/*/*.jpg"):
        when = _decode(path)[1].capture_time
        assert when is not None and when.date() < START and 8 <= when.hour <= 16


def test_landscape_style_makes_a_clean_night(tmp_path, bucket):
    synth.synthesize(tmp_path, nights=1, seed=0, corpus_per_label=0, toto_per_label=12,
                     toto_style="landscape")
    toto = [_decode(p) for p in sorted(tmp_path.glob("toto/2026-01-01/*/*.jpg"))]
    corpus = [_decode(p) for p in sorted(bucket[0].glob("corpus/*/*.jpg"))]
    assert len(toto) == 36
    assert all(info.width * 3 == info.height * 4 for _, info in toto)
    assert all(info.capture_time.date() == START for _, info in toto)
    brightness = [np.mean([info.brightness for _, info in imgs]) for imgs in (toto, corpus)]
    assert abs(brightness[0] - brightness[1]) < 0.05
    sharp = [np.mean([_sharpness(rgb) for rgb, _ in imgs]) for imgs in (toto, corpus)]
    assert 0.8 < sharp[0] / sharp[1] < 1.25


def test_extra_toto_labels_appear_only_in_toto_nights(tmp_path):
    summary = synth.synthesize(tmp_path, nights=2, seed=0, corpus_per_label=1, toto_per_label=2,
                               extra_toto_labels=("wolf",))
    assert not (tmp_path / "corpus" / "wolf").exists()
    assert summary["corpus"] == {label: 1 for label in LABELS}
    for night in NIGHTS:
        assert summary["toto"][night] == {"lion": 2, "tiger": 2, "bear": 2, "wolf": 2}
        wolves = sorted((tmp_path / "toto" / night / "wolf").glob("*.jpg"))
        assert len(wolves) == 2
        assert all(_decode(p)[1].format == "JPEG" for p in wolves)


@pytest.mark.parametrize("style, toto_size", [("portrait", (384, 512)),
                                               ("landscape", (640, 480)),
                                               ("upright", (480, 640))])
def test_scale_multiplies_every_photos_size(tmp_path, style, toto_size):
    """`scale=1.6`: the 640x480 corpus bench/bench_cost_growth.py asks for; Toto's photos keep
    their style's shape at the same scale."""
    synth.synthesize(tmp_path, nights=1, corpus_per_label=1, toto_per_label=1,
                     toto_style=style, scale=1.6)
    def sizes(pattern):
        return {(info.width, info.height)
                for info in (_decode(p)[1] for p in tmp_path.glob(pattern))}

    assert sizes("corpus/*/*.jpg") == {(640, 480)}
    assert sizes("toto/*/*/*.jpg") == {toto_size}
    with pytest.raises(ValueError, match="scale"):
        synth.synthesize(tmp_path, scale=0)


def test_rejects_unknown_style(tmp_path):
    with pytest.raises(ValueError, match="toto_style"):
        synth.synthesize(tmp_path, toto_style="square")


def test_cli_synth(tmp_path, capsys):
    args = ["synth", "--out", str(tmp_path / "cli"), "--nights", "2", "--seed", "3",
            "--start-date", "2026-02-10", "--corpus-per-label", "2", "--toto-per-label", "1",
            "--toto-style", "landscape", "--extra-toto-label", "wolf",
            "--extra-toto-label", "fox"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "2026-02-11" in out and str(tmp_path / "cli") in out
    synth.synthesize(tmp_path / "api", nights=2, seed=3, start_date=dt.date(2026, 2, 10),
                     corpus_per_label=2, toto_per_label=1, toto_style="landscape",
                     extra_toto_labels=("wolf", "fox"))
    written = _files(tmp_path / "cli")
    assert written == _files(tmp_path / "api")
    assert len(written) == 3 * 2 + 2 * 5
    assert (tmp_path / "cli" / "toto" / "2026-02-11" / "fox").is_dir()


def test_import_is_light():
    code = ("import sys, pipeline_src.tools.synth; "
            "bad = [m for m in ('tensorflow', 'tfx', 'airflow') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[3])


def test_classes_stay_separable_under_totos_shift(bucket):
    """Nearest class centroid on colour histograms, fit on the corpus only, scores on Toto.

    Evidence that the classes are learnable through the darkening, blur and
    framing shift (the CNN, which also sees earlier nights, has it easier).
    """
    root, _ = bucket

    def load(pattern):
        feats, ys = [], []
        for y, label in enumerate(LABELS):
            for path in sorted(root.glob(pattern.format(label=label))):
                feats.append(_hsv_histogram(_decode(path)[0]))
                ys.append(y)
        return np.stack(feats), np.array(ys)

    x_corpus, y_corpus = load("corpus/{label}/*.jpg")
    centroids = np.stack([x_corpus[y_corpus == k].mean(0) for k in range(len(LABELS))])
    for night in NIGHTS:
        x_night, y_night = load(f"toto/{night}/{{label}}/*.jpg")
        predicted = np.argmin(((x_night[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
        accuracy = float((predicted == y_night).mean())
        assert accuracy >= 0.8, f"{night}: nearest-centroid accuracy {accuracy:.2f}"
