"""Structured logs: one line per call with its fields, JSON or text, every library in the same format."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from sigma_grpc import logs
from sigma_grpc.auth.policy import Role
from sigma_grpc.config import ConfigError, Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from tests.auth_env import NAMES, Served, bearer, call_metadata, serving, write_tokens_file
from tests.execution_env import Starter
from tests.helpers import expect_error, signal, start_serve_process

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def guarded(database_url: str, clean_db: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Served]:
    settings = Settings(reconcile_interval_s=3600, auth_tokens_file=write_tokens_file(tmp_path))
    async with serving(database_url, settings) as served:
        yield served


def _call_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sigma_grpc.calls"]


async def test_every_call_writes_one_line_with_its_fields(
    guarded: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sigma_grpc.calls")
    writer = call_metadata(Role.WRITER)

    logged = await guarded.decisions.LogDecision(signal(request_id="log-line-1"), metadata=writer)
    await expect_error(
        guarded.decisions.GetDecision(pb.GetDecisionRequest(id=UNKNOWN_ID), metadata=writer),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        guarded.decisions.GetStats(pb.GetStatsRequest(), metadata=bearer("not-a-token")),
        grpc.StatusCode.UNAUTHENTICATED,
    )

    ok, missing, refused = (logs.extra_fields(r) for r in _call_lines(caplog))
    assert ok["grpc_method"] == "/sigma.v1.DecisionService/LogDecision"
    assert ok["grpc_code"] == "OK"
    assert ok["caller"] == NAMES[Role.WRITER]
    assert ok["request_id"] == "log-line-1"
    assert ok["decision_id"] == logged.decision.id
    assert ok["duration_ms"] > 0 and ok["peer"]
    assert (missing["grpc_code"], missing["decision_id"]) == ("NOT_FOUND", UNKNOWN_ID)
    assert refused["grpc_code"] == "UNAUTHENTICATED" and "caller" not in refused


def test_text_lines_end_with_their_fields() -> None:
    record = logging.LogRecord("sigma_grpc.calls", logging.INFO, __file__, 1, "%s OK", ("m",), None)
    record.grpc_code = "OK"
    record.request_id = "r-1"

    line = logs.TextFormatter().format(record)

    assert line.endswith("sigma_grpc.calls: m OK grpc_code=OK request_id=r-1")


def test_the_format_is_json_or_text_and_defaults_to_json_off_a_terminal() -> None:
    assert Settings.from_env({"SIGMA_LOG_FORMAT": "text"}).log_format == "text"
    assert Settings.from_env({}).log_format == "json"  # the tests' stderr is no terminal
    with pytest.raises(ConfigError, match="SIGMA_LOG_FORMAT must be json or text"):
        Settings.from_env({"SIGMA_LOG_FORMAT": "yaml"})


def test_serve_writes_json_lines_for_itself_the_web_server_and_each_call(database_url: str) -> None:
    process, port, lines = start_serve_process(
        {"SIGMA_DATABASE_URL": database_url, "SIGMA_LOG_FORMAT": "json", "SIGMA_RECONCILE_INTERVAL_S": "3600"}
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = channel.unary_unary(
                "/sigma.v1.DecisionService/GetStats",
                request_serializer=pb.GetStatsRequest.SerializeToString,
                response_deserializer=pb.GetStatsResponse.FromString,
            )
            stub(pb.GetStatsRequest(), timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=30)
    records = [json.loads(line) for line in lines if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records), lines
    loggers = {r["logger"] for r in records}
    assert {"sigma_grpc.serving", "sigma_grpc.calls"} <= loggers
    assert any(name.startswith("uvicorn") for name in loggers)
    assert not any("color_message" in r for r in records)  # uvicorn's copy with terminal colours
    call = next(r for r in records if r["logger"] == "sigma_grpc.calls")
    assert call["grpc_method"] == "/sigma.v1.DecisionService/GetStats" and call["grpc_code"] == "OK"


async def test_each_execution_step_writes_a_line_with_its_ids(
    start: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    env = await start(hl_private_key=None)
    await env.enable(dry_run=True)

    execution = await env.execute(await env.signal())

    steps = [
        logs.extra_fields(r)
        for r in caplog.records
        if r.name == "sigma_grpc.services.execution" and "step" in logs.extra_fields(r)
    ]
    assert steps, "no execution step was logged"
    assert steps[-1]["execution_id"] == execution.id
    assert steps[-1]["decision_id"] == execution.decision_id
    assert steps[-1]["execution_status"] == "simulated"
    calls = [logs.extra_fields(r) for r in _call_lines(caplog)]
    executed = next(c for c in calls if c["grpc_method"].endswith("/ExecuteSignal"))
    assert (executed["decision_id"], executed["execution_id"]) == (execution.decision_id, execution.id)
