"""Warm start's pure parts: which images are new, and the replay sample (no TensorFlow)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline_src.model import warm_start
from pipeline_src.model.warm_start import TrainImages


def _images(counts: dict[str, int], label="lion") -> TrainImages:
    nights = [night for night, n in counts.items() for _ in range(n)]
    return TrainImages(tuple(nights), tuple([label] * len(nights)),
                       tuple(1000 + i for i in range(len(nights))))


HISTORY = {"corpus": 60, "2026-01-01": 20, "2026-01-02": 20, "2026-01-03": 10}
BASE = {"night_counts": {"corpus": 60, "2026-01-01": 20, "2026-01-02": 20}}


def test_new_images_are_the_nights_the_base_model_has_not_seen():
    images = _images(HISTORY)
    is_new = warm_start.new_images(images, BASE)
    assert is_new.sum() == 10
    assert {images.nights[i] for i in np.flatnonzero(is_new)} == {"2026-01-03"}


def test_a_night_that_grew_after_the_base_model_is_new_again():
    """Late uploads (or the corpus after the bootstrap night's hash split) are not missed."""
    images = _images(HISTORY)
    grown = {"night_counts": {**BASE["night_counts"], "2026-01-01": 17, "2026-01-03": 10}}
    is_new = warm_start.new_images(images, grown)
    assert {images.nights[i] for i in np.flatnonzero(is_new)} == {"2026-01-01"}


@pytest.mark.parametrize("fraction, expected", [(0.25, 25), (0.0, 0), (1.0, 100), (0.333, 33),
                                                (0.005, 1)])
def test_the_replay_sample_has_the_configured_size_and_only_older_images(fraction, expected):
    images = _images(HISTORY)
    is_new = warm_start.new_images(images, BASE)
    replay = warm_start.replay_sample(images, is_new, fraction, seed=42)
    assert replay.sum() == expected == warm_start.replay_size(100, fraction)
    assert not (replay & is_new).any()


def test_the_replay_sample_is_deterministic_and_rotates_with_the_nights():
    images = _images(HISTORY)
    is_new = warm_start.new_images(images, BASE)
    first = warm_start.replay_sample(images, is_new, 0.25, seed=42)
    again = warm_start.replay_sample(_images(HISTORY), is_new.copy(), 0.25, seed=42)
    assert np.array_equal(first, again)
    # Another night's new images (or another seed) replay another share of the history.
    tomorrow = _images({**HISTORY, "2026-01-04": 10})
    later = warm_start.replay_sample(
        tomorrow, warm_start.new_images(tomorrow, {"night_counts": dict(HISTORY)}), 0.25, seed=42)
    assert later.sum() == 28 and not np.array_equal(later[:100], first[:100])
    assert not np.array_equal(warm_start.replay_sample(images, is_new, 0.25, seed=7), first)


def test_unknown_labels_are_neither_new_nor_replayed():
    images = TrainImages(("corpus", "corpus", "2026-01-01", "2026-01-01"),
                         ("lion", "zebra", "tiger", "zebra"), (1, 2, 3, 4))
    new, replayed = warm_start.select(images, {"night_counts": {"corpus": 2}},
                                      ["lion", "tiger", "bear"], 1.0, seed=1)
    assert new.tolist() == [False, False, True, False]
    assert replayed.tolist() == [True, False, False, False]


def test_the_record_counts_what_the_model_has_seen_cumulatively():
    images = _images({"corpus": 5, "2026-01-02": 3})
    counts = warm_start.trained_on(images, {"night_counts": {"corpus": 5, "2026-01-01": 4}})
    assert counts == {"2026-01-01": 4, "2026-01-02": 3, "corpus": 5}
    assert warm_start.trained_on(images, None) == {"2026-01-02": 3, "corpus": 5}


def test_the_replay_is_capped_so_a_warm_nights_budget_stays_flat_as_the_history_grows():
    """A share of the history grows with it; the cap holds the replay at max_images."""
    assert [warm_start.replay_size(n, 0.25, max_images=500) for n in (400, 2000, 2001, 4701,
                                                                      100_000)] == [
        100, 500, 500, 500, 500]
    assert warm_start.replay_size(4701, 0.25, max_images=0) == 1175        # 0: no cap
    images = _images(HISTORY)
    is_new = warm_start.new_images(images, {"night_counts": {"corpus": 100}})
    capped = warm_start.replay_sample(images, is_new, 0.5, seed=42, max_images=10)
    uncapped = warm_start.replay_sample(images, is_new, 0.5, seed=42)
    assert capped.sum() == 10 and not (capped & is_new).any()
    assert (capped <= uncapped).all()         # the first ten of the same deterministic ranking
