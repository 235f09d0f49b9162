"""Customer returns: a delivered parcel comes back, and the warehouse grades what is in it.

The physical process, in the order it happens:

1. **The customer asks.** ``returns.return_after`` after delivery, a share
   (``returns.return_rate``) of customers ask to send something back: every unit issued, or
   part of some lines (``whole_order_share``), for a reason, refunded or credited
   (``refund_share``).
2. **The ERP authorises.** Customer service opens an RMA in the ERP (``return.authorised``)
   and the ERP's returns desk buys the prepaid return label from the carrier: the stack is
   not in this loop (a returns portal talks to the carrier itself).
3. **The way back.** ``drop_off_after`` later the customer hands the parcel in
   (``picked_up``), it reaches the hub (``in_transit``), and ``transit_days`` later it is
   delivered to the warehouse dock around ``carrier.delivery_hour``; each scan is a
   ``tracking.updated`` the stack may ignore (it did not buy the label).
4. **The returns bench.** ``receive_minutes`` later the parcel is opened and each unit graded
   ``restock``, ``damaged`` or ``scrap`` (``conditions``); the WMS puts the restock units
   back on the shelf and announces the receipt (``return.received``). Crediting the
   customer and restocking the ERP's books is the stack's work from here.

Every draw is keyed by the sales order (ARCHITECTURE principle 3): whether it is returned,
when, which units and in what condition are the same in every run with the seed, whatever
the stack does meanwhile. With ``return_rate`` 0 nothing is drawn and nothing scheduled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from harness.world.randomness import Draws
from simulators.common.errors import SimError
from simulators.erp.model import RETURN_REASONS
from simulators.wms.model import RETURN_CONDITIONS, package_weight

if TYPE_CHECKING:
    from harness.scenario import Delay
    from harness.world.world import World

MINUTE = 60.0
HOUR = 3_600.0
DAY = 86_400.0


class Returns:
    def __init__(self, world: World) -> None:
        self.world = world
        self.env = world.env
        self.section = world.scenario.returns
        self.open = 0  # returns asked for and not yet received at the bench
        conditions = self.section.conditions
        weights = [getattr(conditions, name) for name in RETURN_CONDITIONS]
        self._conditions = list(accumulate(weights))

    def delivered(self, order_ref: str) -> None:
        """A parcel of this order reached its customer: will it come back?"""
        if self.section.return_rate <= 0 or order_ref not in self.world.erp.orders:
            return
        draws = Draws(self.world.seed, order_ref, "return")
        if not draws.chance(self.section.return_rate):
            return
        self.open += 1
        self.env.process(self._return(order_ref, draws))

    # -- the process ---------------------------------------------------------------------
    def _return(self, order_ref: str, draws: Draws) -> Generator[Any, Any, None]:
        try:
            yield self.env.timeout(_minutes(draws, self.section.return_after) * MINUTE)
            rma, label = self._authorise(order_ref, draws)
            if rma is None:
                return
            yield self.env.timeout(_minutes(draws, self.section.drop_off_after) * MINUTE)
            yield from self._way_back(label.tracking_number, draws)
            yield self.env.timeout(self.section.receive_minutes * MINUTE)
            self._receive(rma, draws)
        except SimError as exc:
            self.world.incident(f"{order_ref}: the return could not go on: {exc.code}: {exc}")
        finally:
            self.open -= 1

    def _authorise(self, order_ref: str, draws: Draws) -> tuple[Any, Any]:
        """The customer's request, the ERP's RMA and the returns desk's label."""
        world, section = self.world, self.section
        lines = self._returned_lines(order_ref, draws)
        reason = RETURN_REASONS[draws.randint(0, len(RETURN_REASONS) - 1)]
        resolution = "refund" if draws.chance(section.refund_share) else "credit"
        if not lines:
            world.counts["returns_nothing_issued"] += 1
            return None, None
        rma = world.erp.authorise_return(order_ref, lines, reason, resolution)
        world.counts["returns_authorised"] += 1
        units = sum(line["qty"] for line in lines)
        ship_from = world.erp.orders[order_ref].ship_to
        label = world.carrier.create_return_label(
            rma.id, order_ref, ship_from, [{"weight_kg": package_weight(units)}]
        )
        return rma, label

    def _returned_lines(self, order_ref: str, draws: Draws) -> list[dict[str, int]]:
        """What the customer sends back, of what the ERP issued to them."""
        order = self.world.erp.orders[order_ref]
        issued: Counter[int] = Counter()
        for gi_id in order.goods_issues:
            for line in self.world.erp.goods_issues[gi_id].lines:
                issued[line["line"]] += line["qty"]
        whole = draws.chance(self.section.whole_order_share)
        lines = []
        for number in sorted(issued):
            qty = issued[number]
            keep = draws.random()  # one draw per line, used or not, so lines stay keyed
            back = draws.randint(1, qty) if qty > 0 else 0
            if qty <= 0 or (not whole and keep < 0.5):
                continue
            lines.append({"line": number, "qty": qty if whole else back})
        if not lines and issued and any(issued.values()):  # a partial return of something
            first = min(n for n, qty in issued.items() if qty > 0)
            lines.append({"line": first, "qty": 1})
        return lines

    def _way_back(self, tracking: str, draws: Draws) -> Generator[Any, Any, None]:
        """Handed in, at the hub, delivered to the dock ``transit_days`` later."""
        carrier, env = self.world.carrier, self.env
        carrier.scan(tracking, "picked_up")
        yield env.timeout(draws.uniform(1, 3) * HOUR)
        carrier.scan(tracking, "in_transit")
        day = (env.now // DAY + self.section.transit_days) * DAY
        hour = self.world.scenario.carrier.delivery_hour + draws.uniform(-3, 3)
        yield env.timeout(max(MINUTE, day + hour * HOUR - env.now))
        carrier.scan(tracking, "delivered")
        self.world.counts["returns_delivered"] += 1

    def _receive(self, rma: Any, draws: Draws) -> None:
        """The returns bench grades every unit; the WMS restocks the good ones."""
        graded: Counter[tuple[int, str, str]] = Counter()
        for line in rma.lines:
            for _ in range(line["qty"]):
                condition = RETURN_CONDITIONS[draws.pick(self._conditions)]
                graded[(line["line"], line["sku"], condition)] += 1
        lines = [
            {"line": number, "sku": sku, "qty": qty, "condition": condition}
            for (number, sku, condition), qty in sorted(graded.items())
        ]
        self.world.wms.receive_return(rma.id, rma.order_id, lines)
        self.world.counts["returns_received"] += 1


def _minutes(draws: Draws, wait: Delay) -> float:
    return draws.exponential_cut(wait.min_minutes, wait.mean_minutes, wait.max_minutes)
