"""The lean sender (webhooks, the idle probe, the reference stack's vendor calls) against raw
sockets that answer as real receivers do, well and badly."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from simulators.common.sender import BODY_KEPT, ConnectTimeout, Sender, SendFailed

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
JSON = [("content-type", "application/json")]
UPGRADE = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n"


class RawReceiver:
    """Reads each request whole (head and Content-Length body) and answers from a script:
    bytes to write, or a callable that gets the writer and does what it likes."""

    def __init__(self, *answers: bytes | Callable[[asyncio.StreamWriter], object]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if callable(answer):
                    result = answer(writer)
                    if asyncio.iscoroutine(result):
                        await result
                    if writer.is_closing():
                        return
                else:
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@asynccontextmanager
async def receiving(receiver: RawReceiver) -> AsyncIterator[str]:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


@asynccontextmanager
async def sender(timeout_s: float = 5.0, idle_reuse_s: float = 4.0) -> AsyncIterator[Sender]:
    it = Sender(timeout_s=timeout_s, idle_reuse_s=idle_reuse_s)
    try:
        yield it
    finally:
        await it.close()


async def test_posts_reuse_one_kept_alive_connection():
    receiver = RawReceiver(OK, OK, OK)
    async with receiving(receiver) as url, sender() as send:
        for _ in range(3):
            assert await send.post(f"{url}/hooks/wms?v=2", b'{"id":"EV-1"}', JSON) == (200, b"{}")
    assert receiver.connections == 1
    head = receiver.requests[0]
    assert head.startswith(b"POST /hooks/wms?v=2 HTTP/1.1\r\n")
    port = url.rsplit(":", 1)[1]
    assert f"\r\nHost: 127.0.0.1:{port}\r\n".encode() in head
    assert b"\r\ncontent-type: application/json\r\n" in head
    assert head.endswith(b'Content-Length: 13\r\n\r\n{"id":"EV-1"}')


async def test_a_header_given_twice_is_sent_twice_and_url_credentials_as_basic_auth():
    receiver = RawReceiver(OK)
    async with receiving(receiver) as url, sender() as send:
        hooked = url.replace("http://", "http://ops:p%40ss@") + "/hook"
        pairs = [("x-signature", "good"), ("x-signature", "bad")]
        await send.post(hooked, b"{}", pairs)
    head = receiver.requests[0]
    assert b"x-signature: good\r\nx-signature: bad\r\n" in head
    assert b"Authorization: Basic " + base64.b64encode(b"ops:p@ss") in head


async def test_chunked_answers_are_read_whole_and_long_bodies_kept_in_part():
    chunked = b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    big = b"x" * (BODY_KEPT * 3)
    long = b"HTTP/1.1 400 Bad\r\ncontent-length: %d\r\n\r\n%s" % (len(big), big)
    receiver = RawReceiver(chunked, long, OK)
    async with receiving(receiver) as url, sender() as send:
        assert await send.post(url, b"{}", JSON) == (500, b"hello")
        status, body = await send.post(url, b"{}", JSON)
        assert (status, body) == (400, big[:BODY_KEPT])
        assert await send.post(url, b"{}", JSON) == (200, b"{}")  # the long body was drained
    assert receiver.connections == 1


async def test_an_answer_framed_by_the_connections_end_is_whole_when_it_closes():
    async def until_close(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 202 Accepted\r\n\r\nqueued")
        await writer.drain()
        writer.close()

    receiver = RawReceiver(until_close, OK)
    async with receiving(receiver) as url, sender() as send:
        assert await send.post(url, b"{}", JSON) == (202, b"queued")
        assert await send.post(url, b"{}", JSON) == (200, b"{}")  # on a new connection
    assert receiver.connections == 2


async def test_interim_answers_are_skipped_and_connection_close_is_honoured():
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
    receiver = RawReceiver(interim, OK)
    async with receiving(receiver) as url, sender() as send:
        assert await send.post(url, b"{}", JSON) == (204, b"")
        assert await send.post(url, b"{}", JSON) == (200, b"{}")
    assert receiver.connections == 2


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (lambda writer: writer.close(), "closed the connection unanswered"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not HTTP/1.1"),
        (UPGRADE, "switched"),
    ],
    ids=["hangs-up", "not-http", "upgrades"],
)
async def test_no_answer_is_a_send_failure_that_says_why(answer, said):
    receiver = RawReceiver(answer, OK)
    async with receiving(receiver) as url, sender() as send:
        with pytest.raises(SendFailed, match=said):
            await send.post(url, b"{}", JSON)
        assert await send.post(url, b"{}", JSON) == (200, b"{}")  # a fresh connection works
    assert receiver.connections == 2


async def test_a_refused_connection_names_where():
    async with receiving(RawReceiver()) as url:
        pass  # closed: nothing listens there now
    async with sender() as send:
        with pytest.raises(SendFailed, match=r"cannot connect to 127\.0\.0\.1:\d+"):
            await send.post(url, b"{}", JSON)


async def test_a_timeout_drops_the_connection_it_happened_on():
    async def never(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    receiver = RawReceiver(never, OK)
    async with receiving(receiver) as url, sender(timeout_s=0.2) as send:
        with pytest.raises(TimeoutError):
            await send.post(url, b"{}", JSON)
        assert await send.post(url, b"{}", JSON) == (200, b"{}")
    assert receiver.connections == 2


async def test_connections_idle_past_the_reuse_limit_are_not_reused():
    receiver = RawReceiver(OK, OK)
    async with receiving(receiver) as url, sender(idle_reuse_s=0.0) as send:
        await send.post(url, b"{}", JSON)
        await asyncio.sleep(0.01)
        await send.post(url, b"{}", JSON)
    assert receiver.connections == 2


async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent():
    receiver = RawReceiver(OK)
    async with receiving(receiver) as url, sender() as send:
        with pytest.raises(SendFailed, match="line break"):
            await send.post(url, b"{}", [("x-correlation-id", "a\r\nx-admin: yes")])
    assert receiver.connections == 0


async def test_urls_that_are_not_http_are_refused():
    async with sender() as send:
        for url in (
            "ftp://127.0.0.1/hook",
            "http:///hook",
            "http://127.0.0.1:99999/hook",
            "127.0.0.1:8080/hook",
            "http://127.0.0.1/a\r\nx-admin: yes",
        ):
            with pytest.raises(SendFailed):
                await send.post(url, b"{}", JSON)


async def test_the_request_line_takes_the_path_and_query_and_never_the_fragment():
    receiver = RawReceiver(OK, OK, OK)
    async with receiving(receiver) as url, sender() as send:
        await send.post(url, b"{}", JSON)
        await send.post(f"{url}?v=2#top", b"{}", JSON)
        await send.post(f"{url}/orders/SO%2F1/goods-issue?x=1#a", b"{}", JSON)
    lines = [request.split(b"\r\n", 1)[0] for request in receiver.requests]
    assert lines == [
        b"POST / HTTP/1.1",
        b"POST /?v=2 HTTP/1.1",
        b"POST /orders/SO%2F1/goods-issue?x=1 HTTP/1.1",
    ]


async def test_a_redirect_is_an_answer_not_followed():
    moved = b"HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n"
    receiver = RawReceiver(moved, OK)
    async with receiving(receiver) as url, sender() as send:
        assert await send.post(f"{url}/hook", b"{}", JSON) == (302, b"")
    assert [r.split(b" ", 2)[1] for r in receiver.requests] == [b"/hook"]


async def test_a_get_carries_no_body_and_keeps_as_much_of_the_answer_as_asked():
    big = b"y" * (BODY_KEPT * 2)
    receiver = RawReceiver(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(big), big))
    async with receiving(receiver) as url:
        probe = Sender(timeout_s=5.0, idle_reuse_s=4.0, user_agent="probe/1", body_kept=len(big))
        try:
            assert await probe.get(f"{url}/_idle?wait_ms=50") == (200, big)
        finally:
            await probe.close()
    head = receiver.requests[0]
    assert head.startswith(b"GET /_idle?wait_ms=50 HTTP/1.1\r\n")
    assert b"\r\nUser-Agent: probe/1\r\n" in head and head.endswith(b"\r\n\r\n")
    assert b"content-length" not in head.lower()


async def test_an_https_url_is_spoken_to_in_tls_and_a_failed_handshake_is_a_send_failure():
    heard: list[bytes] = []

    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heard.append(await reader.read(5))  # a TLS record header, not a request line
        writer.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
        writer.close()  # as uvicorn answers bytes that are not HTTP

    server = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with sender() as send:
            with pytest.raises(SendFailed, match=rf"cannot connect to 127\.0\.0\.1:{port}"):
                await send.post(f"https://127.0.0.1:{port}/hook", b"{}", JSON)
    finally:
        server.close()
    assert heard and heard[0][:1] == b"\x16"  # a handshake record: nothing went in the clear


# -- request(): any method, the answer's headers, the whole body (the reference stack's calls) ---
@asynccontextmanager
async def headed(timeout_s: float = 5.0) -> AsyncIterator[Sender]:
    it = Sender(
        timeout_s=timeout_s,
        idle_reuse_s=4.0,
        accept="application/json",
        body_kept=None,
        keep_headers=True,
        peer="the vendor",
    )
    try:
        yield it
    finally:
        await it.close()


async def test_request_sends_any_method_and_gives_headers_and_the_whole_body():
    big = b'"' + b"x" * (BODY_KEPT * 3) + b'"'
    throttled = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nretry-after: 9\r\n"
        b"Content-Type: text/plain; charset=latin-1\r\ncontent-length: 4\r\n\r\nslow"
    )
    whole = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(big), big)
    receiver = RawReceiver(throttled, whole, OK)
    async with receiving(receiver) as url, headed() as send:
        first = await send.request("PUT", f"{url}/items/A%2FB", b'{"v":1}', [("X-Key", "k")])
        second = await send.request("GET", f"{url}/items?sku=A")
        deleted = await send.request("DELETE", f"{url}/items/A%2FB")
    assert (first.status, first.body) == (429, b"slow")
    assert first.headers["retry-after"] == "7"  # the first of a repeated header, by lower name
    assert first.headers["content-type"] == "text/plain; charset=latin-1"
    assert (second.status, second.body) == (200, big)  # body_kept=None: nothing cut
    assert (deleted.status, deleted.body) == (200, b"{}")
    put, get, delete = receiver.requests
    assert put.startswith(b"PUT /items/A%2FB HTTP/1.1\r\n")
    assert b"\r\nAccept: application/json\r\n" in put and b"\r\nX-Key: k\r\n" in put
    assert put.endswith(b"Content-Length: 7\r\n\r\n" + b'{"v":1}')
    assert get.startswith(b"GET /items?sku=A HTTP/1.1\r\n") and b"Content-Length" not in get
    assert delete.startswith(b"DELETE /items/A%2FB HTTP/1.1\r\n")
    assert receiver.connections == 1


async def test_an_answer_cut_short_of_its_length_fails_where_one_framed_by_close_is_whole():
    async def cut_off(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 100\r\n\r\n" + b'{"id": ')
        await writer.drain()
        writer.close()

    async def chunk_cut_off(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel")
        await writer.drain()
        writer.close()

    async def until_close(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 201 Created\r\n\r\n" + b'{"id": 1}')
        await writer.drain()
        writer.close()

    for answer in (cut_off, chunk_cut_off):
        async with receiving(RawReceiver(answer)) as url, headed() as send:
            with pytest.raises(SendFailed, match=r"^the vendor closed the connection before"):
                await send.request("POST", url, b"{}")
    async with receiving(RawReceiver(until_close)) as url, headed() as send:
        assert (await send.request("POST", url, b"{}")).body == b'{"id": 1}'


async def test_a_timeout_says_whether_the_request_went_out():
    """ConnectTimeout: no connection within the timeout, nothing sent (a vendor whose accept
    queue is full drops the SYN). A plain TimeoutError: sent and not answered in time."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        queued = []
        for _ in range(4):  # fill the accept queue, never accepted
            waiting = socket.socket()
            waiting.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                waiting.connect(("127.0.0.1", port))
            queued.append(waiting)
        try:
            async with headed(timeout_s=0.3) as send:
                with pytest.raises(ConnectTimeout, match=f"no connection to 127.0.0.1:{port}"):
                    await send.request("POST", f"http://127.0.0.1:{port}/labels", b"{}")
        finally:
            for waiting in queued:
                waiting.close()

    async def never(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)

    receiver = RawReceiver(never)
    async with receiving(receiver) as url, headed(timeout_s=0.3) as send:
        with pytest.raises(TimeoutError) as raised:
            await send.request("POST", url, b"{}")
    assert not isinstance(raised.value, ConnectTimeout)
    assert len(receiver.requests) == 1  # it went out
