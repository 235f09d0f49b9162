"""Peak-season load for Locust: the order sources an ERP sees, along the day's curve.

Run by ``twinyard load`` (which plays the world around it and serves the feed), or by plain
Locust against a running ERP (``twinyard sims``), for the HTTP rows alone::

    locust -f loadtests/peak_season.py --host http://127.0.0.1:7101 \
        --scenario scenarios/peak/black_friday.yaml --rate-multiplier 2 --factor 600

Three kinds of user create and release orders through the ERP's public API (``POST /orders``,
``POST /orders/{id}/release``): a web shop (single orders), EDI customers (interchanges of
several orders at once) and a B2B portal (bigger baskets). ``PeakSeasonShape`` sets how many
there are from the curve; each sends its share of the curve's rate as an open model: the next
arrival is scheduled from when the last one was due, never from when its answer came, so a
slow answer never thins the arrivals (no coordinated omission).

With a feed (``--twinyard-feed``, set by ``twinyard load``), the master process also fires
the day's business flows into Locust's statistics as requests of type ``flow`` (``flow:
release -> wms order`` ...), a flow that never completed as a failure, and exits 1 when a
flow misses a threshold of ``expect.slos``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any

import gevent
from locust import HttpUser, LoadTestShape, events, task  # first: it patches ssl for gevent
from locust.runners import WorkerRunner
from requests import RequestException, Session, request

from harness.load.curve import FEED_ENV, PER_USER, Plan, plan_of
from harness.world.catalogue import Catalogue
from harness.world.people import people
from harness.world.randomness import Draws

POLL_S = 0.5  # wall seconds between looks at the feed when it had nothing new
FEED_LOST_S = 30.0  # the feed unreachable this long: the harness is gone, stop
STOP_TIMEOUT_S = 30.0  # a stopped user's order in hand (and an EDI interchange) completes
SPAWN_RATE = 100.0  # users per second: the shape follows the curve within a tick
SPAWN_WAIT_TICKS = 10  # ticks (seconds) the first users may take to spawn before the clock runs
IMPORTED_AT = time.time()  # plain Locust: the window opens now (before --processes forks)

logger = logging.getLogger("twinyard.load")


class FlowNotCompleted(Exception):
    """A business flow that had not completed when the day ended."""


class Bridge:
    """This process's view of the harness: the plan, the flows read, whether the day is over."""

    def __init__(self) -> None:
        self.feed = ""
        self.plan: Plan | None = None
        self.done = False
        self.judgement: dict[str, Any] | None = None
        self.poller: gevent.Greenlet | None = None
        self.arrivals_over = False
        self.catalogue: Catalogue | None = None

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


bridge = Bridge()


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument(
        "--twinyard-feed",
        default=os.environ.get(FEED_ENV, ""),
        help="the twinyard harness's load feed (set by `twinyard load`)",
    )
    parser.add_argument(
        "--scenario",
        default="",
        help="without a feed: the scenario whose demand curve to play "
        "(default: scenarios/peak/black_friday.yaml)",
    )
    parser.add_argument(
        "--rate-multiplier",
        type=float,
        default=1.0,
        help="without a feed: orders at this multiple of the scenario's real rate",
    )
    parser.add_argument(
        "--factor",
        type=float,
        default=0.0,
        help="without a feed: virtual seconds per wall second (default: the scenario's)",
    )
    parser.add_argument(
        "--orders-per-user",
        type=float,
        default=PER_USER,
        help="without a feed: orders per wall second one user sends",
    )


@events.init.add_listener
def _graceful(environment: Any, **_: Any) -> None:
    """Users the shape stops finish the order in hand: without a stop timeout Locust kills
    them mid-task, leaving an order created but never released."""
    if not environment.stop_timeout:
        environment.stop_timeout = STOP_TIMEOUT_S


def _options(environment: Any) -> Any:
    return environment.parsed_options


def _local_plan(environment: Any) -> Plan:
    """Plain Locust: the plan from a scenario file, the window opening at start-up."""
    from harness import bundled
    from harness import scenario as scenarios

    options = _options(environment)
    path = options.scenario or str(bundled.SCENARIOS / "peak" / "black_friday.yaml")
    plan = plan_of(
        scenarios.load(path),
        multiplier=options.rate_multiplier,
        factor=options.factor or None,
        per_user=options.orders_per_user,
    )
    return plan.anchored(plan.curve.open_s, IMPORTED_AT)


def _ask(method: str, path: str) -> dict[str, Any]:
    answer = request(method, bridge.feed + path, timeout=10)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def plan_for(environment: Any, *, start: bool = False) -> Plan:
    """The load plan in this process; ``start`` (the shape's first tick) starts the clock."""
    if bridge.plan is not None and bridge.plan.started:
        return bridge.plan
    bridge.feed = (_options(environment).twinyard_feed or "").rstrip("/")
    if not bridge.feed:
        bridge.plan = _local_plan(environment)
        return bridge.plan
    if start:
        bridge.plan = Plan.from_dict(_ask("POST", "/start"))
        return bridge.plan
    plan = Plan.from_dict(_ask("GET", "/plan"))
    if bridge.plan is None or not bridge.plan.started:  # an answer overtaken by /start
        bridge.plan = plan
    return bridge.plan


def running_plan(environment: Any) -> Plan:
    """The plan once the clock runs: a user spawned before the shape starts the clock waits
    here for it (at most ``FEED_LOST_S``)."""
    deadline = time.time() + FEED_LOST_S
    plan = plan_for(environment)
    while not plan.started and time.time() < deadline:
        gevent.sleep(0.05)
        plan = plan_for(environment)
    return plan


def _catalogue(plan: Plan) -> Catalogue:
    if bridge.catalogue is None:
        bridge.catalogue = Catalogue.build(plan.skus, 1, plan.popularity, False)
    return bridge.catalogue


# -- the order sources ---------------------------------------------------------------------
_user_numbers = itertools.count(1)


class OrderSource(HttpUser):
    """Someone who sends the ERP orders: creates each, then releases it to fulfilment."""

    abstract = True
    source = "web"
    batch = (1, 1)  # orders per arrival (an EDI interchange carries several)
    extra_lines = 0  # on top of the scenario's lines per order
    qty_scale = 1  # times the scenario's quantities
    express = 1.0  # times the scenario's express share

    def on_start(self) -> None:
        self.plan = running_plan(self.environment)
        self.number = next(_user_numbers)
        self.placed = 0
        self.draws = Draws(self.plan.seed, "load", self.source, os.getpid(), self.number)
        rate = self.plan.curve.user_rate(self.plan.virtual_now())
        self.due = time.time() + (self._gap(rate) if rate > 0 else 0.0)

    def wait_time(self) -> float:
        return max(0.0, self.due - time.time())

    def _gap(self, rate: float) -> float:
        """Wall seconds to the next arrival: exponential, averaging one batch at ``rate``."""
        low, high = self.batch
        return self.draws.exponential_cut(0.0, (low + high) / 2 / rate, 1e9)

    @task
    def arrive(self) -> None:
        rate = self.plan.curve.user_rate(self.plan.virtual_now())
        if rate <= 0:
            self.due = time.time() + 1.0
            return
        for _ in range(self.draws.randint(*self.batch)):
            self.place_order()
        # Open model: the next arrival counts from when this one was due.
        self.due += self._gap(rate)

    def order(self) -> dict[str, Any]:
        plan, self.placed = self.plan, self.placed + 1
        draws = Draws(plan.seed, "load", self.source, os.getpid(), self.number, self.placed)
        customer, ship_to = people(plan.seed).customer(draws)
        lines = draws.randint(plan.lines[0], plan.lines[1] + self.extra_lines)
        skus = _catalogue(plan).draw_skus(draws, lines)
        low, high = plan.qty
        express = draws.chance(min(1.0, plan.express_share * self.express))
        return {
            "customer": customer,
            "ship_to": ship_to,
            "service_level": "express" if express else "standard",
            "lines": [
                {"sku": sku, "qty": draws.randint(low, high * self.qty_scale)} for sku in skus
            ],
        }

    def place_order(self) -> None:
        body = self.order()
        headers = {
            "X-Correlation-Id": f"load-{self.source}-{os.getpid()}-{self.number}-{self.placed}"
        }
        with self.client.post(
            "/orders",
            json=body,
            name=f"POST /orders [{self.source}]",
            headers=headers,
            catch_response=True,
        ) as answer:
            if answer.status_code != 201:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")
                return
            order_id = answer.json().get("id")
        self.client.post(
            f"/orders/{order_id}/release", name="POST /orders/{id}/release", headers=headers
        )


class WebShop(OrderSource):
    """Consumers at the web shop: one order at a time, the scenario's baskets."""

    weight = 7
    source = "web"


class EdiCustomer(OrderSource):
    """Retail customers whose EDI interchanges bring several orders at once."""

    weight = 2
    source = "edi"
    batch = (2, 8)
    qty_scale = 2
    express = 0.0


class B2bPortal(OrderSource):
    """Business buyers at the portal: bigger baskets, less express."""

    weight = 1
    source = "b2b"
    extra_lines = 2
    express = 0.5


# -- the curve -----------------------------------------------------------------------------
class PeakSeasonShape(LoadTestShape):
    """Users from the curve until the window closes; then none, until the harness says the
    day is over (its last flows arrive after the last order); then stop."""

    def tick(self) -> tuple[int, float] | None:
        environment = self.runner.environment
        if bridge.plan is None or not bridge.plan.started:
            # The window's first users are spawned (they wait for the clock) before the
            # clock starts, so none of the window is lost to Locust's start-up.
            plan = plan_for(environment)
            first = plan.curve.users(plan.curve.open_s)
            if not plan.started and self.runner.user_count < first:
                self.waited = getattr(self, "waited", 0) + 1
                if self.waited <= SPAWN_WAIT_TICKS:
                    return first, SPAWN_RATE
            plan = plan_for(environment, start=True)
            if bridge.feed and bridge.poller is None:
                bridge.poller = gevent.spawn(_poll_flows, environment)
        plan = bridge.plan
        assert plan is not None
        v = plan.virtual_now()
        if v < plan.curve.close_s and not bridge.done:
            return plan.curve.users(v), SPAWN_RATE
        if self.runner.user_count == 0:
            _arrivals_over()
        if bridge.feed and not bridge.done:
            return 0, SPAWN_RATE
        return None


def _arrivals_over() -> None:
    if bridge.feed and not bridge.arrivals_over:
        bridge.arrivals_over = True
        try:
            _ask("POST", "/arrivals-over")
        except RequestException as exc:
            logger.warning("could not tell the harness the arrivals are over: %s", exc)


# -- the flows -----------------------------------------------------------------------------
def _poll_flows(environment: Any) -> None:
    """Fire every business flow the harness saw into Locust's statistics (master only)."""
    session = Session()
    after, lost_since = 0, None
    while True:
        try:
            answer = session.get(f"{bridge.feed}/flows", params={"after": after}, timeout=10)
            answer.raise_for_status()
            page = answer.json()
        except (RequestException, ValueError) as exc:
            lost_since = lost_since or time.time()
            if time.time() - lost_since > FEED_LOST_S:
                logger.error("the twinyard feed is gone (%s): stopping", exc)
                bridge.judgement = {"passed": False, "breaches": [f"feed lost: {exc}"]}
                bridge.done = True
                return
            gevent.sleep(POLL_S)
            continue
        lost_since = None
        for row, wall_ms, ok, _order in page["records"]:
            environment.events.request.fire(
                request_type="flow",
                name=row,
                response_time=wall_ms,
                response_length=0,
                exception=None if ok else FlowNotCompleted("never completed by the day's end"),
                context={},
            )
        after = page["next"]
        if page["done"]:
            bridge.judgement = page["judgement"] or {}
            bridge.done = True
            return
        if not page["records"]:
            gevent.sleep(POLL_S)


@events.quitting.add_listener
def _judged(environment: Any, **_: Any) -> None:
    """The exit code: 1 when a flow missed a threshold of the scenario's ``expect.slos``."""
    if isinstance(environment.runner, WorkerRunner):
        return
    _arrivals_over()  # stopped early (the UI's stop, Ctrl-C): the harness ends the day
    judgement = bridge.judgement or {}
    for line in judgement.get("breaches", []):
        logger.error("service level missed: %s", line)
    for row, count in (judgement.get("never_completed") or {}).items():
        logger.error("%s: %d never completed", row, count)
    if judgement and not judgement.get("passed", True):
        environment.process_exit_code = 1
