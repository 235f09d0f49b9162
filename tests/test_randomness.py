"""Keyed randomness: the shortcut a hot loop takes gives exactly the draws ``Draws`` gives, so
a world played with it is the world the same seed always made."""

from __future__ import annotations

import math

import pytest

from harness.world.randomness import Draws, first_draws, key_material, poisson_from


@pytest.mark.parametrize("key", [("SKU-00042", 3, "losses"), ("DC2", "SKU 00002 2M", 0, "found")])
def test_first_draws_are_the_first_eight_a_draws_stream_gives(key: tuple[object, ...]) -> None:
    stream = Draws(2026, *key)
    assert first_draws(key_material(2026, *key)) == [stream.random() for _ in range(8)]
    assert first_draws(key_material(2027, *key)) != first_draws(key_material(2026, *key))


@pytest.mark.parametrize("mean", [0.0, -1.0, 0.15, 3.0, 49.9, 50.1, 400.0])
def test_poisson_from_two_draws_is_what_a_stream_counts(mean: float) -> None:
    counts = []
    for entity in range(200):
        stream = Draws(7, entity, "poisson")
        u, v = first_draws(key_material(7, entity, "poisson"))[:2]
        counts.append(poisson_from(u, v, mean))
        assert counts[-1] == stream.poisson(mean)
    if mean > 0:  # and it is a Poisson count: its average is near the mean
        assert abs(sum(counts) / len(counts) - mean) < 4 * math.sqrt(mean / len(counts)) + 0.05
    else:
        assert counts == [0] * 200
