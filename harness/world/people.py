"""Customers and where they live: Faker, once per run, then cheap keyed draws.

Faker costs tens of microseconds a call (and reseeding it per order far more), so each run
builds pools of first names, last names, streets and towns once, from a generator keyed by
the scenario seed, and every order draws from the pools with its own keyed draws. Per-order
cost stays a few microseconds and the same seed still gives the same customer to the same
order. Pools are cached per seed for the life of the process.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from faker import Faker

from harness.world.randomness import Draws, keyed

LOCALE = "de_DE"
COUNTRY = "DE"
# Where an order abroad goes (``demand.abroad_share``): countries the carrier serves, each
# with Faker's locale for its names, streets and postal codes (formats of their own:
# "2763 FB", "09-262"; letters such as Ł, é and ø).
ABROAD = {
    "AT": "de_AT",
    "DK": "da_DK",
    "FR": "fr_FR",
    "IT": "it_IT",
    "NL": "nl_NL",
    "PL": "pl_PL",
}
POOL = 256  # of each kind (one byte of a draw picks one): 65,536 names, 256 streets, 256 towns
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", " ": ".", "'": ""})


def _ascii(text: str) -> str:
    folded = text.lower().translate(_FOLD)
    return unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()


@dataclass(frozen=True, slots=True)
class People:
    first_names: tuple[tuple[str, str], ...]  # (as written, as in an e-mail address)
    last_names: tuple[tuple[str, str], ...]
    streets: tuple[str, ...]
    towns: tuple[tuple[str, str], ...]  # (postal code, city)
    domains: tuple[str, ...]
    country: str = COUNTRY

    def customer(self, draws: Draws) -> tuple[dict[str, str], dict[str, str]]:
        """A customer and their ship-to address, from one 64-bit draw cut into bytes."""
        bits = draws.bits()
        first, first_mail = self.first_names[bits & 0xFF]
        last, last_mail = self.last_names[(bits >> 8) & 0xFF]
        street = self.streets[(bits >> 16) & 0xFF]
        number = 1 + ((bits >> 24) & 0xFFFF) % 199
        postal_code, city = self.towns[(bits >> 40) & 0xFF]
        domain = self.domains[((bits >> 48) & 0xFFFF) % len(self.domains)]
        name = f"{first} {last}"
        customer = {"name": name, "email": f"{first_mail}.{last_mail}@{domain}"}
        ship_to = {
            "name": name,
            "street": f"{street} {number}",
            "city": city,
            "postal_code": postal_code,
            "country": self.country,
        }
        return customer, ship_to


@lru_cache(maxsize=64)
def people(seed: int, country: str = COUNTRY) -> People:
    """The run's pools for customers in ``country`` (the home country by default), keyed by
    the scenario seed."""
    locale = LOCALE if country == COUNTRY else ABROAD[country]
    pools = "pools" if country == COUNTRY else f"pools-{country}"
    fake: Any = Faker(locale)
    fake.seed_instance(keyed(seed, "people", pools).getrandbits(64))
    return People(
        first_names=tuple((n, _ascii(n)) for n in (fake.first_name() for _ in range(POOL))),
        last_names=tuple((n, _ascii(n)) for n in (fake.last_name() for _ in range(POOL))),
        streets=tuple(fake.street_name() for _ in range(POOL)),
        towns=tuple((fake.postcode(), fake.city()) for _ in range(POOL)),
        domains=tuple(sorted({fake.free_email_domain() for _ in range(32)})),
        country=country,
    )
