"""A running service wired to the fake exchange: the fixtures of the execution tests.

`fake` is a FakeHyperliquid, `start(**settings)` starts a server against it (keyword arguments
override Settings fields), `env` is the main account (10,000 USD) signing for itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import pytest
from eth_account import Account
from google.protobuf import field_mask_pb2

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import Secret, Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import execution_service_pb2_grpc as pb_grpc
from sigma_grpc.storage.pool import create_pool
from tests.fake_hyperliquid import FakeHyperliquid
from tests.helpers import Stub, gate
from tests.secret_scan import register_secret

if TYPE_CHECKING:
    ExecStub = pb_grpc.ExecutionServiceAsyncStub
else:
    ExecStub = pb_grpc.ExecutionServiceStub

# Test-only keys, never funded anywhere.
MAIN_KEY = register_secret("0x" + "4c" * 32)
AGENT_KEY = register_secret("0x" + "a7" * 32)
MAIN = Account.from_key(MAIN_KEY).address.lower()
AGENT = Account.from_key(AGENT_KEY).address.lower()
ETH_MID = Decimal("1903.95")  # the recorded allMids


def signal_request(symbol: str = "ETH", **fields: Any) -> dpb.LogDecisionRequest:
    """A LONG signal on `symbol` (6 traders, 80 % agreement); keyword arguments replace fields."""
    return dpb.LogDecisionRequest(
        symbol=symbol,
        direction=fields.pop("direction", dpb.DIRECTION_LONG),
        decision_type=dpb.DECISION_TYPE_SIGNAL,
        trader_count=6,
        agreement_pct=0.8,
        effective_k=3.0,
        gates=[gate("supermajority", True, 0.8, 0.7)],
        **fields,
    )


@dataclass
class Env:
    """A running service wired to the fake exchange."""

    fake: FakeHyperliquid
    decisions: Stub
    executions: ExecStub
    server: RunningServer
    db: asyncpg.Pool
    clock_offset: list[timedelta] = field(default_factory=lambda: [timedelta(0)])

    async def signal(self, symbol: str = "ETH", **fields: Any) -> str:
        return (await self.decisions.LogDecision(signal_request(symbol, **fields))).decision.id

    async def configure(self, actor: str | None = None, **values: Any) -> pb.ExecutionConfig:
        metadata = (("x-sigma-actor", actor),) if actor else None
        response = await self.executions.UpdateExecutionConfig(
            pb.UpdateExecutionConfigRequest(
                config=pb.ExecutionConfig(**values), update_mask=field_mask_pb2.FieldMask(paths=list(values))
            ),
            metadata=metadata,
        )
        return response.config

    async def enable(self, *, dry_run: bool = False, **values: Any) -> None:
        await self.configure(enabled=True, hl_enabled=True, dry_run=dry_run, **values)

    async def execute(self, decision_id: str, timeout: float = 20) -> pb.Execution:
        request = pb.ExecuteSignalRequest(decision_id=decision_id)
        return (await self.executions.ExecuteSignal(request, timeout=timeout)).execution

    async def get(self, execution_id: str) -> pb.Execution:
        return (await self.executions.GetExecution(pb.GetExecutionRequest(id=execution_id))).execution

    def exchange_calls(self) -> list[str | None]:
        return [r.type for r in self.fake.requests if r.path == "/exchange"]


Starter = Callable[..., Awaitable[Env]]


@pytest.fixture
def fake() -> Iterator[FakeHyperliquid]:
    with FakeHyperliquid() as running:
        yield running
        assert running.internal_errors == []


@pytest.fixture
async def start(database_url: str, clean_db: asyncpg.Pool, fake: FakeHyperliquid) -> AsyncIterator[Starter]:
    """Start the service against the fake; keyword arguments override Settings fields."""
    started: list[tuple[RunningServer, asyncpg.Pool, grpc.aio.Channel]] = []

    async def starter(**overrides: Any) -> Env:
        settings = Settings(
            hl_base_url=fake.base_url,
            hl_private_key=Secret(MAIN_KEY),
            hl_timeout_s=1,
            order_expiry_s=30,
            reconcile_interval_s=3600,
        )
        settings = replace(settings, **overrides)
        offset = [timedelta(0)]
        pool = await create_pool(database_url, max_size=10)
        server = await start_server(
            pool, "127.0.0.1:0", settings, clock=lambda: datetime.now(UTC) + offset[0]
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        started.append((server, pool, channel))
        return Env(
            fake=fake,
            decisions=decision_service_pb2_grpc.DecisionServiceStub(channel),
            executions=ExecStub(channel),
            server=server,
            db=clean_db,
            clock_offset=offset,
        )

    yield starter
    for server, pool, channel in started:
        await channel.close()
        await server.stop(grace=5)
        await pool.close()


@pytest.fixture
async def env(start: Starter, fake: FakeHyperliquid) -> Env:
    """The main account (10,000 USD) signing for itself, execution off as on a new database."""
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    return await start()
