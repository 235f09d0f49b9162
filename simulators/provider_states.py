"""Provider states: the sentences a pact may say in ``given(...)``, and how each simulator
makes them true.

Pact interactions start from a state ("order SO-1 is released"). A provider that does not
know a state cannot be verified, so each simulator publishes a fixed vocabulary here and sets
itself up through its control plane (``POST /_sim/provider-states``, the body Pact's verifier
sends). A state names its entities in the sentence; ``params`` (Pact V3+) may add or override
values (``sku``, ``qty``, ``lines`` ...). Unknown states are refused at once with the list of
known ones, never left to the verifier's retries.

Each state builds what it needs from nothing (an order is created, then released), so states
compose only in the sense that later ones may use what earlier ones made; a teardown resets
the simulator, so every interaction starts from an empty system.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.common.errors import SimError
from simulators.common.sites import SITE_NAME

Params = dict[str, Any]
Setup = Callable[[Any, Params], None]  # (the system's model or simulator, the state's values)

DEFAULT_SKU = "A-100"
DEFAULT_STOCK = 100
DEFAULT_SHIP_TO = {
    "name": "Ada Lovelace",
    "street": "Keizersgracht 1",
    "city": "Amsterdam",
    "postal_code": "1015 CJ",
    "country": "NL",
}
DEFAULT_CUSTOMER = {"name": "Ada Lovelace", "email": "ada@example.com"}
INTEGER_PARAMS = frozenset({"qty", "delta"})


@dataclass(frozen=True, slots=True)
class ProviderState:
    """One sentence of the vocabulary: ``order {order_id} is released``."""

    template: str
    setup: Setup
    doc: str
    on_simulator: bool = False  # set up on the simulator (webhooks), not on its model

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"\{(\w+)\}", self.template)
        regex = "".join(
            f"(?P<{part}>.+?)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
        )
        return re.compile(f"^{regex}$")

    def match(self, name: str) -> Params | None:
        found = self.pattern.match(name.strip())
        return found.groupdict() if found else None


class UnknownState(SimError):
    """A state no simulator sentence matches: 422, with the vocabulary in ``details.known``."""

    def __init__(self, system: str, name: str, known: list[str]) -> None:
        super().__init__(
            422,
            "unknown_provider_state",
            f"{system} has no provider state {name!r}",
            known=known,
        )


def values(matched: Params, params: Params | None) -> Params:
    """The sentence's values, overridden by the pact's params; counts become integers."""
    merged = {**matched, **(params or {})}
    for name in INTEGER_PARAMS & merged.keys():
        try:
            merged[name] = int(merged[name])
        except (TypeError, ValueError):
            raise SimError(
                422, "invalid_provider_state", f"{name} must be an integer", field=name
            ) from None
    return merged


def lines_of(params: Params) -> list[dict[str, Any]]:
    """The order lines a state asks for: ``lines`` as given, else one line of ``sku``/``qty``."""
    lines = params.get("lines")
    if isinstance(lines, list) and lines:
        return [{"sku": str(x["sku"]), "qty": int(x["qty"])} for x in lines]
    return [{"sku": str(params.get("sku", DEFAULT_SKU)), "qty": int(params.get("qty", 3))}]


def stocked(model: Any, skus: list[str]) -> None:
    """SKUs an order names join the catalogue (with plenty on hand) if a state did not."""
    for sku in skus:
        model.stock.setdefault(sku, DEFAULT_STOCK)
        model.ensure_item(sku)


# -- ERP -------------------------------------------------------------------------------------
def erp_on_hand(model: Any, p: Params) -> None:
    model.stock[p["sku"]] = p["qty"]
    model.ensure_item(p["sku"])


def erp_item(model: Any, p: Params) -> None:
    """An item of the master as the cutover loaded it; params: uom, each_per_case."""
    stocked(model, [p["sku"]])
    if p.get("uom") == "CS":
        model.cutover_item(p["sku"], "CS", int(p.get("each_per_case", 6)))


def erp_item_created(model: Any, p: Params) -> None:
    model.create_item(
        p["sku"],
        p.get("description", "Kettle, steel"),
        p.get("uom", "CS"),
        int(p.get("each_per_case", 6)),
        float(p.get("weight_kg", 1.2)),
        opening_stock=DEFAULT_STOCK,
    )


def erp_item_changed(model: Any, p: Params) -> None:
    """Created (as ``erp_item_created``), then re-weighed: version 2 (item.changed)."""
    erp_item_created(model, p)
    model.change_item(p["sku"], weight_kg=float(p.get("new_weight_kg", 1.3)))


def erp_open(model: Any, p: Params) -> None:
    lines = lines_of(p)
    stocked(model, [x["sku"] for x in lines])
    ship_to = p.get("ship_to", DEFAULT_SHIP_TO)
    level = p.get("service_level", "standard")
    model.create_order(DEFAULT_CUSTOMER, ship_to, level, lines, order_id=p["order_id"])


def erp_released(model: Any, p: Params) -> None:
    erp_open(model, p)
    model.release(p["order_id"])


def erp_cancelled(model: Any, p: Params) -> None:
    erp_released(model, p)
    model.cancel(p["order_id"])


def erp_new_ship_to(model: Any, p: Params) -> None:
    erp_released(model, p)
    moved = {**DEFAULT_SHIP_TO, "street": "Prinsengracht 263", "postal_code": "1016 GV"}
    model.change_ship_to(p["order_id"], p.get("new_ship_to", moved))


def erp_shipped(model: Any, p: Params) -> None:
    erp_released(model, p)
    order = model.order(p["order_id"])
    issued = [{"line": x["line"], "qty": x["qty"]} for x in order.lines]
    tracking = p.get("tracking_number", "PC000000001")
    model.goods_issue(order.id, issued, tracking, "parcelco", p.get("shipment_id"))


def erp_return_authorised(model: Any, p: Params) -> None:
    erp_shipped(model, p)
    order = model.order(p["order_id"])
    lines = [{"line": x["line"], "qty": x["qty"]} for x in order.lines]
    model.authorise_return(
        order.id,
        lines,
        p.get("reason", "changed_mind"),
        p.get("resolution", "refund"),
        rma_id=p["rma_id"],
    )


def erp_return_credited(model: Any, p: Params) -> None:
    """Needs the RMA (a state before it): credits one unit of its first line, restocked."""
    rma = model.return_authorisation(p["rma_id"])
    line = rma.lines[0]["line"]
    model.dispose_return(rma.id, p["receipt_id"], [{"line": line, "qty": 1, "restock_qty": 1}])


def opened(model: Any, site: str, stock: dict[str, int]) -> None:
    """A site the state names exists (added with ``stock`` if not); a name no site could
    have (``SITE_NAME``) is refused, as the scenario's ``sites:`` refuses it."""
    if site in model.sites.by_site:
        return
    if not SITE_NAME.match(site):
        raise SimError(422, "invalid_provider_state", f"{site!r} is no site code", site=site)
    model.add_site(site, stock)


def on_sites(model: Any, from_site: str, to_site: str, skus: list[str]) -> None:
    """The sites a transfer names exist (added if not: plenty of each SKU where it ships
    from, none where it goes), and list its SKUs. Works on the ERP's and the WMS's model."""
    stocked(model, skus)
    for site in (from_site, to_site):
        opened(model, site, dict.fromkeys(skus, DEFAULT_STOCK if site == from_site else 0))
    for sku in skus:
        model.sites.add_sku(sku)


def erp_transfer_released(model: Any, p: Params) -> None:
    lines = lines_of(p)
    on_sites(model, p["from_site"], p["to_site"], [x["sku"] for x in lines])
    model.transfers.release(p["from_site"], p["to_site"], lines, transfer_id=p["transfer_id"])


def erp_transfer_in_transit(model: Any, p: Params) -> None:
    erp_transfer_released(model, p)
    order = model.transfers.get(p["transfer_id"])
    moved = [{"line": x["line"], "qty": x["qty"]} for x in order.lines]
    model.transfers.issue(order.id, p.get("reference", "WT-000001"), moved)


# -- WMS -------------------------------------------------------------------------------------
def wms_on_hand(model: Any, p: Params) -> None:
    model.stock[p["sku"]] = p["qty"]
    model.ensure_item(p["sku"])


def wms_no_item(model: Any, p: Params) -> None:
    """The registry lacks the item (a new SKU not synchronised yet)."""
    model.items.pop(p["sku"], None)


def wms_accepted(model: Any, p: Params) -> None:
    lines = [{"line": n, **x} for n, x in enumerate(lines_of(p), 1)]
    stocked(model, [x["sku"] for x in lines])
    ship_to = p.get("ship_to", DEFAULT_SHIP_TO)
    level = p.get("service_level", "standard")
    model.create_order(p["order_ref"], ship_to, level, lines, fo_id=p["fo_id"])


def wms_picked(model: Any, p: Params) -> None:
    wms_accepted(model, p)
    fo = model.get(p["fo_id"])
    model.pick(fo.id, {line.line: line.qty for line in fo.lines})


def wms_short_picked(model: Any, p: Params) -> None:
    """Every line comes up one short (nothing at all for a single unit)."""
    wms_accepted(model, p)
    fo = model.get(p["fo_id"])
    model.pick(fo.id, {line.line: line.qty - 1 for line in fo.lines})


def wms_packed(model: Any, p: Params) -> None:
    wms_picked(model, p)
    model.pack(p["fo_id"])


def wms_labelled(model: Any, p: Params) -> None:
    wms_packed(model, p)
    tracking = p.get("tracking_number", "PC000000001")
    model.attach_label(p["fo_id"], tracking, "parcelco", p.get("label_id", "LB-000001"))


def wms_shipped(model: Any, p: Params) -> None:
    wms_labelled(model, p)
    model.ship(p["fo_id"])


def wms_cancelled(model: Any, p: Params) -> None:
    wms_accepted(model, p)
    model.cancel(p["fo_id"])


def wms_adjusted(model: Any, p: Params) -> None:
    stocked(model, [p["sku"]])
    model.adjust(p["sku"], p["delta"], p.get("reason", "cycle_count"))


def wms_received(model: Any, p: Params) -> None:
    lines = lines_of(p)
    stocked(model, [x["sku"] for x in lines])
    model.receive(p["reference"], lines)


def wms_return_received(model: Any, p: Params) -> None:
    lines = [
        {"line": n, "sku": x["sku"], "qty": x["qty"], "condition": p.get("condition", "restock")}
        for n, x in enumerate(lines_of(p), 1)
    ]
    model.receive_return(p["rma_id"], p["order_ref"], lines, receipt_id=p["receipt_id"])


def wms_site(model: Any, p: Params) -> None:
    """Another facility, holding ``qty`` of ``sku`` (the catalogue's other SKUs: none)."""
    stocked(model, [p.get("sku", DEFAULT_SKU)])
    opened(model, p["site"], {})
    model.sites.add_sku(p.get("sku", DEFAULT_SKU))
    model.stock_at(p["site"])[p.get("sku", DEFAULT_SKU)] = int(p.get("qty", DEFAULT_STOCK))


def wms_transfer_accepted(model: Any, p: Params) -> None:
    from_site, to_site = p.get("from_site", "DC1"), p.get("to_site", "DC2")
    lines = [{"line": n, **x} for n, x in enumerate(lines_of(p), 1)]
    on_sites(model, from_site, to_site, [x["sku"] for x in lines])
    model.create_transfer(
        p["transfer_ref"], from_site, to_site, lines, transfer_id=p["transfer_id"]
    )


def wms_transfer_shipped(model: Any, p: Params) -> None:
    wms_transfer_accepted(model, p)
    transfer = model.transfers.get(p["transfer_id"])
    model.ship_transfer(transfer.id, {x["line"]: x["qty"] for x in transfer.lines})


def wms_transfer_received(model: Any, p: Params) -> None:
    wms_transfer_shipped(model, p)
    transfer = model.transfers.get(p["transfer_id"])
    model.receive_transfer(transfer.id, {x["line"]: x["shipped_qty"] for x in transfer.lines})


# -- TMS -------------------------------------------------------------------------------------
def tms_planned(model: Any, p: Params) -> None:
    packages = [{"weight_kg": float(p.get("weight_kg", 1.6))}]
    ship_to = p.get("ship_to", DEFAULT_SHIP_TO)
    level = p.get("service_level", "standard")
    fo_id = p.get("fo_id", "FO-000001")
    model.plan(p["order_ref"], fo_id, ship_to, level, packages, shipment_id=p["shipment_id"])


def tms_settled(model: Any, p: Params) -> None:
    tms_planned(model, p)
    model.settle(p["shipment_id"])


def tms_no_express(model: Any, p: Params) -> None:
    model.express_capacity_per_day = 0


# -- carrier ---------------------------------------------------------------------------------
def carrier_bought(model: Any, p: Params) -> None:
    packages = [{"weight_kg": float(p.get("weight_kg", 1.6)), "contents": []}]
    service = p.get("service", "ground")
    label = model.create_label(
        p.get("shipment_ref", "SH-000001"), service, DEFAULT_SHIP_TO, packages
    )
    wanted = p.get("tracking_number")
    if wanted and wanted != label.tracking_number:  # the pact names its parcel
        del model.by_tracking[label.tracking_number]
        label.tracking_number = wanted
        model.by_tracking[wanted] = label.id


def carrier_scanned(status: str) -> Setup:
    milestones = ["picked_up", "in_transit", "out_for_delivery", "delivered"]

    def setup(model: Any, p: Params) -> None:
        carrier_bought(model, p)
        for milestone in milestones[: milestones.index(status) + 1]:
            model.scan(p["tracking_number"], milestone)

    return setup


# -- every system: its webhook subscriptions --------------------------------------------------
def subscribed(sim: Any, p: Params) -> None:
    url = p.get("url", f"http://127.0.0.1:8000/webhooks/{sim.system}")
    events = p.get("events") or sorted(sim.webhooks.event_types)
    sim.webhooks.subscribe(url, events, p.get("secret", "s3cr3t"), sub_id=p["sub_id"])


COMMON = [
    ProviderState(
        "webhook subscription {sub_id} exists",
        subscribed,
        "params: url, events, secret",
        on_simulator=True,
    )
]

SYSTEM_STATES: dict[str, list[ProviderState]] = {
    "erp": [
        ProviderState("SKU {sku} has {qty} on hand", erp_on_hand, "sets the ERP's stock"),
        ProviderState(
            "item {sku} is in the item master",
            erp_item,
            "loaded at cutover (no event); params: uom (CS with each_per_case)",
        ),
        ProviderState(
            "item {sku} is created",
            erp_item_created,
            "a new item (item.created); params: description, uom, each_per_case, weight_kg",
        ),
        ProviderState(
            "item {sku} is changed",
            erp_item_changed,
            "created, then re-weighed to version 2 (item.changed); params as created, "
            "new_weight_kg",
        ),
        ProviderState(
            "order {order_id} is open",
            erp_open,
            "an open sales order; params: sku, qty or lines, ship_to, service_level",
        ),
        ProviderState(
            "order {order_id} is released", erp_released, "open, then released (order.released)"
        ),
        ProviderState(
            "order {order_id} is cancelled",
            erp_cancelled,
            "released, then cancelled (order.cancelled)",
        ),
        ProviderState(
            "order {order_id} has a new ship-to",
            erp_new_ship_to,
            "released, then its ship-to changed (order.updated); param: new_ship_to",
        ),
        ProviderState(
            "order {order_id} is shipped",
            erp_shipped,
            "released, then goods issued in full; params: tracking_number, shipment_id",
        ),
        ProviderState(
            "return {rma_id} of order {order_id} is authorised",
            erp_return_authorised,
            "shipped, then every unit authorised for return (return.authorised); params: "
            "sku, qty or lines, reason, resolution",
        ),
        ProviderState(
            "return receipt {receipt_id} of {rma_id} is credited",
            erp_return_credited,
            "a credit memo for one unit of the RMA's first line, restocked (after the RMA's state)",
        ),
        ProviderState(
            "transfer {transfer_id} from {from_site} to {to_site} is released",
            erp_transfer_released,
            "a stock transfer order (transfer.released); sites it names are added (stock where "
            "it ships from, none where it goes); params: sku, qty or lines",
        ),
        ProviderState(
            "transfer {transfer_id} from {from_site} to {to_site} is in transit",
            erp_transfer_in_transit,
            "released, then its goods issue posted for every unit; param: reference (the WMS "
            "transfer, WT-000001)",
        ),
    ],
    "wms": [
        ProviderState("SKU {sku} has {qty} on hand", wms_on_hand, "sets the WMS's stock"),
        ProviderState(
            "item {sku} is not in the registry", wms_no_item, "a SKU the WMS has not been told of"
        ),
        ProviderState(
            "fulfilment order {fo_id} for {order_ref} is accepted",
            wms_accepted,
            "params: sku, qty or lines, ship_to, service_level",
        ),
        ProviderState(
            "fulfilment order {fo_id} for {order_ref} is picked",
            wms_picked,
            "accepted, then picked in full (order.picked)",
        ),
        ProviderState(
            "fulfilment order {fo_id} for {order_ref} is picked short",
            wms_short_picked,
            "accepted, then every line picked one short (order.picked)",
        ),
        ProviderState(
            "fulfilment order {fo_id} for {order_ref} is packed",
            wms_packed,
            "picked, then packed in one box (order.packed)",
        ),
        ProviderState(
            "fulfilment order {fo_id} for {order_ref} is labelled",
            wms_labelled,
            "packed, then labelled; params: tracking_number, label_id",
        ),
        ProviderState(
            "fulfilment order {fo_id} for {order_ref} is shipped",
            wms_shipped,
            "labelled, then handed to the carrier (order.shipped)",
        ),
        ProviderState(
            "fulfilment order {fo_id} for {order_ref} is cancelled",
            wms_cancelled,
            "accepted, then cancelled",
        ),
        ProviderState(
            "SKU {sku} was adjusted by {delta}",
            wms_adjusted,
            "a stock adjustment (inventory.adjusted); param: reason",
        ),
        ProviderState(
            "receipt {reference} is confirmed",
            wms_received,
            "goods received (receipt.confirmed); params: sku, qty or lines",
        ),
        ProviderState(
            "return {receipt_id} of {rma_id} for {order_ref} is received",
            wms_return_received,
            "a customer return at the bench, line per sku (return.received); params: sku, qty "
            "or lines, condition",
        ),
        ProviderState(
            "site {site} exists",
            wms_site,
            "another facility beside DC1; params: sku, qty (its stock of that SKU, 100)",
        ),
        ProviderState(
            "transfer {transfer_id} for {transfer_ref} is accepted",
            wms_transfer_accepted,
            "an outbound transfer; sites it names are added; params: from_site (DC1), to_site "
            "(DC2), sku, qty or lines",
        ),
        ProviderState(
            "transfer {transfer_id} for {transfer_ref} is shipped",
            wms_transfer_shipped,
            "accepted, then shipped in full (transfer.shipped)",
        ),
        ProviderState(
            "transfer {transfer_id} for {transfer_ref} is received",
            wms_transfer_received,
            "shipped, then received in full (transfer.received)",
        ),
    ],
    "tms": [
        ProviderState(
            "shipment {shipment_id} for {order_ref} is planned",
            tms_planned,
            "params: fo_id, service_level, weight_kg, ship_to",
        ),
        ProviderState(
            "shipment {shipment_id} for {order_ref} is settled",
            tms_settled,
            "planned, then its freight settled (freight.settled)",
        ),
        ProviderState(
            "express capacity is exhausted",
            tms_no_express,
            "every express tender is declined (422 tender_rejected)",
        ),
    ],
    "carrier": [
        ProviderState(
            "parcel {tracking_number} has a label",
            carrier_bought,
            "a label bought; params: service, shipment_ref, weight_kg",
        ),
        *(
            ProviderState(
                f"parcel {{tracking_number}} is {status.replace('_', ' ')}",
                carrier_scanned(status),
                f"labelled, then scanned up to {status} (tracking.updated)",
            )
            for status in ("picked_up", "in_transit", "out_for_delivery", "delivered")
        ),
    ],
}


# Each system's sentences, then those every simulator knows.
VOCABULARY = {system: [*states, *COMMON] for system, states in SYSTEM_STATES.items()}


def known(system: str) -> list[str]:
    return [state.template for state in VOCABULARY[system]]


def find(system: str, name: str) -> tuple[ProviderState, Params]:
    """The state a sentence names, and the values it carries; ``UnknownState`` if none."""
    for state in VOCABULARY[system]:
        matched = state.match(name)
        if matched is not None:
            return state, matched
    raise UnknownState(system, name, known(system))


def apply(sim: Any, name: str, params: Params | None = None) -> None:
    """Make the state true on the simulator ``sim`` (mostly on its model). The empty state
    (Pact's generic set-up) is a no-op."""
    if not name.strip():
        return
    state, matched = find(sim.system, name)
    state.setup(sim if state.on_simulator else sim.model, values(matched, params))
