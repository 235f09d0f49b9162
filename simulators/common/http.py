"""Small helpers for simulator endpoints: JSON in and out, validation, vendor-style errors."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.common.errors import SimError

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]

JSON = "application/json"


def retry_after_seconds(text: str) -> float | None:
    """The wait a Retry-After value asks for, in seconds: its number, or how far its HTTP date
    is from now (the oracles judge retries by it, whichever form the vendor used); None when
    it does not read."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def respond(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type=JSON)


def error_response(err: SimError) -> Response:
    return respond(err.body(), err.status)


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SimError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SimError(400, "malformed_json", "request body must be a JSON object")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        raise SimError(
            422, "validation_failed", "the request body is invalid", errors=errors
        ) from None


async def parse_body(request: Request, model: type[M]) -> M:
    return validate(model, await read_json(request))


def set_ref(request: Request, ref: str) -> None:
    """Name the business entity this request touched, for the journal."""
    request.state.ref = ref


def resource(path: str, handlers: dict[str, Endpoint]) -> Route:
    """One route per path, dispatching on the method, so a 405's ``Allow`` names every method
    the path takes (routes split per method would each claim only their own)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers))


def last_segment(request: Request, name: str) -> str:
    """The path's last parameter (``/items/{sku:path}``) as its one segment, percent-decoded.

    A SKU may hold any character (``TS-100/XL``, ``BOLT #8``): a client sends it encoded
    (``/items/TS-100%2FXL``), as RFC 3986 and OpenAPI's path parameters ask. The server hands
    over the path already decoded, where ``%2F`` and a ``/`` look alike, so the segment is read
    from the raw path; one sent with a bare ``/`` (``/items/TS-100/XL``) names no resource, as
    on a vendor whose router splits the path first: ``404 not_found``."""
    value: str = request.path_params[name]
    raw = request.scope.get("raw_path")
    if not raw:
        return value  # a server that keeps no raw path: the decoded one is all there is
    segment = raw.split(b"?", 1)[0].rsplit(b"/", 1)[-1]
    if unquote(segment.decode("latin-1")) != value:
        raise SimError(404, "not_found", "no such route")
    return value
