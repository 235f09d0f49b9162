"""Keyed randomness (ARCHITECTURE principle 3).

Every random outcome is drawn from a generator seeded by (scenario seed, entity, purpose),
never from one shared stream, so the world is the same however the stack interleaves
its calls: line 2 of SO-000042 is short in every run with that seed, or in none.
"""

from __future__ import annotations

import hashlib
import random


def keyed(seed: int, *key: object) -> random.Random:
    material = ":".join(str(part) for part in (seed, *key)).encode()
    return random.Random(int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big"))
