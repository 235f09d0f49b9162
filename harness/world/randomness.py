"""Keyed randomness (ARCHITECTURE principle 3).

Every random outcome is drawn from a generator seeded by (scenario seed, entity, purpose),
never from one shared stream, so the world is the same however the stack interleaves
its calls: line 2 of SO-000042 is short in every run with that seed, or in none.

Two tools:

- ``Draws(seed, entity, purpose)``: a short keyed stream of uniforms, hashed straight from
  the key (blake2b, 8 draws per hash). The world's hot paths use it: a fresh generator per
  order and purpose costs about a microsecond, where seeding a ``random.Random`` costs four
  or five.
- ``keyed(seed, entity, purpose)``: a full ``random.Random`` for code that wants one
  (Faker, shuffles), seeded the same way.

A draw's meaning is fixed by its position in its stream: code that draws must always draw
the same number of values in the same order, whatever branch it takes afterwards.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from bisect import bisect_right
from collections.abc import Sequence

_BLAKE = hashlib.blake2b
_WORDS_OF = struct.Struct(">8Q").unpack  # a 64-byte digest as eight 64-bit words
_SCALE = 1.0 / (1 << 53)  # 53 random bits make a float in [0, 1)
_WORDS = 8
_BLOCK = [i.to_bytes(4, "big") for i in range(64)]


def _material(seed: int, key: tuple[object, ...]) -> bytes:
    return ":".join(map(str, (seed, *key))).encode()


def first_draws(material: bytes) -> list[float]:
    """The first eight draws of the stream whose key is ``material`` (``key_material``): what
    ``Draws`` gives first, in one hash and no object. For loops over thousands of keys a day
    (every shelf's losses), where building a ``Draws`` per key was most of the cost."""
    return [(word >> 11) * _SCALE for word in _WORDS_OF(_BLAKE(material + _BLOCK[0]).digest())]


def key_material(seed: int, *key: object) -> bytes:
    """The bytes a stream keyed by (seed, *key) is hashed from."""
    return _material(seed, key)


def poisson_from(u: float, v: float, mean: float) -> int:
    """A Poisson count from two uniform draws: inverse CDF, or a normal approximation past a
    mean of 50 (Box-Muller on both draws)."""
    if mean <= 0:
        return 0
    if mean > 50:
        v = v or _SCALE
        z = math.sqrt(-2.0 * math.log(v)) * math.cos(2 * math.pi * u)
        return max(0, round(mean + z * math.sqrt(mean)))
    term = math.exp(-mean)
    total, k = term, 0
    while u > total and k < 1000:
        k += 1
        term *= mean / k
        total += term
    return k


def keyed(seed: int, *key: object) -> random.Random:
    material = _material(seed, key)
    return random.Random(int.from_bytes(_BLAKE(material, digest_size=8).digest(), "big"))


class Draws:
    """Uniform draws in [0, 1) keyed by (seed, *key): the same key, the same sequence."""

    __slots__ = ("_block", "_buffer", "_index", "_material")

    def __init__(self, seed: int, *key: object) -> None:
        self._material = _material(seed, key)
        self._block = 0
        self._index = _WORDS
        self._buffer: tuple[int, ...] = ()

    def random(self) -> float:
        index = self._index
        if index == _WORDS:
            block = self._block
            suffix = _BLOCK[block] if block < 64 else block.to_bytes(4, "big")
            self._buffer = _WORDS_OF(_BLAKE(self._material + suffix).digest())
            self._block = block + 1
            index = 0
        self._index = index + 1
        return (self._buffer[index] >> 11) * _SCALE

    def bits(self) -> int:
        """One raw 64-bit draw, for code that splits it into several small choices."""
        index = self._index
        if index == _WORDS:
            self.random()
            return self._buffer[0]
        self._index = index + 1
        return self._buffer[index]

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def randint(self, low: int, high: int) -> int:
        """An integer in [low, high], both included."""
        return low + int(self.random() * (high - low + 1))

    def chance(self, probability: float) -> bool:
        """True with the given probability (always consumes one draw)."""
        return self.random() < probability

    def pick(self, cumulative: Sequence[float]) -> int:
        """An index drawn with the weights whose running totals are ``cumulative``."""
        return min(bisect_right(cumulative, self.random() * cumulative[-1]), len(cumulative) - 1)

    def exponential_cut(self, low: float, mean: float, high: float) -> float:
        """``low`` plus an exponential with the given mean, cut at ``high`` (inverse CDF of
        the truncated distribution: one draw, never a redraw)."""
        scale = mean - low
        if scale <= 0 or high <= low:
            self.random()
            return low
        tail = 1.0 - math.exp(-(high - low) / scale)
        return low - scale * math.log(1.0 - self.random() * tail)

    def poisson(self, mean: float) -> int:
        """A Poisson count: inverse CDF, or a normal approximation past a mean of 50.

        Always consumes two draws, so what follows in the stream never depends on the mean.
        """
        u, v = self.random(), self.random()
        return poisson_from(u, v, mean)
