"""The harness's load feed: what the Locust process reads from the harness, over HTTP.

Locust runs under gevent in a process of its own and cannot take events from the harness's
event loop, so it asks (``loadtests/peak_season.py`` polls from a background greenlet):

- ``GET /plan``: the load plan (curve, multiplier, factor, catalogue; the clock once it runs);
- ``POST /start``: Locust is about to send its first order: the clock starts; the plan;
- ``POST /arrivals-over``: Locust's window is over: no more orders will come;
- ``GET /flows?after=N``: flows ended since record N, each ``[row, wall ms, ok, order]``; at
  the day's end ``done`` and the ``judgement`` (thresholds missed, flows never completed).

Loopback only; no token (it changes nothing a user cares about but when the day starts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.load.curve import Plan
from harness.load.flows import FlowWatch

PAGE = 5_000  # records per answer


@dataclass
class FeedState:
    """What the feed serves, and the harness's hooks for Locust's two signals."""

    plan: Plan
    watch: FlowWatch
    on_start: Callable[[], Plan]  # starts the clock, returns the anchored plan
    on_arrivals_over: Callable[[], None]
    done: bool = False
    judgement: dict[str, Any] = field(default_factory=dict)
    started: bool = False
    arrivals_over: bool = False
    polls: int = 0  # GET /flows seen: a Locust that never polls never got going


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def app(state: FeedState) -> Starlette:
    async def plan(request: Request) -> Response:
        return _json(state.plan.to_dict())

    async def start(request: Request) -> Response:
        if not state.started:
            state.plan = state.on_start()
            state.started = True
        return _json(state.plan.to_dict())

    async def arrivals_over(request: Request) -> Response:
        if not state.arrivals_over:
            state.arrivals_over = True
            state.on_arrivals_over()
        return _json({"arrivals_over": True})

    async def flows(request: Request) -> Response:
        state.polls += 1
        try:
            after = max(0, int(request.query_params.get("after", "0")))
        except ValueError:
            return _json({"error": "after must be a whole number"}, 400)
        records = state.watch.records[after : after + PAGE]
        upto = after + len(records)
        finished = state.done and upto >= len(state.watch.records)
        return _json(
            {
                "records": [r.to_list() for r in records],
                "next": upto,
                "done": finished,
                "judgement": state.judgement if finished else None,
            }
        )

    return Starlette(
        routes=[
            Route("/plan", plan, methods=["GET"]),
            Route("/start", start, methods=["POST"]),
            Route("/arrivals-over", arrivals_over, methods=["POST"]),
            Route("/flows", flows, methods=["GET"]),
        ]
    )
