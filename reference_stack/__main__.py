"""``python -m reference_stack``: serve the stack on 127.0.0.1:TWINYARD_STACK_PORT.

Exit codes: 0 after a requested stop (SIGTERM or SIGINT, once the graceful shutdown is done);
1 when a simulator could not be subscribed to; 2 when the stack cannot start as configured
(a variable missing or malformed, REFSTACK_DB unusable, the port taken, an argument given),
with one line on stderr saying which.

It takes no arguments: everything comes from the environment (reference_stack.config), so
the webhook secret is never on a command line, where ``ps`` shows it to every user.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
import sys
from types import FrameType

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from reference_stack.app import build_app
from reference_stack.config import Config, ConfigError
from reference_stack.stack import Stack
from simulators.common.coalesce import coalescing

HOST = "127.0.0.1"


def _stopped(signum: int, frame: FrameType | None) -> None:
    """uvicorn shuts down gracefully on SIGTERM or SIGINT, then raises the signal again so the
    default action can run; that action would end the process as killed. Stopping on request
    is a clean exit: 0."""
    raise SystemExit(0)


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(
            f"reference_stack: takes no arguments (got {len(args)}): it is configured by "
            "environment variables only; the webhook secret by TWINYARD_WEBHOOK_SECRET or a "
            "file named by TWINYARD_WEBHOOK_SECRET_FILE",
            file=sys.stderr,
        )
        return 2
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _stopped)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"reference_stack: {exc}", file=sys.stderr)
        return 2
    try:
        sock = _listen(config.port)
    except OSError as exc:
        print(
            f"reference_stack: cannot listen on {HOST}:{config.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    try:
        stack = Stack(config)
    except (OSError, sqlite3.Error) as exc:
        print(f"reference_stack: cannot open REFSTACK_DB: {exc}", file=sys.stderr)
        return 2

    failed: list[str] = []

    def on_fatal(message: str) -> None:
        failed.append(message)
        server.should_exit = True

    server = uvicorn.Server(
        uvicorn.Config(
            build_app(stack, on_fatal=on_fatal),
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # no proxy in front; its middleware ran on every request
            http=coalescing(AutoHTTPProtocol),  # an answer's head and body in one send
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    server.run(sockets=[sock])  # SIGTERM and SIGINT: a graceful shutdown, then _stopped
    return 1 if failed or not server.started else 0


if __name__ == "__main__":
    sys.exit(main())
