"""A simulator's routes served straight from a table, in front of Starlette.

Every business exchange of a played day passes through here: Starlette's two exception
middlewares, its router (a regular expression per route, tried in order) and its
``request_response`` wrapper were about 7% of the harness's CPU on the 10,000-order peak day
(issue 15), and add nothing a simulator uses. ``FastRoutes`` finds the route among those with
the same number of path segments, calls its endpoint and maps an exception to the same answer
Starlette's handlers give. What it does not serve as a full match (no route: 404; a method the
route does not take: 405 with ``Allow``; a path under a ``root_path``) goes to the Starlette app
it was given, so those answers stay Starlette's, byte for byte.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.convertors import StringConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request, Exception], Awaitable[Response]]


class FastRoutes:
    """``routes`` as Starlette would match them (the first full match, in order); the
    handlers of ``errors`` by exception class, ``Exception`` the last resort (its answer is
    sent and the exception raised again, as Starlette's ``ServerErrorMiddleware`` does, so
    the server logs it)."""

    def __init__(
        self, routes: list[BaseRoute], fallback: ASGIApp, errors: Mapping[Any, Handler]
    ) -> None:
        self.fallback = fallback
        self.errors = dict(errors)
        self._by_depth: dict[int, list[Route]] = defaultdict(list)
        self.enabled = all(_plain(route) for route in routes)
        if self.enabled:  # a route that may span segments could shadow one indexed later
            for route in routes:
                assert isinstance(route, Route)
                self._by_depth[route.path.count("/")].append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.enabled and scope["type"] == "http" and not scope.get("root_path"):
            path: str = scope["path"]
            for route in self._by_depth.get(path.count("/"), ()):
                match = route.path_regex.match(path)
                if match is None:
                    continue
                if route.methods and scope["method"] not in route.methods:
                    break  # 405 unless a later route takes it: Starlette decides
                params = match.groupdict()
                for name, value in params.items():
                    params[name] = route.param_convertors[name].convert(value)
                scope["path_params"] = params
                scope["endpoint"] = route.endpoint
                await self._serve(route, scope, receive, send)
                return
        await self.fallback(scope, receive, send)

    async def _serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            await (await handler(request, exc))(scope, receive, send)
            if handler is self.errors.get(Exception):
                raise
            return
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        for kind in type(exc).__mro__:
            if kind in self.errors:
                return self.errors[kind]
        return None


def _plain(route: BaseRoute) -> bool:
    """A route whose parameters are each one path segment (``{name}``, no convertor)."""
    return isinstance(route, Route) and all(
        type(c) is StringConvertor for c in route.param_convertors.values()
    )
