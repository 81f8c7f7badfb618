"""The HTTP/JSON gateway: each route a gRPC call to the service, the dashboard's files, and the plan's routes.

Every request is forwarded as a gRPC call over a channel to the service (in the
same process, or a remote one with `sigma-grpc gateway --target`), so the same
validation, errors and authentication apply as for gRPC clients. The
`authorization` and `x-sigma-actor` headers travel as call metadata; under mutual
TLS, the built-in gateway relays its client's certificate names to its own server.

What a browser on another site could send without asking (a text/plain or form
body, a request to a rebound DNS name) is refused: bodies must be declared
`application/json`, and a gateway on loopback answers only to loopback host names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from sigma_grpc.api.authentication import GATEWAY_KEY, RELAYED_CERTIFICATE_NAME, RELAYED_CLIENT_ADDRESS
from sigma_grpc.gateway import errors
from sigma_grpc.gateway.routes import Route as RpcRoute
from sigma_grpc.gateway.routes import routes_of
from sigma_grpc.gateway.transcode import BadInput, build_request, to_json
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as epb
from sigma_grpc.metrics import Metrics

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The largest body accepted (a LogDecision at the contract's limits is about 20 kB).
MAX_BODY_BYTES = 4 * 1024 * 1024
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# How long a forwarded call may take (an ExecuteSignal waits for its order within it).
CALL_TIMEOUT_S = 30.0
FORWARDED_HEADERS = ("authorization", "x-sigma-actor")
# Where the server puts the subject alternative names of a verified client certificate (server.py).
CLIENT_CERTIFICATE_NAMES = "sigma.client_certificate_names"
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
    # RFC 6750: a 401 names the scheme that would be accepted.
    headers = {"WWW-Authenticate": 'Bearer realm="sigma"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


class _TooLarge(Exception):
    pass


class _NotJson(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    """The body, refusing one that is not declared JSON or is larger than MAX_BODY_BYTES (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    body = b"".join(chunks)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if body.strip() and media_type != "application/json":
        raise _NotJson
    return body


def _printable(value: str) -> bool:
    return all(" " <= c <= "~" for c in value)


def _metadata(request: Request, relay_key: str | None = None) -> tuple[tuple[str, str], ...]:
    """The forwarded headers as gRPC metadata; a value gRPC cannot carry is a BadInput naming it.

    With `relay_key` (the built-in gateway), the names of the client certificate the
    TLS handshake verified go along, proven by the key.
    """
    metadata = []
    for name in FORWARDED_HEADERS:
        value = request.headers.get(name)
        if value is None:
            continue
        if not _printable(value):
            raise BadInput(name, "must be printable ASCII")
        metadata.append((name, value))
    if relay_key is not None:
        metadata.append((GATEWAY_KEY, relay_key))
        if request.client is not None:
            address = f"{request.client.host}:{request.client.port}"
            if _printable(address):
                metadata.append((RELAYED_CLIENT_ADDRESS, address))
        names = request.scope.get(CLIENT_CERTIFICATE_NAMES, ())
        metadata.extend((RELAYED_CERTIFICATE_NAME, name) for name in names if _printable(name))
    return tuple(metadata)


class Gateway:
    """The routes of the sigma.v1 services over a gRPC channel to the service."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        static_dir: Path = STATIC_DIR,
        allowed_hosts: frozenset[str] | None = None,
        relay_key: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`allowed_hosts`: the host names requests may name (any port); None: any.

        `relay_key`: the key proving to this process's own gRPC server that the client
        certificate names relayed with a call come from this gateway.
        `metrics`: the server's metrics, served at `GET /metrics` (open, like health: counts,
        not decisions); the gateway's own requests are counted there too. None: no /metrics.
        """
        self._channel = channel
        self._metrics = metrics
        self._relay_key = relay_key
        self._static_dir = static_dir
        self._allowed_hosts = allowed_hosts
        self._routes = routes_of(
            dpb.DESCRIPTOR.services_by_name["DecisionService"],
            epb.DESCRIPTOR.services_by_name["ExecutionService"],
        )
        self._by_rpc = {route.rpc_path: route for route in self._routes}

    @property
    def routes(self) -> list[RpcRoute]:
        return list(self._routes)

    async def _call(self, route: RpcRoute, message: Message, request: Request) -> Message:
        metadata = _metadata(request, self._relay_key)
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
                body = await _read_body(request)
                message = build_request(route, request.path_params, request.query_params.multi_items(), body)
                return JSONResponse(to_json(await self._call(route, message, request)))
            except BadInput as bad:
                return _answer(errors.bad_request(bad.field, bad.description))
            except _TooLarge:
                return _answer(errors.too_large(MAX_BODY_BYTES))
            except _NotJson:
                return _answer(errors.not_json())
            except grpc.aio.AioRpcError as error:
                return _answer(errors.from_rpc_error(error))

        return endpoint

    async def _rpc(self, rpc_path: str, message: Message, request: Request) -> Message:
        return await self._call(self._by_rpc[rpc_path], message, request)

    async def _legacy_decisions(self, request: Request) -> Response:
        """The plan's `GET /dashboard/api/decisions?symbol=&type=&limit=&offset=`: items and stats.

        The stats are GetStats' for the symbol (not the type) over its default 7 days, as the
        plan's stats cards show them.
        """
        query = request.query_params
        try:
            _only(query.multi_items(), ("symbol", "type", "limit", "offset"))
            decision_type = _plan_type(query.get("type", ""))
            limit = _bounded(query.get("limit", ""), "limit", default=50, low=1, high=MAX_LEGACY_LIMIT)
            offset = _bounded(query.get("offset", ""), "offset", default=0, low=0, high=MAX_LEGACY_OFFSET)
        except BadInput as bad:
            return _answer(errors.bad_request(bad.field, bad.description))
        symbol = query.get("symbol", "")
        try:
            _metadata(request)
        except BadInput as bad:
            return _answer(errors.bad_request(bad.field, bad.description))
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
            _only(request.query_params.multi_items(), ("days",))
            days = _bounded(request.query_params.get("days", ""), "days", default=0, low=0, high=2**31 - 1)
            _metadata(request)
        except BadInput as bad:
            return _answer(errors.bad_request(bad.field, bad.description))
        try:
            stats = await self._rpc(
                "/sigma.v1.DecisionService/GetStats", dpb.GetStatsRequest(days=days or None), request
            )
        except grpc.aio.AioRpcError as error:
            return _answer(errors.from_rpc_error(error))
        return JSONResponse(to_json(stats))

    def app(self) -> ASGIApp:
        routes: list[BaseRoute] = [
            Route(r.template, self._endpoint(r), methods=[r.http_method]) for r in self._routes
        ]
        routes += [
            Route("/dashboard/api/decisions", self._legacy_decisions, methods=["GET"]),
            Route("/dashboard/api/decisions/stats", self._legacy_stats, methods=["GET"]),
            Route("/dashboard", _to_dashboard, methods=["GET"]),
            Mount("/dashboard", StaticFiles(directory=self._static_dir, html=True, check_dir=False)),
        ]
        if self._metrics is not None:
            routes.append(Route("/metrics", self._scrape, methods=["GET"]))
        app: ASGIApp = Starlette(
            routes=routes,
            exception_handlers={404: _not_found, 405: _not_allowed, 500: _failed},  # type: ignore[dict-item]
        )
        if self._metrics is not None:
            app = _CountRequests(app, routes, self._metrics)
        if self._allowed_hosts is None:
            return app
        return _HostCheck(app, self._allowed_hosts)

    async def _scrape(self, request: Request) -> Response:
        assert self._metrics is not None
        return Response(generate_latest(self._metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _template_of(route: BaseRoute) -> str:
    path = str(getattr(route, "path", ""))
    return f"{path}/*" if isinstance(route, Mount) else path


class _CountRequests:
    """Counts and times each HTTP request by method, route template (not the path: ids would make a
    series each) and status."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], metrics: Metrics) -> None:
        self._app = app
        self._routes = routes
        self._metrics = metrics

    def _template(self, scope: Scope) -> str:
        partial = None  # the path matches, the method does not (405)
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return _template_of(route)
            if match is Match.PARTIAL and partial is None:
                partial = _template_of(route)
        return partial or "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method, route = scope["method"], self._template(scope)
        status = 500  # unless the app answers
        start = time.perf_counter()

        async def sending(message: AsgiMessage) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            self._metrics.http_requests.labels(method, route, str(status)).inc()
            self._metrics.http_duration.labels(method, route).observe(time.perf_counter() - start)


async def _to_dashboard(request: Request) -> Response:
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/dashboard/{query}", status_code=308)


async def _not_found(request: Request, exc: HTTPException) -> Response:
    return _answer(errors.plain_error(grpc.StatusCode.NOT_FOUND, f"no route {request.url.path}"))


class _HostCheck:
    """Answers 403 to a request naming a host outside `allowed` (DNS rebinding: a page on evil.example
    resolving to 127.0.0.1 names evil.example); the port does not matter."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self._app = app
        self._allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "").lower()
            name = host if host.endswith("]") else host.rsplit(":", 1)[0]
            if name.strip("[]") not in self._allowed:
                _, body = errors.plain_error(
                    grpc.StatusCode.PERMISSION_DENIED, "this gateway answers only to loopback host names"
                )
                await JSONResponse(body, status_code=403)(scope, receive, send)
                return
        await self._app(scope, receive, send)


async def _failed(request: Request, exc: Exception) -> Response:
    # A bug of ours: logged with its traceback, answered as INTERNAL in the usual shape.
    log.error("gateway failed on %s %s", request.method, request.url.path, exc_info=exc)
    return _answer(
        errors.plain_error(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")
    )


async def _not_allowed(request: Request, exc: HTTPException) -> Response:
    # grpc-gateway answers 405 with code UNIMPLEMENTED.
    _, body = errors.plain_error(
        grpc.StatusCode.UNIMPLEMENTED, f"{request.method} is not allowed on {request.url.path}"
    )
    return JSONResponse(body, status_code=405)


def _only(items: list[tuple[str, str]], known: tuple[str, ...]) -> None:
    """The plan's routes take each of `known` at most once, and nothing else."""
    seen: set[str] = set()
    for name, _ in items:
        if name not in known:
            raise BadInput(name, f"is not a parameter of this route (it takes {', '.join(known)})")
        if name in seen:
            raise BadInput(name, "is given more than once")
        seen.add(name)


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
