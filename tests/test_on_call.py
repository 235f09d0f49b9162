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


def _counting_stack(listed: int, probe: dict) -> Starlette:
    async def listing(request) -> JSONResponse:
        return JSONResponse({"items": [{"id": str(i)} for i in range(listed)]})

    async def replay(request) -> JSONResponse:
        return JSONResponse({})

    async def idle(request) -> JSONResponse:
        return JSONResponse(probe)

    return Starlette(
        routes=[
            Route("/_stack/dead-letters", listing),
            Route("/_stack/dead-letters/{job_id}/replay", replay, methods=["POST"]),
            Route("/_stack/idle", idle),
        ]
    )


async def test_each_look_reads_the_probe_count_beside_the_listing():
    async with serving(_counting_stack(2, {"idle": True, "dead": 5})) as url:
        on_call = OnCall(url, "/_stack/dead-letters", "/_stack/idle")
        await on_call.replay_dead_letters("19:00")
        assert await on_call.leftover() is not None
    assert [(c.when, c.listed, c.reported) for c in on_call.counts] == [
        ("on-call at 19:00", 2, 5),
        ("the end of the day", 2, 5),
    ]


async def test_a_probe_without_a_dead_count_is_not_read_as_zero():
    for probe in ({"idle": True}, {"idle": True, "dead": "3"}, {"idle": True, "dead": True}):
        async with serving(_counting_stack(1, probe)) as url:
            on_call = OnCall(url, "/_stack/dead-letters", "/_stack/idle")
            await on_call.leftover()
        assert on_call.counts == [], probe
