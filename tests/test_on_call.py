"""The on-call replays the stack's dead letters and says what happened in the verdict."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.operator import OnCall
from tests.support import serving


def _stack(replay_status: dict[str, int]) -> tuple[Starlette, list[str]]:
    replayed: list[str] = []

    async def listing(request) -> JSONResponse:
        return JSONResponse({"items": [{"id": key} for key in replay_status]})

    async def replay(request) -> JSONResponse:
        job = request.path_params["job_id"]
        replayed.append(job)
        return JSONResponse({}, status_code=replay_status[job])

    routes = [
        Route("/_stack/dead-letters", listing),
        Route("/_stack/dead-letters/{job_id}/replay", replay, methods=["POST"]),
    ]
    return Starlette(routes=routes), replayed


async def test_every_dead_letter_is_replayed_and_refusals_are_counted():
    app, replayed = _stack({"7": 200, "9": 409})
    async with serving(app) as url:
        on_call = OnCall(url, "/_stack/dead-letters")
        await on_call.replay_dead_letters("19:00")
    assert replayed == ["7", "9"]
    assert on_call.notes == ["on-call at 19:00: replayed 1 of 2 dead letters (1 answered 409)"]


async def test_a_stack_without_dead_letters_route_is_noted_not_fatal():
    async with serving(Starlette()) as url:
        on_call = OnCall(url, "/_stack/dead-letters")
        await on_call.replay_dead_letters("19:00")
    assert on_call.notes == [
        "on-call at 19:00: cannot list dead letters (GET /_stack/dead-letters answered 404)"
    ]
