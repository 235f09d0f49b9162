"""The stack's port is chosen where no other run's ``bind(0)`` can take it first."""

from __future__ import annotations

import socket

from harness import stack


def test_a_stack_port_is_free_and_below_the_kernels_ephemeral_range():
    low = stack._ephemeral_low()
    ports = {stack.free_port() for _ in range(20)}
    if low - stack.FIXED_PORTS_FROM >= 1_000:  # Linux's default range leaves 20000-32767
        assert all(stack.FIXED_PORTS_FROM <= p < low for p in ports), ports
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))  # free to bind, as the stack will


def test_a_port_already_listened_on_is_never_chosen(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy, busy])
        monkeypatch.setattr(
            stack.random.SystemRandom, "randrange", lambda self, a, b: next(picks, a)
        )
        monkeypatch.setattr(stack, "_ephemeral_low", lambda: 40_000)
        monkeypatch.setattr(stack, "FIXED_PORTS_FROM", min(busy, 20_000))
        assert stack.free_port() != busy
