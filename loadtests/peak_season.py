"""Peak season as a Locust file: the order sources an ERP sees, along a scenario's curve.

``twinyard load`` plays this (it is the default), with the world around it; plain Locust
plays it against a running ERP simulator (``twinyard sims``) for the HTTP rows alone::

    twinyard load scenarios/peak/black_friday.yaml --rate-multiplier 3
    twinyard load scenarios/peak/black_friday.yaml --locustfile loadtests/peak_season.py --web
    locust -f loadtests/peak_season.py --host http://127.0.0.1:7101 \\
        --scenario scenarios/peak/cyber_monday.yaml --rate-multiplier 2 --factor 600

The sources and the shape live in ``harness.load.locustfile`` (installed with twinyard).
To change a source, subclass it here and give your copy to ``--locustfile``; for example
EDI customers whose interchanges carry up to 20 orders::

    class BigEdiCustomer(EdiCustomer):
        batch = (5, 20)

(and drop ``EdiCustomer`` from the import below, or Locust runs both). docs/load.md says what
each part does and how the flows reach Locust's statistics.
"""

from harness.load.locustfile import B2bPortal, EdiCustomer, PeakSeasonShape, WebShop

__all__ = ["B2bPortal", "EdiCustomer", "PeakSeasonShape", "WebShop"]
