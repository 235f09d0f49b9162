"""Demand: customers order over the day, the ERP releases their orders, and now and then a
customer calls to cancel or to change the delivery address, or customer service corrects an
address the carrier will refuse.

Arrivals follow the scenario's curve (hourly weights clipped to opening hours). Everything
about the ``n``-th order of the day (customer, address, lines, service level) is drawn from
draws keyed by ``n``; whether and when its customer calls to cancel, from draws keyed by the
sales order. Customer service accepts a cancellation only while the warehouse has not
started on the order, and asks the WMS (and the floor's plan) before it says yes.

A scenario's script adds customers of its own (docs/capsules.md): its ``orders`` are placed at
their times with their ids and released as generated ones are, and its ``cancel`` and
``address`` calls reach customer service at their times, under the same rules. What a
scripted order leaves out (ship-to, customer) and everything about it afterwards (cancel
calls, moves, typo fixes) is drawn keyed by its id, as for a generated order.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

from harness.world.curves import hourly_weights, segments
from harness.world.people import ABROAD, People, people
from harness.world.randomness import Draws
from harness.world.warehouse import UNKNOWN_ORDER, seconds_of_day
from simulators.common.errors import SimError

if TYPE_CHECKING:
    from harness.scenario import Delay, Demand
    from harness.scripted import Address, ScriptedOrder, TimelineEntry
    from harness.world.world import World

MINUTE = 60.0


def arrival_times(seed: int, demand: Demand) -> list[float]:
    """When each of the day's orders arrives (seconds after midnight, ascending)."""
    stretches = segments(
        hourly_weights(demand.curve), seconds_of_day(demand.open), seconds_of_day(demand.close)
    )
    cumulative, total = [], 0.0
    for _, _, mass in stretches:
        total += mass
        cumulative.append(total)
    draws = Draws(seed, "demand", "arrivals")
    times = []
    for _ in range(demand.orders):
        start, length, _ = stretches[draws.pick(cumulative)]
        times.append(start + length * draws.random())
    times.sort()
    return times


class Customers:
    """The shop's customers and its customer service desk."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.env = world.env
        self.erp = world.erp
        self.demand = demand = world.scenario.demand
        self.people = people(world.seed)
        self.released_at: dict[str, float] = {}  # sales order -> when it was released
        self.numbers: dict[str, int] = {}  # sales order -> its place in the day's arrivals
        self.true_addresses: dict[str, dict[str, Any]] = {}  # orders placed with a typo
        self.script = script = world.script
        # Orders still to arrive: the generated day's (until ``_day`` ends) or the script's.
        self._generating = True
        self._scripting = bool(script.orders)
        self.arriving = demand.orders > 0 or self._scripting
        self.env.process(self._day())
        if script.orders or script.calls:
            self.env.process(self._scripted())

    def order(self, number: int) -> dict[str, Any]:
        """The ``number``-th order of the day: customer, address, lines, service level."""
        demand, world = self.demand, self.world
        draws = Draws(world.seed, "order", number, "content")
        customer, ship_to = self.people_of(number).customer(draws)
        typo = Draws(world.seed, "order", number, "address").chance(demand.address_error_rate)
        if typo:  # the customer left the postal code out: the carrier will refuse the label
            ship_to = {**ship_to, "postal_code": ""}
        express = draws.chance(demand.express_share)
        n_lines = draws.randint(demand.lines_per_order.min, demand.lines_per_order.max)
        low, high = demand.qty_per_line.min, demand.qty_per_line.max
        qtys = [draws.randint(low, high) for _ in range(n_lines)]
        skus = world.catalogue.draw_skus(draws, n_lines)
        repeat = demand.repeat_sku_rate  # a draw of its own, so the other draws stay put
        if n_lines > 1 and repeat and Draws(world.seed, "order", number, "repeat").chance(repeat):
            skus[-1] = skus[0]
        content = {
            "customer": customer,
            "ship_to": ship_to,
            "service_level": "express" if express else "standard",
            "lines": [
                world.product_team.line(sku, qty) for sku, qty in zip(skus, qtys, strict=True)
            ],
        }
        return world.sites.assign(number, content)

    def _day(self) -> Generator[Any, Any, None]:
        env, erp, world = self.env, self.erp, self.world
        demand = self.demand
        only = None if demand.only is None else set(demand.only)
        for number, at in enumerate(arrival_times(world.seed, demand), start=1):
            if only is not None and number not in only:
                continue  # a capsule's day: this order never arrives, the others keep their time
            if at > env.now:
                yield env.timeout(at - env.now)
            content = self.order(number)
            # In a capsule each order keeps the id it had in the full day (and so its draws).
            named = {} if only is None else {"order_id": f"SO-{number:06d}"}
            order = erp.create_order(**content, **named)
            self.numbers[order.id] = number  # before the release: the floor ranks by it
            typo = not content["ship_to"]["postal_code"]
            self._release(order.id, self.order_address(number) if typo else None)
        self._generating = False
        self.arriving = self._scripting

    def _release(self, order_id: str, true_address: dict[str, Any] | None) -> None:
        """Release a placed order to fulfilment, and draw (keyed by its id) what its customer
        and customer service will do about it later."""
        env, world, demand = self.env, self.world, self.demand
        if true_address is not None:  # placed with a typo: customer service will fix it
            self.true_addresses[order_id] = true_address
            self._later(order_id, demand.address_fix_after, "fix", self.correct_address)
        self.released_at[order_id] = env.now
        world.expected.add(order_id)
        self.erp.release(order_id)
        world.counts["released"] += 1
        if demand.cancel_rate:
            draws = Draws(world.seed, order_id, "customer")
            if draws.chance(demand.cancel_rate):
                wait = demand.cancel_after
                minutes = draws.exponential_cut(
                    wait.min_minutes, wait.mean_minutes, wait.max_minutes
                )
                env.process(self._changes_mind(order_id, minutes * MINUTE))
        if demand.address_change_rate:
            draws = Draws(world.seed, order_id, "moves")
            if draws.chance(demand.address_change_rate):
                self._later(order_id, demand.address_change_after, "move", self.change_address)

    def place_for_new_item(self, line: dict[str, Any], rank: int, draws: Draws) -> None:
        """A customer orders a just-launched item (harness/world/masterdata.py)."""
        customer, ship_to = self.people.customer(draws)
        order = self.erp.create_order(customer, ship_to, "standard", [line])
        self.numbers[order.id] = rank
        self.world.counts["new_item_orders"] += 1
        self._release(order.id, None)

    def place(self, order_id: str) -> int:
        """The order's place in the day's arrivals, which ranks it on the floor: its number,
        or a scripted order's place after the generated ones."""
        number = self.numbers.get(order_id)
        if number is not None:
            return number
        return self.script.places.get(order_id, UNKNOWN_ORDER)

    # -- the script's customers -------------------------------------------------------------
    def _scripted(self) -> Generator[Any, Any, None]:
        """The script's orders and calls, in time order; an order placed at the moment of a
        call about it is placed first."""
        env, script = self.env, self.script
        happenings: list[tuple[float, int, int, Any]] = [
            (order.at, 0, n, order) for n, order in enumerate(script.orders)
        ]
        happenings += [(at, 1, index, entry) for at, index, entry in script.calls]
        happenings.sort(key=lambda item: item[:3])
        orders_left = len(script.orders)
        for at, kind, _, thing in happenings:
            if at > env.now:
                yield env.timeout(at - env.now)
            if self.world.customers is not self:
                return  # this desk was replaced before the day began (``twinyard load``)
            if kind == 0:
                self.place_scripted(thing)
                orders_left -= 1
                if not orders_left:
                    self._scripting = False
                    if not self._generating:
                        self.arriving = False
            else:
                self.scripted_call(thing)

    def scripted_content(
        self, order: ScriptedOrder
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The order as the ERP gets it, with what the script left out drawn keyed by its id;
        and the address it should have had when the drawn one has a typo (else None)."""
        seed, demand = self.world.seed, self.demand
        drawn_customer, drawn_ship_to = self.people.customer(
            Draws(seed, "order", order.id, "content")
        )
        true_address = None
        if order.ship_to is not None:
            ship_to = order.ship_to.model_dump()
        else:
            ship_to = drawn_ship_to
            if Draws(seed, "order", order.id, "address").chance(demand.address_error_rate):
                true_address, ship_to = ship_to, {**ship_to, "postal_code": ""}
        name = (
            order.customer.name
            if order.customer is not None
            else (order.ship_to.name if order.ship_to is not None else drawn_customer["name"])
        )
        email = (order.customer.email if order.customer is not None else "") or drawn_customer[
            "email"
        ]
        content = {
            "customer": {"name": name, "email": email},
            "ship_to": ship_to,
            "service_level": order.service_level,
            "lines": [{"sku": line.sku, "qty": line.qty} for line in order.lines],
        }
        return content, true_address

    def place_scripted(self, order: ScriptedOrder) -> bool:
        """A scripted customer places an order: created with its id, released at once."""
        content, true_address = self.scripted_content(order)
        try:
            created = self.erp.create_order(**content, order_id=order.id)
        except SimError as exc:
            self.world.incident(f"{order.id}: the ERP refused the scripted order: {exc.message}")
            return False
        self.world.counts["scripted_orders"] += 1
        self._release(created.id, true_address)
        return True

    def scripted_call(self, entry: TimelineEntry) -> bool:
        """A scripted call to customer service: a cancellation or a new address."""
        if entry.cancel is not None:
            return self.call_to_cancel(entry.cancel)
        assert entry.address is not None  # script.CALLS holds only these two kinds
        change = entry.address
        return self.move(change.order, change.ship_to, correction=change.correction)

    def move(self, order_id: str, ship_to: Address, *, correction: bool = False) -> bool:
        """A new delivery address: a customer's move is accepted, as ``change_address``, only
        before the warehouse starts on the order; customer service's correction of a typo,
        as ``correct_address``, until the order leaves."""
        if correction:
            return self._new_ship_to(order_id, ship_to.model_dump(), "address_corrected")
        if not self.world.floor.may_cancel(order_id):
            self.world.counts["address_change_refused"] += 1
            return False
        return self._new_ship_to(order_id, ship_to.model_dump(), "address_changed")

    def order_address(self, number: int) -> dict[str, Any]:
        """The address the ``number``-th order should have had (what its draws give)."""
        draws = Draws(self.world.seed, "order", number, "content")
        return self.people_of(number).customer(draws)[1]

    def people_of(self, number: int) -> People:
        """Where the ``number``-th order's customer lives: at home, or (``abroad_share``, a
        draw of its own, so no other draw moves) in one of the countries abroad."""
        share = self.demand.abroad_share
        if not share:
            return self.people
        draws = Draws(self.world.seed, "order", number, "abroad")
        if not draws.chance(share):
            return self.people
        countries = sorted(ABROAD)
        return people(self.world.seed, countries[draws.randint(0, len(countries) - 1)])

    def _later(self, order_id: str, wait: Delay, purpose: str, call: Any) -> None:
        """Call ``call(order_id)`` after a delay drawn for this order and purpose."""
        draws = Draws(self.world.seed, order_id, purpose)
        minutes = draws.exponential_cut(wait.min_minutes, wait.mean_minutes, wait.max_minutes)

        def process() -> Generator[Any, Any, None]:
            yield self.env.timeout(minutes * MINUTE)
            call(order_id)

        self.env.process(process())

    def correct_address(self, order_id: str) -> bool:
        """Customer service puts the missing postal code in, unless the order has left or
        the customer has given a whole new address meanwhile."""
        order = self.erp.orders.get(order_id)
        if order is not None and order.ship_to.get("postal_code"):
            self.world.counts["address_corrected_already"] += 1
            return False
        return self._new_ship_to(order_id, self.true_addresses[order_id], "address_corrected")

    def change_address(self, order_id: str, call: int = 1) -> bool:
        """A customer moves the delivery: accepted only before the warehouse starts on it.
        Some call a second time with yet another address (``address_change_again_rate``)."""
        if not self.world.floor.may_cancel(order_id):
            self.world.counts["address_change_refused"] += 1
            return False
        # A generated order's new address is keyed by its number, a scripted order's by its id;
        # a second call's by the call too, so the first call's address is what it always was.
        key = self.numbers.get(order_id, order_id)
        living = self.people_of(key) if isinstance(key, int) else self.people
        purpose = ("moved",) if call == 1 else ("moved", call)
        moved = living.customer(Draws(self.world.seed, "order", key, *purpose))[1]
        current = self.erp.orders[order_id].ship_to
        new = {**moved, "name": current["name"], "postal_code": moved["postal_code"]}
        changed = self._new_ship_to(order_id, new, "address_changed")
        again = self.demand.address_change_again_rate
        calls_again = changed and call == 1 and again > 0
        if calls_again and Draws(self.world.seed, order_id, "moves again").chance(again):
            second = partial(self.change_address, call=2)
            self._later(order_id, self.demand.address_change_after, "move again", second)
        return changed

    def _new_ship_to(self, order_id: str, ship_to: dict[str, Any], counter: str) -> bool:
        order = self.erp.orders.get(order_id)
        if order is None or order.status not in ("open", "released"):
            self.world.counts[f"{counter}_too_late"] += 1
            return False
        try:
            self.erp.change_ship_to(order_id, ship_to)
        except SimError as exc:
            self.world.incident(f"{order_id}: the ERP refused an address change: {exc.message}")
            return False
        self.world.counts[counter] += 1
        return True

    def _changes_mind(self, order_id: str, after: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(after)
        self.call_to_cancel(order_id)

    def call_to_cancel(self, order_id: str) -> bool:
        """Customer service takes a cancellation, if the warehouse has not started on it."""
        world = self.world
        order = self.erp.orders.get(order_id)
        if order is None or order.status not in ("open", "released"):
            world.counts["cancel_refused"] += 1
            return False
        if not world.floor.may_cancel(order_id):
            world.counts["cancel_refused"] += 1
            return False
        try:
            self.erp.cancel(order_id)
        except SimError as exc:
            world.incident(f"{order_id}: the ERP refused a cancellation: {exc.message}")
            return False
        world.expected.discard(order_id)
        world.counts["cancelled"] += 1
        return True
