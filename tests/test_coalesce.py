"""One send per answer (simulators.common.coalesce): joined within a loop turn, never lost."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.common.coalesce import CoalescingTransport
from tests.support import serving


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def wrapped() -> tuple[CoalescingTransport, FakeTransport]:
    real = FakeTransport()
    return CoalescingTransport(real), real  # type: ignore[arg-type]


async def test_writes_in_one_loop_turn_leave_in_one_send_in_order() -> None:
    transport, real = wrapped()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.write(b"body")
    assert real.sent == []
    await asyncio.sleep(0)
    assert real.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert real.sent[1:] == [b"next"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the real one's


async def test_close_and_abort_send_what_is_kept_first() -> None:
    transport, real = wrapped()
    transport.write(b"413 answer")
    transport.close()
    assert (real.sent, real.closed) == ([b"413 answer"], True)
    await asyncio.sleep(0)
    assert real.sent == [b"413 answer"]  # not twice

    transport, real = wrapped()
    transport.write(b"201 answer")  # then a down outage resets the connection
    transport.abort()
    await asyncio.sleep(0)
    assert (real.sent, real.aborted) == ([b"201 answer"], True)


async def test_a_connection_lost_meanwhile_takes_nothing() -> None:
    transport, real = wrapped()
    transport.write(b"answer")
    real.closed = True  # the client went away before the loop's turn ended
    await asyncio.sleep(0)
    assert real.sent == []


async def test_answers_through_uvicorn_arrive_whole_on_kept_alive_connections() -> None:
    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(body * 1000, 201, media_type="application/octet-stream")

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    async with (
        serving(app) as base,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) as session,
    ):

        async def post(i: int) -> tuple[int, bytes]:
            async with session.post(f"{base}/echo", data=b"%d," % i) as answer:
                return answer.status, await answer.read()

        answers = await asyncio.gather(*(post(i) for i in range(50)))
    assert answers == [(201, b"%d," % i * 1000) for i in range(50)]
