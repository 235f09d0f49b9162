"""The HTTP face: signed webhook receiver, health, idle probe, dead letters."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import asdict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .config import SYSTEMS, Config
from .flows import Flows
from .vendors import Vendors
from .worker import Worker

log = logging.getLogger("ministack.app")

MAX_BODY = 1024 * 1024
REPLAY_WINDOW_S = 300


def error(status: int, code: str, message: str, **details) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}}, status)


SIGNATURE_HEADERS = ("x-twinyard-timestamp", "x-twinyard-signature")


def signature_ok(secret: str, timestamp: str | None, signature: str | None, body: bytes) -> bool:
    if not timestamp or not signature or not re.fullmatch(r"[0-9]{1,12}", timestamp):
        return False
    if abs(time.time() - int(timestamp)) > REPLAY_WINDOW_S:
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    expected = mac.hexdigest()
    given = [part.strip()[3:] for part in signature.split(",") if part.strip().startswith("v1=")]
    return any(hmac.compare_digest(expected.encode(), g.encode()) for g in given)


def envelope(body: bytes) -> dict | None:
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        return None
    ok = (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and event["id"] != ""
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
    )
    return event if ok else None


async def read_body(request: Request) -> bytes | None:
    """The raw body, or None when it is over MAX_BODY (refused without reading it all)."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build(config: Config) -> Starlette:
    worker = Worker()
    vendors = Vendors(config.urls, worker.sleep)
    flows = Flows(config, vendors, worker)
    seen: dict[str, set[str]] = {system: set() for system in SYSTEMS}
    shapes: dict[str, frozenset[str]] = {}  # the sample-shaped bug's: data keys by event type
    ready = {"subscribed": False}

    async def subscribe() -> None:
        for system in SYSTEMS:
            body = {
                "url": f"http://127.0.0.1:{config.port}/webhooks/{system}",
                "events": ["*"],
                "secret": config.secret,
            }
            await vendors.call(system, "POST", "/webhooks", corr="ms-subscribe", json=body)
        ready["subscribed"] = True
        bugs = ",".join(sorted(config.bugs)) or "none"
        log.info("subscribed to %s; probe %s; bugs %s", ", ".join(SYSTEMS), config.probe, bugs)

    async def receive(request: Request) -> JSONResponse:
        system = request.path_params["system"]
        if system not in SYSTEMS:
            return error(404, "not_found", f"no receiver for system {system!r}")
        try:
            body = await read_body(request)
        except ValueError:  # a content-length that is not a number
            return error(400, "malformed_event", "unreadable Content-Length")
        if body is None:
            return error(413, "payload_too_large", f"body over {MAX_BODY} bytes")
        headers = request.headers
        twice = [name for name in SIGNATURE_HEADERS if len(headers.getlist(name)) > 1]
        if twice and "first-signature" not in config.bugs:  # BUG first-signature when skipped
            # servers differ in which of two they hand over: refuse rather than guess
            return error(401, "invalid_signature", f"{twice[0]} sent more than once")
        signed = body
        if "reserialised" in config.bugs:  # BUG reserialised: as JSON.stringify(req.body) writes it
            with contextlib.suppress(ValueError, RecursionError):
                signed = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
                signed = signed.encode()
        if not signature_ok(
            config.secret,
            headers.get("x-twinyard-timestamp"),
            headers.get("x-twinyard-signature"),
            signed,
        ):
            event_id = headers.get("x-twinyard-event-id")
            log.warning("refused %s webhook %r: bad signature", system, event_id)
            return error(401, "invalid_signature", "signature missing, stale or not matching")
        early = "dedup-first" in config.bugs  # BUG dedup-first: by the header, before the body
        event_id = headers.get("x-twinyard-event-id") if early else None
        if early and event_id in seen[system]:
            return JSONResponse({"status": "duplicate", "event_id": event_id}, 200)
        if early:
            seen[system].add(event_id)
        event = envelope(body)
        if event is None:
            return error(400, "malformed_event", "the body is not an event envelope")
        if "sample-shaped" in config.bugs:  # BUG sample-shaped: data shaped as the first one
            known = shapes.setdefault(event["type"], frozenset(event["data"]))
            if unknown := sorted(set(event["data"]) - known):
                return error(400, "malformed_event", f"unknown fields {unknown}")
        dedup_key = event["id"]
        if "once-per-order" in config.bugs:  # BUG once-per-order: one event of a type per order
            data = event["data"]
            order = data.get("order_id") or data.get("order_ref") or event["id"]
            dedup_key = f"{event['type']}:{order}"
        if not early and dedup_key in seen[system]:
            return JSONResponse({"status": "duplicate", "event_id": event["id"]}, 200)
        seen[system].add(dedup_key)
        flows.dispatch(event, headers.get("x-correlation-id"))
        return JSONResponse({"status": "accepted", "event_id": event["id"]}, 202)

    async def health(request: Request) -> JSONResponse:
        if not ready["subscribed"]:
            return JSONResponse({"status": "starting"}, 503)
        return JSONResponse({"status": "ok"})

    async def idle(request: Request) -> JSONResponse:
        if config.probe == "idle":  # the probe as README documents it, nothing more
            return JSONResponse({"idle": worker.idle})
        if config.probe == "busy-waiting":  # a common mistake: a timer wait counted as work
            return JSONResponse({"idle": worker.idle and not worker.waiting})
        dead = len(worker.dead())
        return JSONResponse(
            {"idle": worker.idle, "running": worker.busy, "scheduled": worker.waiting, "dead": dead}
        )

    async def dead_letters(request: Request) -> JSONResponse:
        return JSONResponse({"items": [job.public() for job in worker.dead()]})

    async def replay(request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        job = worker.replay(job_id)
        if job is None:
            known = worker.jobs.get(job_id)
            if known is None:
                return error(404, "not_found", f"no dead letter {job_id}")
            return error(409, "not_dead", f"{job_id} is {known.status}", status=known.status)
        return JSONResponse(job.public(), 202)

    async def order(request: Request) -> JSONResponse:
        found = flows.orders.get(request.path_params["ref"])
        if found is None:
            return error(404, "not_found", "no such order")
        return JSONResponse(json.loads(json.dumps(asdict(found), default=str)))

    routes = [
        Route("/webhooks/{system}", receive, methods=["POST"]),
        Route("/_stack/health", health),
        Route("/_stack/dead-letters", dead_letters),
        Route("/_stack/dead-letters/{job_id}/replay", replay, methods=["POST"]),
        Route("/_stack/orders/{ref}", order),
    ]
    if config.probe != "none":
        routes.append(Route("/_stack/idle", idle))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        worker.submit("subscribe", "startup", subscribe)
        yield
        await vendors.close()

    return Starlette(routes=routes, lifespan=lifespan)
