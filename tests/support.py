"""Test helpers: a real HTTP receiver on an ephemeral loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.hosting import bind, start_server


class Receiver:
    """Records every POST; answers with the statuses it is given, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.on_request: Callable[[], None] | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)


@contextlib.asynccontextmanager
async def serving(app) -> AsyncIterator[str]:
    sock = bind("127.0.0.1", 0)
    server = await start_server(app, sock)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await server.shutdown(sockets=[sock])
        sock.close()
