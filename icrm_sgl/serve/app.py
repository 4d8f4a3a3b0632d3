"""The HTTP API: /v1/judge, /get_reward (OpenRLHF), /health and /metrics on one batcher."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from icrm_sgl.judging.pair_judging import PairJudgement
from icrm_sgl.serve.batcher import Batcher, Item, QueueFull, Result, ShuttingDown, client_record
from icrm_sgl.serve.config import ServeConfig
from icrm_sgl.serve.judges import Judges
from icrm_sgl.serve.metrics import Metrics
from icrm_sgl.serve.payloads import Problem, RequestRejected, RewardRequest, load_json

log = logging.getLogger("uvicorn.error")  # printed with uvicorn's own lines

#: Failure kinds counted per example where they happen; the rest count once per request.
_COUNTED_WHERE_RAISED = ("input", "deadline", "disconnect")
#: Paths counted by name in /metrics; anything else (404 probes) counts as "other".
_PATHS = ("/v1/judge", "/get_reward", "/health", "/metrics")

#: A client may ask for a shorter deadline than the server's with this header (seconds).
DEADLINE_HEADER = "x-icrm-deadline"


class HTTPProblem(Exception):
    """An error answered as ``{"error": ..., **extra}`` with a status code and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.headers, self.extra = status, kind, headers, extra


class ClientGone(Exception):
    """The client disconnected while its examples were queued or judged."""


class State:
    """What the routes share: the judges, the batcher, the metrics and the settings."""

    def __init__(self, config: ServeConfig, judges: Judges) -> None:
        self.config = config
        self.judges = judges
        self.metrics = Metrics()
        runners = judges.runners(config.both_orders)
        self.batcher = Batcher(
            runners, config.gen, self.metrics, config.max_queue, config.max_batch
        )

    def close(self) -> None:
        """Stop the worker, then the engine; an engine still mid-batch when its grace is
        over is left to process exit, since freeing a model under a running decode would
        crash."""
        if self.batcher.close(join_timeout=self.batcher.engine_wait()):
            self.judges.close()
        else:
            log.warning("the engine is still judging; exiting without closing it")
            self.judges.leave_open()


def create_app(config: ServeConfig, open_judges: Callable[[], Judges]) -> FastAPI:
    """The FastAPI app; the engine starts in its lifespan and stops when it ends."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.icrm = State(config, await asyncio.to_thread(open_judges))
        try:
            yield
        finally:
            await asyncio.to_thread(app.state.icrm.close)

    app = FastAPI(title="icrm-sgl", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(_MetricsMiddleware)
    # Starlette types every handler as taking an Exception; this one gets HTTPProblem only.
    app.add_exception_handler(HTTPProblem, _problem_response)  # type: ignore[arg-type]
    _routes(app, config)
    return app


def _routes(app: FastAPI, config: ServeConfig) -> None:
    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        state: State = request.app.state.icrm
        body = {"status": "ok", **state.judges.describe(), **state.batcher.depth()}
        if not state.batcher.draining:
            return JSONResponse(body)
        draining = {**body, "status": "draining"}
        return JSONResponse(draining, status_code=503, headers=_unavailable(state))

    @app.get("/metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        state = _authorized(request, config)
        text = state.metrics.render(state.batcher.depth())
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.post("/v1/judge")
    async def judge(request: Request) -> Response:
        state = _authorized(request, config)
        body = await _read_body(request, config.max_body_bytes)
        parsed = _checked(state, lambda: state.judges.parse(load_json(body), config.both_orders))
        results = await _judge(request, state, parsed.rm_types, parsed.examples)
        records = [
            _record(state.judges, rm, client_record(result, cid))
            for rm, result, cid in zip(parsed.rm_types, results, parsed.ids, strict=True)
        ]
        return JSONResponse(records[0] if parsed.single else records)

    @app.post("/get_reward")
    async def get_reward(request: Request) -> Response:
        state = _authorized(request, config)
        body = await _read_body(request, config.max_body_bytes)
        name, examples = _checked(
            state,
            lambda: state.judges.reward_examples(
                _reward_request(load_json(body)), config.both_orders
            ),
        )
        results = await _judge(request, state, [name] * len(examples), examples)
        rewards = [state.judges.reward(name, result) for result in results]
        return JSONResponse(_rewards(results, rewards, config.failed_reward))


def _checked(state: State, parse: Callable[[], Any]) -> Any:
    """Run a payload check; its problems become a 422 naming each example and field."""
    try:
        return parse()
    except RequestRejected as exc:
        state.metrics.failure("input", max(1, len({p.example for p in exc.problems})))
        raise HTTPProblem(
            422, "invalid request", "input", problems=[p.as_dict() for p in exc.problems]
        ) from None


def _reward_request(data: Any) -> RewardRequest:
    try:
        return RewardRequest.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(
                _index(err["loc"]),
                ".".join(str(p) for p in err["loc"]) or None,
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}",
            )
            for err in exc.errors()
        ]
        raise RequestRejected(problems) from None


def _index(loc: tuple[Any, ...]) -> int | None:
    return loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None


def _record(judges: Judges, rm_type: str, result: Result) -> dict[str, Any]:
    """The example's record with its ``reward``; a pair in both orders: the record ``score
    --both-orders`` writes (its reward is ``result.expected_margin``)."""
    record = result.record()
    if isinstance(result, PairJudgement):
        return record
    reward = judges.reward(rm_type, result)
    if reward is not None:
        record["reward"] = reward
    return record


def _rewards(
    results: list[Result], rewards: list[float | None], failed: float | None
) -> dict[str, Any]:
    """OpenRLHF's answer: ``rewards`` (and ``scores``, the same numbers) per query."""
    failures = [(i, r.error) for i, r in enumerate(results) if not r.ok]
    if failures and failed is None:
        raise HTTPProblem(
            500,
            f"{len(failures)} of {len(results)} queries got no verdict",
            "no_reward",
            failures=[{"index": i, "error": e} for i, e in failures],
        )
    rewards = [failed if reward is None else reward for reward in rewards]
    logs = {"icrm_failed": [0.0 if r.ok else 1.0 for r in results]}
    return {"rewards": rewards, "scores": rewards, "extra_logs": logs}


# -- the queue round trip --------------------------------------------------------------


async def _judge(
    request: Request, state: State, rm_types: list[str], examples: list[dict[str, Any]]
) -> list[Result]:
    """Queue the examples and wait for all of them, the deadline, or the client to leave."""
    calls = sum(map(state.batcher.calls, rm_types))  # a pair in both orders counts two
    if calls > state.config.max_queue:
        counted = f" ({calls} engine calls)" if calls != len(examples) else ""
        message = f"{len(examples)} examples{counted}; the queue holds {state.config.max_queue}"
        raise HTTPProblem(413, message, "too_large")
    deadline = time.monotonic() + _deadline(request, state.config.deadline)
    try:
        items = state.batcher.submit(rm_types, examples, deadline)
    except QueueFull as exc:
        retry = str(state.batcher.retry_after())
        raise HTTPProblem(429, str(exc), "queue_full", {"Retry-After": retry}) from None
    except ShuttingDown as exc:
        raise HTTPProblem(503, str(exc), "shutdown", _unavailable(state)) from None
    waiters = [asyncio.wrap_future(item.future) for item in items]
    try:
        await _wait(request, state.batcher, items, waiters, deadline)
        return _outcomes(items, state)
    except ClientGone:
        state.metrics.failure("disconnect")
        raise HTTPProblem(499, "client closed the request", "disconnect") from None
    finally:
        for item, waiter in zip(items, waiters, strict=True):
            item.future.cancel()  # drops examples still queued; no-op for the others
            waiter.cancel()  # nobody reads a late result or error any more


async def _wait(
    request: Request,
    batcher: Batcher,
    items: list[Item],
    waiters: list[asyncio.Future[Any]],
    deadline: float,
) -> None:
    """Until every example is judged, the deadline passes, the drain gives up on some of
    them, or the client leaves."""
    pending = set(waiters)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or batcher.abandoned(items):
            return
        _, pending = await asyncio.wait(pending, timeout=min(0.5, remaining))
        if pending and await request.is_disconnected():
            raise ClientGone


def _outcomes(items: list[Item], state: State) -> list[Result]:
    """Each example's judgement; a deadline or a shutdown fails the whole request."""
    missing = [i for i, item in enumerate(items) if not _judged(item)]
    if not missing:
        return [item.future.result() for item in items]
    shut = [i for i in missing if isinstance(_error(items[i]), ShuttingDown)]
    if shut or state.batcher.drained():
        raise HTTPProblem(
            503,
            "the server shut down before judging every example",
            "shutdown",
            _unavailable(state),
            unfinished=missing,
        )
    state.metrics.failure("deadline", len(missing))
    raise HTTPProblem(
        504, "deadline passed before every example was judged", "deadline", unfinished=missing
    )


def _unavailable(state: State) -> dict[str, str]:
    """Headers of a draining server's 503: when to try again (the queue's estimate; a
    replacement may be listening by then), on a fresh connection."""
    return {"Retry-After": str(state.batcher.retry_after()), "Connection": "close"}


def _judged(item: Item) -> bool:
    return item.future.done() and not item.future.cancelled() and _error(item) is None


def _error(item: Item) -> BaseException | None:
    future = item.future
    return future.exception() if future.done() and not future.cancelled() else None


def _deadline(request: Request, ceiling: float) -> float:
    asked = request.headers.get(DEADLINE_HEADER)
    try:
        return min(ceiling, float(asked)) if asked else ceiling
    except ValueError:
        raise HTTPProblem(422, f"{DEADLINE_HEADER} must be a number of seconds", "input") from None


# -- limits and access -----------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPProblem(413, f"body over {limit} bytes", "too_large")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPProblem(413, f"body over {limit} bytes", "too_large")
            chunks.append(chunk)
    except ClientDisconnect:
        request.app.state.icrm.metrics.failure("disconnect")
        raise HTTPProblem(499, "client closed the request", "disconnect") from None
    return b"".join(chunks)


def _authorized(request: Request, config: ServeConfig) -> State:
    """The shared state, once the bearer key (when one is set) matches; never logged."""
    state: State = request.app.state.icrm
    if config.api_key is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = config.api_key.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
            raise HTTPProblem(
                401, "missing or wrong bearer key", "unauthorized", {"WWW-Authenticate": "Bearer"}
            )
    return state


async def _problem_response(request: Request, exc: HTTPProblem) -> Response:
    state: State | None = getattr(request.app.state, "icrm", None)
    if state is not None and exc.kind not in _COUNTED_WHERE_RAISED:
        state.metrics.failure(exc.kind)
    body = {"error": str(exc), **exc.extra}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


class _MetricsMiddleware:
    """Counts every response by endpoint and status, with its latency."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            state: State | None = getattr(scope["app"].state, "icrm", None)
            if state is not None:
                path = scope["path"] if scope["path"] in _PATHS else "other"
                state.metrics.request(path, status, time.perf_counter() - started)
