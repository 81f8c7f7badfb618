"""Helpers shared by the tests: request builders and decoders of rich error details."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as pb_grpc
from tests.secret_scan import watch_output

# The async stub type exists only in the generated .pyi; at run time the one
# stub class serves both kinds of channel.
if TYPE_CHECKING:
    Stub = pb_grpc.DecisionServiceAsyncStub
else:
    Stub = pb_grpc.DecisionServiceStub

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def start_serve_process(env: Mapping[str, str], *args: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    """`python -m sigma_grpc serve [args]` on free ports with these settings; its port and log lines."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sigma_grpc", "serve", *args],
        cwd=ROOT,
        env={
            **os.environ,
            "SIGMA_GRPC_ADDR": "127.0.0.1:0",
            "SIGMA_HTTP_ADDR": "127.0.0.1:0",
            "SIGMA_SHUTDOWN_GRACE_S": "5",
            # Lines as a person reads them, which several tests match (tests/test_logs.py covers JSON).
            "SIGMA_LOG_FORMAT": "text",
            **env,
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = watch_output([])
    port: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if match:
                port.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60) or not port:
        process.kill()
        raise AssertionError("serve did not start:\n" + "".join(lines))
    return process, port[0], lines


def http_port_of(lines: list[str], timeout: float = 30) -> int:
    """The HTTP gateway's port, from a serve (or gateway) process's log as it comes in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            match = re.search(r"HTTP/JSON gateway on https?://127\.0\.0\.1:(\d+)", line)
            if match:
                return int(match.group(1))
        time.sleep(0.05)
    raise AssertionError("no HTTP gateway in the log:\n" + "".join(lines))


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


async def log_id(api: Stub, request: pb.LogDecisionRequest) -> str:
    """Log a decision; its id."""
    return (await api.LogDecision(request)).decision.id


async def close_signal(api: Stub, decision_id: str, pnl: str, r_multiple: float, closed_at: datetime) -> None:
    """Record a signal's outcome, closed at `closed_at`."""
    request = pb.RecordOutcomeRequest(decision_id=decision_id, outcome_pnl=pnl, outcome_r_multiple=r_multiple)
    request.outcome_closed_at.CopyFrom(ts(closed_at))
    await api.RecordOutcome(request)


def gate(name: str, passed: bool, value: float | None = None, threshold: float | None = None) -> pb.Gate:
    return pb.Gate(name=name, passed=passed, value=value, threshold=threshold)


def risk(name: str, passed: bool, value: float | None = None, limit: float | None = None) -> pb.RiskCheck:
    return pb.RiskCheck(name=name, passed=passed, value=value, limit=limit)


def signal(**overrides: Any) -> pb.LogDecisionRequest:
    """A valid SIGNAL request; keyword arguments replace its fields."""
    fields: dict[str, Any] = {
        "symbol": "BTC",
        "direction": pb.DIRECTION_LONG,
        "decision_type": pb.DECISION_TYPE_SIGNAL,
        "trader_count": 7,
        "agreement_pct": 0.8,
        "effective_k": 3.2,
        "price_at_decision": "97123.5",
        "gates": [gate("supermajority", True, 0.8, 0.7), gate("effective_k", True, 3.2, 2.0)],
    }
    fields.update(overrides)
    return pb.LogDecisionRequest(**fields)


def skip(**overrides: Any) -> pb.LogDecisionRequest:
    """A valid SKIP request (supermajority failed); keyword arguments replace its fields."""
    fields: dict[str, Any] = {
        "symbol": "ETH",
        "direction": pb.DIRECTION_SHORT,
        "decision_type": pb.DECISION_TYPE_SKIP,
        "trader_count": 5,
        "agreement_pct": 0.6,
        "effective_k": 2.5,
        "gates": [gate("supermajority", False, 0.6, 0.7), gate("effective_k", True, 2.5, 2.0)],
    }
    fields.update(overrides)
    return pb.LogDecisionRequest(**fields)


def risk_reject(**overrides: Any) -> pb.LogDecisionRequest:
    """A valid RISK_REJECT request; keyword arguments replace its fields."""
    fields: dict[str, Any] = {
        "symbol": "SOL",
        "direction": pb.DIRECTION_LONG,
        "decision_type": pb.DECISION_TYPE_RISK_REJECT,
        "trader_count": 6,
        "agreement_pct": 0.75,
        "effective_k": 3.0,
        "gates": [gate("supermajority", True, 0.75, 0.7)],
        "risk_checks": [risk("max_exposure", False, 0.12, 0.1), risk("daily_loss", True)],
    }
    fields.update(overrides)
    return pb.LogDecisionRequest(**fields)


def status_details(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            return status_pb2.Status.FromString(value)
    raise AssertionError(f"no rich status details in {error!r}")


def status_reason(status: status_pb2.Status) -> str:
    """The ErrorInfo reason of a google.rpc.Status."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "sigma.v1"
            return str(info.reason)
    raise AssertionError("no ErrorInfo detail")


def status_violations(status: status_pb2.Status) -> dict[str, str]:
    """The BadRequest's violations of a google.rpc.Status as {field: description}."""
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return {v.field: v.description for v in bad.field_violations}
    raise AssertionError("no BadRequest detail")


def error_reason(error: grpc.aio.AioRpcError) -> str:
    return status_reason(status_details(error))


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The BadRequest's violations as {field: description}."""
    return status_violations(status_details(error))


async def expect_error(call: Awaitable[T], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def invalid_fields(call: Awaitable[T], reason: str = "VALIDATION_FAILED") -> dict[str, str]:
    """Await a call expected to fail with INVALID_ARGUMENT for `reason`; return its field violations."""
    error = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT)
    assert error_reason(error) == reason
    return field_violations(error)
