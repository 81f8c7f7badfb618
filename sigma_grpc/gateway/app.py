"""The HTTP/JSON gateway: each route a gRPC call to the service, the dashboard's files, and the plan's routes.

Every request is forwarded as a gRPC call over a channel to the service (in the
same process, or a remote one with `sigma-grpc gateway --target`), so the same
validation, errors and (later) authentication apply as for gRPC clients. The
`authorization` and `x-sigma-actor` headers travel as call metadata.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sigma_grpc.gateway import errors
from sigma_grpc.gateway.routes import Route as RpcRoute
from sigma_grpc.gateway.routes import routes_of
from sigma_grpc.gateway.transcode import BadInput, build_request, to_json
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as epb

STATIC_DIR = Path(__file__).resolve().parent / "static"
# How long a forwarded call may take (an ExecuteSignal waits for its order within it).
CALL_TIMEOUT_S = 30.0
FORWARDED_HEADERS = ("authorization", "x-sigma-actor")
# The plan's routes page with offsets; further than this, clients use page tokens.
MAX_LEGACY_OFFSET = 1000
MAX_LEGACY_LIMIT = 500
_PLAN_TYPES = {
    "signal": dpb.DECISION_TYPE_SIGNAL,
    "skip": dpb.DECISION_TYPE_SKIP,
    "risk_reject": dpb.DECISION_TYPE_RISK_REJECT,
}

Endpoint = Callable[[Request], Awaitable[Response]]


def _answer(status_and_body: tuple[int, dict[str, Any]]) -> JSONResponse:
    status, body = status_and_body
    return JSONResponse(body, status_code=status)


class Gateway:
    """The routes of the sigma.v1 services over a gRPC channel to the service."""

    def __init__(self, channel: grpc.aio.Channel, *, static_dir: Path = STATIC_DIR) -> None:
        self._channel = channel
        self._static_dir = static_dir
        self._routes = routes_of(
            dpb.DESCRIPTOR.services_by_name["DecisionService"],
            epb.DESCRIPTOR.services_by_name["ExecutionService"],
        )
        self._by_rpc = {route.rpc_path: route for route in self._routes}

    @property
    def routes(self) -> list[RpcRoute]:
        return list(self._routes)

    async def _call(self, route: RpcRoute, message: Message, request: Request) -> Message:
        metadata = tuple(
            (name, value) for name in FORWARDED_HEADERS if (value := request.headers.get(name)) is not None
        )
        call = self._channel.unary_unary(
            route.rpc_path,
            request_serializer=type(message).SerializeToString,
            response_deserializer=route.response_class.FromString,
        )
        response: Message = await call(message, timeout=CALL_TIMEOUT_S, metadata=metadata)
        return response

    def _endpoint(self, route: RpcRoute) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                message = build_request(
                    route, request.path_params, request.query_params.multi_items(), await request.body()
                )
            except BadInput as bad:
                return _answer(errors.bad_request(bad.field, bad.description))
            try:
                return JSONResponse(to_json(await self._call(route, message, request)))
            except grpc.aio.AioRpcError as error:
                return _answer(errors.from_rpc_error(error))

        return endpoint

    async def _rpc(self, rpc_path: str, message: Message, request: Request) -> Message:
        return await self._call(self._by_rpc[rpc_path], message, request)

    async def _legacy_decisions(self, request: Request) -> Response:
        """The plan's `GET /dashboard/api/decisions?symbol=&type=&limit=&offset=`: items and stats."""
        query = request.query_params
        try:
            decision_type = _plan_type(query.get("type", ""))
            limit = _bounded(query.get("limit", ""), "limit", default=50, low=1, high=MAX_LEGACY_LIMIT)
            offset = _bounded(query.get("offset", ""), "offset", default=0, low=0, high=MAX_LEGACY_OFFSET)
        except BadInput as bad:
            return _answer(errors.bad_request(bad.field, bad.description))
        symbol = query.get("symbol", "")
        try:
            items: list[dpb.Decision] = []
            token = ""
            while len(items) < offset + limit:
                wanted = min(offset + limit - len(items), MAX_LEGACY_LIMIT)
                page = await self._rpc(
                    "/sigma.v1.DecisionService/ListDecisions",
                    dpb.ListDecisionsRequest(
                        symbol=symbol, decision_type=decision_type, page_size=wanted, page_token=token
                    ),
                    request,
                )
                assert isinstance(page, dpb.ListDecisionsResponse)
                items.extend(page.decisions)
                token = page.next_page_token
                if not token:
                    break
            stats = await self._rpc(
                "/sigma.v1.DecisionService/GetStats", dpb.GetStatsRequest(symbol=symbol or None), request
            )
        except grpc.aio.AioRpcError as error:
            return _answer(errors.from_rpc_error(error))
        return JSONResponse(
            {"items": [to_json(d) for d in items[offset : offset + limit]], "stats": to_json(stats)}
        )

    async def _legacy_stats(self, request: Request) -> Response:
        """The plan's `GET /dashboard/api/decisions/stats?days=`: the GetStats response."""
        try:
            days = _bounded(request.query_params.get("days", ""), "days", default=0, low=0, high=2**31 - 1)
        except BadInput as bad:
            return _answer(errors.bad_request(bad.field, bad.description))
        try:
            stats = await self._rpc(
                "/sigma.v1.DecisionService/GetStats", dpb.GetStatsRequest(days=days or None), request
            )
        except grpc.aio.AioRpcError as error:
            return _answer(errors.from_rpc_error(error))
        return JSONResponse(to_json(stats))

    def app(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route(r.template, self._endpoint(r), methods=[r.http_method]) for r in self._routes
        ]
        routes += [
            Route("/dashboard/api/decisions", self._legacy_decisions, methods=["GET"]),
            Route("/dashboard/api/decisions/stats", self._legacy_stats, methods=["GET"]),
            Route("/dashboard", _to_dashboard, methods=["GET"]),
            Mount("/dashboard", StaticFiles(directory=self._static_dir, html=True, check_dir=False)),
        ]
        return Starlette(
            routes=routes,
            exception_handlers={404: _not_found, 405: _not_allowed},  # type: ignore[dict-item]
        )


async def _to_dashboard(request: Request) -> Response:
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/dashboard/{query}", status_code=308)


async def _not_found(request: Request, exc: HTTPException) -> Response:
    return _answer(errors.plain_error(grpc.StatusCode.NOT_FOUND, f"no route {request.url.path}"))


async def _not_allowed(request: Request, exc: HTTPException) -> Response:
    # grpc-gateway answers 405 with code UNIMPLEMENTED.
    _, body = errors.plain_error(
        grpc.StatusCode.UNIMPLEMENTED, f"{request.method} is not allowed on {request.url.path}"
    )
    return JSONResponse(body, status_code=405)


def _plan_type(word: str) -> dpb.DecisionType.ValueType:
    if not word:
        return dpb.DECISION_TYPE_UNSPECIFIED
    if word not in _PLAN_TYPES:
        raise BadInput("type", f"must be one of {', '.join(_PLAN_TYPES)}, got {word!r}")
    return _PLAN_TYPES[word]


def _bounded(text: str, name: str, *, default: int, low: int, high: int) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadInput(name, f"must be an integer, got {text!r}") from None
    if not low <= value <= high:
        beyond = " (page further with GET /v1/decisions and its page tokens)" if name == "offset" else ""
        raise BadInput(name, f"must be between {low} and {high}{beyond}")
    return value
