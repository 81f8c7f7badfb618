"""Prometheus metrics, served at `GET /metrics` on the HTTP port.

The gRPC server metrics carry the names, labels and buckets of grpc-ecosystem's
Go interceptors (go-grpc-prometheus, go-grpc-middleware's providers/prometheus),
so dashboards written for those work unchanged: `grpc_server_started_total`,
`grpc_server_handled_total` (with `grpc_code` in Go's spelling: `OK`,
`InvalidArgument`, `Canceled`...), `grpc_server_msg_received_total`,
`grpc_server_msg_sent_total` and the `grpc_server_handling_seconds` histogram
(without `grpc_code`, as theirs). No maintained interceptor supports grpc.aio,
hence `GrpcServerMetrics`; it is the outermost interceptor, so calls refused by
authentication (or the start-up gate) are counted too. The service's own metrics
are named `sigma_...`.

Each server has a registry of its own (`Metrics.registry`), not the process-wide
default, so several servers in one process (the tests) do not collide.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sigma_grpc.api import call_log

if TYPE_CHECKING:
    from sigma_grpc.storage.replica import ReplicaMonitor

    Handler = grpc.RpcMethodHandler[Any, Any]

# client_golang's prometheus.DefBuckets (prometheus_client's default has more).
GO_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# grpc-go's codes.Code.String(): CamelCase, and CANCELLED spelled the American way.
GO_CODE_NAMES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}

_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


def _version() -> str:
    try:
        return metadata.version("sigma-grpc")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """One server's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.grpc_started = Counter(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            _GRPC_LABELS,
            registry=r,
        )
        self.grpc_handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*_GRPC_LABELS, "grpc_code"),
            registry=r,
        )
        self.grpc_received = Counter(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            _GRPC_LABELS,
            registry=r,
        )
        self.grpc_sent = Counter(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            _GRPC_LABELS,
            registry=r,
        )
        self.grpc_handling = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by "
            "the server.",
            _GRPC_LABELS,
            buckets=GO_DEFAULT_BUCKETS,
            registry=r,
        )
        self.build_info = Gauge(
            "sigma_grpc_build_info", "Always 1; the running sigma-grpc's version.", ("version",), registry=r
        )
        self.build_info.labels(version=_version()).set(1)
        self.database_up = Gauge(
            "sigma_database_up",
            "1 while the database answers (the health monitor's view: health SERVING), 0 otherwise.",
            registry=r,
        )
        self.database_embedded = Gauge(
            "sigma_database_embedded",
            "1 when the database is the embedded PostgreSQL (no SIGMA_DATABASE_URL), 0 when external.",
            registry=r,
        )
        self.decisions_logged = Counter(
            "sigma_decisions_logged_total",
            "Decisions newly recorded (LogDecision, LogDecisions; replays not counted), by type and symbol.",
            ("decision_type", "symbol"),
            registry=r,
        )

        self.http_requests = Counter(
            "sigma_http_requests_total",
            "HTTP gateway requests by method, route template (`unmatched`: no route) and status code.",
            ("method", "route", "status"),
            registry=r,
        )
        self.http_duration = Histogram(
            "sigma_http_request_duration_seconds",
            "How long HTTP gateway requests took, by method and route template.",
            ("method", "route"),
            buckets=GO_DEFAULT_BUCKETS,
            registry=r,
        )

        self.pool_size = Gauge(
            "sigma_db_pool_connections",
            "Connections open in the pool (`pool`: primary or replica).",
            ("pool",),
            registry=r,
        )
        self.pool_in_use = Gauge(
            "sigma_db_pool_connections_in_use", "Connections lent out of the pool.", ("pool",), registry=r
        )
        self.pool_max = Gauge(
            "sigma_db_pool_max_connections", "The pool's maximum (SIGMA_DB_POOL_SIZE).", ("pool",), registry=r
        )
        self.pool_acquire_wait = Histogram(
            "sigma_db_pool_acquire_seconds",
            "How long each call waited for a connection of the primary's pool.",
            buckets=(0.0005, 0.001, 0.0025, *GO_DEFAULT_BUCKETS),
            registry=r,
        )
        self.replica_usable = Gauge(
            "sigma_db_replica_usable",
            "1 while DecisionService's reads go to the read replica (only with SIGMA_DATABASE_READ_URL).",
            registry=r,
        )
        self.replica_lag = Gauge(
            "sigma_db_replica_lag_seconds",
            "How far the read replica's data is behind the primary's (NaN while unknown).",
            registry=r,
        )

        self.executions = Counter(
            "sigma_executions_total",
            "Execution results recorded, by status (filled, simulated, rejected, failed, unknown...) and "
            "reason (empty when none).",
            ("status", "reason"),
            registry=r,
        )
        self.unsettled_executions = Gauge(
            "sigma_executions_unsettled",
            "Executions still unsettled (UNKNOWN, or PENDING past its time) after the last reconciler pass.",
            registry=r,
        )
        self.reconciler_last_pass = Gauge(
            "sigma_reconciler_last_pass_timestamp_seconds",
            "When the reconciler last completed a pass (Unix time); its lag is time() minus this.",
            registry=r,
        )

    def watch_pool(self, name: str, pool: asyncpg.Pool) -> None:
        """The pool's gauges, read at each scrape."""
        self.pool_size.labels(name).set_function(lambda: float(pool.get_size()))
        self.pool_in_use.labels(name).set_function(lambda: float(pool.get_size() - pool.get_idle_size()))
        self.pool_max.labels(name).set_function(lambda: float(pool.get_max_size()))

    def watch_replica(self, replica: ReplicaMonitor) -> None:
        """The replica's gauges, read at each scrape."""
        self.replica_usable.set_function(lambda: 1.0 if replica.usable else 0.0)
        self.replica_lag.set_function(lambda: math.nan if replica.lag_s is None else replica.lag_s)

    def watch_database(self, reachable: Callable[[], bool | None], *, embedded: bool) -> None:
        """`sigma_database_up` from now on follows `reachable()` (None, not known yet: 0)."""
        self.database_up.set_function(lambda: 1.0 if reachable() else 0.0)
        self.database_embedded.set(1 if embedded else 0)


def _split(method: str) -> tuple[str, str]:
    """`/sigma.v1.DecisionService/LogDecision` → (`sigma.v1.DecisionService`, `LogDecision`)."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service or "unknown", name or "unknown"


class _MethodSeries:
    """One method's series, looked up once: `labels()` costs a lookup under a lock on every call."""

    def __init__(self, metrics: Metrics, labels: tuple[str, ...]) -> None:
        self._metrics, self._labels = metrics, labels
        self.started = metrics.grpc_started.labels(*labels)
        self.received = metrics.grpc_received.labels(*labels)
        self.sent = metrics.grpc_sent.labels(*labels)
        self.handling = metrics.grpc_handling.labels(*labels)
        self._handled: dict[grpc.StatusCode, Counter] = {}

    def handled(self, code: grpc.StatusCode) -> Counter:
        series = self._handled.get(code)
        if series is None:
            name = GO_CODE_NAMES.get(code, "Unknown")
            series = self._handled[code] = self._metrics.grpc_handled.labels(*self._labels, name)
        return series


class GrpcServerMetrics(grpc.aio.ServerInterceptor):
    """Counts each unary call (started, handled by status code, messages), times it, and writes
    its log line (api/call_log.py): one interceptor, since each costs every call about 25 µs.

    The status is the one the client gets: OK, the code of `context.abort` (which
    raises) or of `context.set_code` (which does not), UNKNOWN for a handler that
    raised anything else (as grpc.aio answers it), CANCELLED when the call's task
    was cancelled (the client went away). Streaming methods (health's Watch,
    reflection) pass through uncounted.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self._series: dict[str, _MethodSeries] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner: Any = handler.unary_unary  # a coroutine function on an aio server
        method = handler_call_details.method
        series = self._series.get(method)
        if series is None:
            series = self._series[method] = _MethodSeries(self._m, ("unary", *_split(method)))

        async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            series.started.inc()
            series.received.inc()
            start = time.perf_counter()
            record = call_log.begin()
            code = grpc.StatusCode.UNKNOWN
            try:
                response = await inner(request, context)
                code = context.code() or grpc.StatusCode.OK
                return response
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            finally:
                seconds = time.perf_counter() - start
                series.handling.observe(seconds)
                series.handled(code).inc()
                if code is grpc.StatusCode.OK:
                    series.sent.inc()
                call_log.finish(record, method, code, seconds, context.peer())

        return grpc.unary_unary_rpc_method_handler(
            measured,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
