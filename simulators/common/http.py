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
        _slashes_back(request.path_params)
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers))


# An encoded "/" inside one path segment (a SKU "SKU-00001/XL" sent as SKU-00001%2FXL, an ERP
# document number "SO/2026/0001" as SO%2F2026%2F0001) stands for this private-use character
# while the request is routed, so the segment stays one route parameter; ``resource`` gives the
# handler its "/" back.
SLASH_IN_SEGMENT = "\ue000"


def keep_encoded_slashes(scope: dict[str, Any]) -> None:
    """Route a path whose segments hold an encoded ``/`` segment by segment.

    uvicorn hands over the path already percent-decoded, where ``%2F`` and ``/`` look alike, so
    ``/items/SKU-00001%2FXL`` would be routed as ``/items/SKU-00001/XL``, one level deeper. A
    path with ``%2F`` in it is decoded again from the raw path, one segment at a time, each
    ``/`` inside a segment kept as ``SLASH_IN_SEGMENT``. A bare ``/`` stays a separator: as on
    a vendor whose router splits the path first, ``/items/SKU-00001/XL`` is no route (404)."""
    raw = scope.get("raw_path")
    if not raw or (b"%2F" not in raw and b"%2f" not in raw):
        return
    segments = raw.split(b"?", 1)[0].decode("latin-1").split("/")
    scope["path"] = "/".join(unquote(part).replace("/", SLASH_IN_SEGMENT) for part in segments)


def _slashes_back(params: dict[str, Any]) -> None:
    for name, value in params.items():
        if isinstance(value, str) and SLASH_IN_SEGMENT in value:
            params[name] = value.replace(SLASH_IN_SEGMENT, "/")
