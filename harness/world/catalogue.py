"""The SKUs a scenario sells, with Zipf popularity: a few sell a lot, most sell little."""

from __future__ import annotations

import itertools
from bisect import bisect_right
from dataclasses import dataclass

from harness.world.randomness import Draws


def sku_name(n: int, style: str = "plain", prefix: str = "SKU") -> str:
    """The ``n``-th SKU's name. ``plain``: ``SKU-00001``. ``retail``: the punctuation real
    catalogues carry, which a client must percent-encode in a URL path (``/items/{sku}``):
    a size after a slash (``SKU-00001/XL``), words and spaces (``SKU 00002 2M``), a gauge
    (``SKU #8-00003``), a bundle (``SKU-00004+B&W``)."""
    if style == "plain":
        return f"{prefix}-{n:05d}"
    return (
        f"{prefix}-{n:05d}+B&W",
        f"{prefix}-{n:05d}/XL",
        f"{prefix} {n:05d} 2M",
        f"{prefix} #8-{n:05d}",
    )[n % 4]


@dataclass(frozen=True)
class Catalogue:
    skus: tuple[str, ...]  # most popular first
    cumulative_weights: tuple[float, ...]
    initial_stock: int
    by_popularity: bool = False

    @classmethod
    def build(
        cls,
        count: int,
        initial_stock: int,
        zipf_s: float = 1.0,
        by_popularity: bool = False,
        style: str = "plain",
    ) -> Catalogue:
        skus = tuple(sku_name(i, style) for i in range(1, count + 1))
        weights = (1.0 / (rank**zipf_s) for rank in range(1, count + 1))
        return cls(skus, tuple(itertools.accumulate(weights)), initial_stock, by_popularity)

    def share(self, index: int) -> float:
        """The share of all order lines that go to the ``index``-th SKU."""
        cum = self.cumulative_weights
        return (cum[index] - (cum[index - 1] if index else 0.0)) / cum[-1]

    def stock(self) -> dict[str, int]:
        """Units per SKU at the start: even, or in proportion to popularity (at least 1)."""
        if not self.by_popularity:
            return dict.fromkeys(self.skus, self.initial_stock)
        total = self.initial_stock * len(self.skus)
        return {
            sku: max(1, round(total * self.share(i))) if self.initial_stock else 0
            for i, sku in enumerate(self.skus)
        }

    def draw_skus(self, draws: Draws, n: int) -> list[str]:
        """``n`` distinct SKUs, popular ones more often.

        A repeat is drawn again; after many repeats (a steep curve and long orders) the
        most popular SKUs not yet chosen fill the order, so this always ends.
        """
        n = min(n, len(self.skus))
        cum, skus = self.cumulative_weights, self.skus
        top = cum[-1]
        chosen: list[str] = []
        tries = 0
        while len(chosen) < n and tries < 20 * n:
            tries += 1
            sku = skus[min(bisect_right(cum, draws.random() * top), len(skus) - 1)]
            if sku not in chosen:
                chosen.append(sku)
        for sku in skus:
            if len(chosen) >= n:
                break
            if sku not in chosen:
                chosen.append(sku)
        return chosen
