"""The SKUs a scenario sells, with Zipf popularity: a few sell a lot, most sell little."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Catalogue:
    skus: tuple[str, ...]
    cumulative_weights: tuple[float, ...]
    initial_stock: int

    @classmethod
    def build(cls, count: int, initial_stock: int, zipf_s: float = 1.0) -> Catalogue:
        skus = tuple(f"SKU-{i:05d}" for i in range(1, count + 1))
        weights = (1.0 / (rank**zipf_s) for rank in range(1, count + 1))
        return cls(skus, tuple(itertools.accumulate(weights)), initial_stock)

    def stock(self) -> dict[str, int]:
        return dict.fromkeys(self.skus, self.initial_stock)

    def pick_skus(self, rng: random.Random, n: int) -> list[str]:
        """``n`` distinct SKUs, popular ones more often."""
        n = min(n, len(self.skus))
        chosen: list[str] = []
        while len(chosen) < n:
            sku = rng.choices(self.skus, cum_weights=self.cumulative_weights)[0]
            if sku not in chosen:
                chosen.append(sku)
        return chosen
