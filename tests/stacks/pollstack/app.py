"""The process: `GET /_stack/health` on 127.0.0.1:$TWINYARD_STACK_PORT, and the four pollers.

pollstack subscribes to nothing and has no idle probe: every other route, `/_stack/idle`
and `/webhooks/<system>` included, is 404 (a webhook twinyard subscribes on our behalf is
refused, never read).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import uvicorn

from . import config
from .flows import Flows
from .poller import EventFeed, Feed, OrderList, run_forever, save_cursors
from .vendors import Vendors

log = logging.getLogger("pollstack")

ERP_EVENTS = ("item.created", "item.changed", "transfer.released")  # what its feed owes us


class App:
    """A bare ASGI app: health once the pollers run, 404 for everything else."""

    def __init__(self) -> None:
        self.ready = False
        self.refused = 0  # webhook deliveries answered 404

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if scope["method"] == "GET" and path == "/_stack/health":
            status, body = (200, {"status": "ok"}) if self.ready else (503, {"status": "starting"})
        else:
            if path.startswith("/webhooks/"):
                self.refused += 1
                if self.refused == 1:
                    log.warning("refusing a webhook delivery to %s (this stack polls)", path)
            status = 404
            body = {"error": {"code": "not_found", "message": f"no route {path}", "details": {}}}
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def build_jobs(cfg: config.Config, vendors: Vendors, flows: Flows) -> list[list[Feed]]:
    """One polling job per vendor, its feeds read in this order every cycle: the ERP's item
    and transfer events (`GET /events?types=item.created,item.changed,transfer.released`)
    then its orders change list; the events feeds of the WMS, TMS and carrier."""
    limit, bugs = cfg.page_limit, cfg.bugs
    jobs: list[list[Feed]] = [
        [
            EventFeed(vendors, "erp", limit, flows.erp_event, flows.key_of, bugs, ERP_EVENTS),
            OrderList(vendors, min(limit * 2, 1000), flows.erp_order, flows.key_of, bugs),
        ],
        [EventFeed(vendors, "wms", limit, flows.wms_event, flows.key_of, bugs)],
        [EventFeed(vendors, "tms", limit, flows.tms_event, flows.key_of, bugs)],
        [EventFeed(vendors, "carrier", limit, flows.carrier_event, flows.key_of, bugs)],
    ]
    feeds = [feed for job in jobs for feed in job]
    if cfg.run_dir:
        hook = save_cursors(cfg.run_dir / "pollstack-cursors.json", feeds)
        for feed in feeds:
            feed.on_commit = hook
    return jobs


async def serve(cfg: config.Config) -> None:
    app = App()
    vendors = Vendors(cfg.urls, lacking_is_dead="lacking-field-dead" in cfg.bugs)
    flows = Flows(vendors, look_at_once="look-at-once" in cfg.bugs)
    jobs = build_jobs(cfg, vendors, flows)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=cfg.port, log_level="warning", lifespan="on")
    )
    pollers = [asyncio.create_task(run_forever(job, cfg.interval_s)) for job in jobs]
    app.ready = True
    log.info("polling every %.2f s; bugs: %s", cfg.interval_s, ",".join(sorted(cfg.bugs)) or "none")
    try:
        await server.serve()
    finally:
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        await vendors.close()
        dead = sum(len(feed.dead) for job in jobs for feed in job)
        log.info("stopped: %d webhook deliveries refused, %d dead letters", app.refused, dead)


def main() -> None:
    form = "%(asctime)s %(name)s %(levelname)s %(message)s"
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=form)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is too many
    cfg = config.load()
    asyncio.run(serve(cfg))
