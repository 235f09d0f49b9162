"""Demand curves: how orders spread over the hours of a day.

A curve is 24 relative weights, one per hour of the day (00:00-01:00 first). Only the
shape matters: ``[1, 1, ...]`` and ``[5, 5, ...]`` are the same flat day. A scenario names
a profile from ``PROFILES`` or writes its own 24 weights; the shop's opening hours
(``demand.open`` / ``demand.close``) then clip it, and orders arrive only where the
clipped weight is above zero.
"""

from __future__ import annotations

from collections.abc import Sequence

HOURS = 24

PROFILES: dict[str, tuple[float, ...]] = {
    # Every hour alike: arrivals spread evenly between open and close.
    "flat": (1.0,) * HOURS,
    # A B2C/B2B mix on the Monday after a promotion weekend: the weekend's baskets land when
    # offices open (08:00-11:00), a lunch dip, a second wave 13:00-15:00, a long tail.
    "peak_monday": (
        0.3, 0.2, 0.1, 0.1, 0.2, 0.5,  # 00-06 night owls
        1.5, 3.0, 5.5, 7.5, 8.0, 6.5,  # 06-12 morning peak
        4.5, 6.0, 6.5, 5.0, 3.5, 3.0,  # 12-18 lunch dip, early-afternoon peak
        2.5, 2.5, 2.0, 1.5, 1.0, 0.6,  # 18-24 evening tail
    ),
    # Consumer web shop on an ordinary weekday: quiet mornings, sofa shopping after dinner.
    "evening": (
        0.4, 0.2, 0.1, 0.1, 0.1, 0.2,
        0.5, 1.0, 1.5, 2.0, 2.2, 2.4,
        2.6, 2.4, 2.2, 2.2, 2.5, 3.0,
        3.8, 4.8, 5.5, 5.0, 3.2, 1.4,
    ),
}  # fmt: skip


def hourly_weights(curve: str | Sequence[float]) -> tuple[float, ...]:
    """The 24 weights of a named profile or of a scenario's own list."""
    if isinstance(curve, str):
        return PROFILES[curve]
    return tuple(float(w) for w in curve)


def parse_curve(value: object) -> str | tuple[float, ...]:
    """Validate a scenario's ``demand.curve``: a known profile name or 24 weights >= 0.

    One clear sentence per mistake (the scenario loader adds file, line and field).
    """
    if isinstance(value, str):
        if value not in PROFILES:
            raise ValueError(
                f"unknown demand curve {value!r}; known profiles: {', '.join(PROFILES)}"
                " (or give 24 hourly weights)"
            )
        return value
    if not isinstance(value, list | tuple):
        raise ValueError("give a profile name or a list of 24 hourly weights")
    if len(value) != HOURS:
        raise ValueError(f"a curve has 24 hourly weights (00:00 to 23:00), not {len(value)}")
    weights = []
    for hour, weight in enumerate(value):
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"the weight for {hour:02d}:00 must be a number, not {weight!r}")
        if not 0 <= weight <= 1e6:
            raise ValueError(f"the weight for {hour:02d}:00 must be between 0 and 1e6")
        weights.append(float(weight))
    return tuple(weights)


def segments(
    weights: Sequence[float], open_s: float, close_s: float
) -> list[tuple[float, float, float]]:
    """``(start_s, length_s, mass)`` of every stretch of the day with arrivals.

    Each hour is clipped to the opening hours; ``mass`` = weight x clipped length.
    """
    found = []
    for hour, weight in enumerate(weights):
        start = max(hour * 3600.0, open_s)
        end = min((hour + 1) * 3600.0, close_s)
        if weight > 0 and end > start:
            found.append((start, end - start, weight * (end - start)))
    return found
