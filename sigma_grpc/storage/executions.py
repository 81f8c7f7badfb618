"""All SQL of execution: the config, the execution log and its history, signer nonces, locks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from sigma_grpc.domain.execution import (
    Execution,
    ExecutionConfig,
    ExecutionEvent,
    ExecutionReason,
    ExecutionStatus,
    Result,
    Side,
    config_changes,
)
from sigma_grpc.storage.pool import Connection, Database

_CONFIG_COLUMNS = """
    enabled, hl_enabled, dry_run, hl_max_leverage, hl_max_position_pct, hl_max_exposure_pct,
    hl_slippage_pct, max_signal_age_s, max_price_drift_pct, updated_at
"""
_COLUMNS = """
    id, decision_id, created_at, updated_at, symbol, side, size, leverage, cloid, order_expires_at,
    network, account_address, dry_run, status, reason, fill_price, fill_size, error_message,
    exchange_order_id, position_pct, exposure_before, exposure_after, mid_price, limit_price,
    requested_by
"""
_EVENT_COLUMNS = "recorded_at, from_status, to_status, reason, error_message, actor"
_RESULT_FIELDS = (
    "size",
    "leverage",
    "fill_price",
    "fill_size",
    "exchange_order_id",
    "position_pct",
    "exposure_before",
    "exposure_after",
    "mid_price",
    "limit_price",
)


def _config(row: asyncpg.Record) -> ExecutionConfig:
    return ExecutionConfig(**dict(row))


def _execution(row: asyncpg.Record) -> Execution:
    values = dict(row)
    values["side"] = Side(values["side"])
    values["status"] = ExecutionStatus(values["status"])
    values["reason"] = ExecutionReason(values["reason"]) if values["reason"] else None
    return Execution(**values)


def _event(row: asyncpg.Record) -> ExecutionEvent:
    return ExecutionEvent(
        recorded_at=row["recorded_at"],
        from_status=ExecutionStatus(row["from_status"]) if row["from_status"] else None,
        to_status=ExecutionStatus(row["to_status"]),
        reason=ExecutionReason(row["reason"]) if row["reason"] else None,
        error_message=row["error_message"],
        actor=row["actor"],
    )


def _json_value(value: Any) -> str:
    return json.dumps(str(value) if isinstance(value, Decimal) else value)


class Busy(Exception):
    """Another execution held the lock until the deadline."""


def lock_key(name: str) -> int:
    """The PostgreSQL advisory-lock key of a named lock (`account:0x…`, `signer:0x…`)."""
    digest = hashlib.sha256(f"sigma-grpc/lock/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ExecutionStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._local_locks: dict[str, asyncio.Lock] = {}

    async def config(self) -> ExecutionConfig:
        row = await self._db.fetchrow(f"SELECT {_CONFIG_COLUMNS} FROM execution_config WHERE id = 1")
        assert row is not None, "migration 061 inserts the config row"
        return _config(row)

    async def update_config(
        self, change: Callable[[ExecutionConfig], ExecutionConfig], actor: str, note: str | None = None
    ) -> ExecutionConfig:
        """Apply `change` to the config under a row lock and audit every changed field."""
        async with self._db.connection() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_CONFIG_COLUMNS} FROM execution_config WHERE id = 1 FOR UPDATE"
            )
            assert row is not None
            old = _config(row)
            new = change(old)
            changes = config_changes(old, new)
            if not changes:
                return old
            assignments = ", ".join(f"{name} = ${i}" for i, (name, _, _) in enumerate(changes, start=1))
            updated = await conn.fetchrow(
                f"UPDATE execution_config SET {assignments}, updated_at = NOW() WHERE id = 1 "
                f"RETURNING {_CONFIG_COLUMNS}",
                *(value for _, _, value in changes),
            )
            await conn.executemany(
                "INSERT INTO execution_config_audit (changed_by, note, field, old_value, new_value) "
                "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)",
                [
                    (actor, note, name, _json_value(before), _json_value(after))
                    for name, before, after in changes
                ],
            )
            assert updated is not None
            return _config(updated)

    async def claim(
        self,
        *,
        decision_id: uuid.UUID,
        symbol: str,
        side: Side,
        leverage: int,
        cloid: str,
        network: str,
        account_address: str | None,
        dry_run: bool,
        order_expires_at: datetime,
        requested_by: str,
        actor: str = "execute_signal",
    ) -> Execution | None:
        """Insert the PENDING execution that claims the decision for `requested_by`; None when
        another caller has it."""
        row = await self._db.fetchrow(
            f"""
            INSERT INTO execution_logs (decision_id, symbol, side, leverage, cloid, network,
                                        account_address, dry_run, order_expires_at, changed_by,
                                        requested_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            -- No conflict target: the cloid is derived from the decision id, so two racing
            -- claims can trip either unique index first, and both mean "already claimed".
            ON CONFLICT DO NOTHING
            RETURNING {_COLUMNS}
            """,
            decision_id,
            symbol,
            side.value,
            leverage,
            cloid,
            network,
            account_address,
            dry_run,
            order_expires_at,
            actor,
            requested_by[:200],
        )
        return None if row is None else _execution(row)

    async def record(self, execution_id: uuid.UUID, result: Result, actor: str) -> Execution:
        """Store a result on a PENDING or UNKNOWN execution; a settled one is never overwritten.

        `actor` (what made the change) goes into the execution's history with it.
        """
        values = [getattr(result, name) for name in _RESULT_FIELDS]
        sets = ", ".join(f"{name} = COALESCE(${i}, {name})" for i, name in enumerate(_RESULT_FIELDS, start=6))
        row = await self._db.fetchrow(
            f"""
            UPDATE execution_logs
            SET status = $2, reason = $3, error_message = $4, changed_by = $5, {sets}, updated_at = NOW()
            WHERE id = $1 AND status IN ('pending', 'unknown')
            RETURNING {_COLUMNS}
            """,
            execution_id,
            result.status.value,
            result.reason.value if result.reason else None,
            result.error_message,
            actor,
            *values,
        )
        if row is None:
            current = await self.get(execution_id)
            assert current is not None
            return current
        return _execution(row)

    async def get(self, execution_id: uuid.UUID) -> Execution | None:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM execution_logs WHERE id = $1", execution_id)
        return None if row is None else _execution(row)

    async def events(self, execution_id: uuid.UUID) -> list[ExecutionEvent]:
        """The execution's state changes, oldest first."""
        rows = await self._db.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM execution_events WHERE execution_id = $1 ORDER BY id",
            execution_id,
        )
        return [_event(r) for r in rows]

    async def by_decision(self, decision_id: uuid.UUID) -> Execution | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM execution_logs WHERE decision_id = $1", decision_id
        )
        return None if row is None else _execution(row)

    async def list_page(
        self,
        *,
        decision_ids: Sequence[uuid.UUID] | None,
        status: ExecutionStatus | None,
        page_size: int,
        after: tuple[datetime, uuid.UUID] | None,
    ) -> tuple[list[Execution], bool]:
        args: list[Any] = []
        where = []
        if decision_ids is not None:
            args.append(list(decision_ids))
            where.append(f"decision_id = ANY(${len(args)}::uuid[])")
        if status is not None:
            args.append(status.value)
            where.append(f"status = ${len(args)}")
        if after is not None:
            args += list(after)
            where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(page_size + 1)
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM execution_logs "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} "
            f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
            *args,
        )
        return [_execution(r) for r in rows[:page_size]], len(rows) > page_size

    async def unsettled(
        self, network: str, *, after: tuple[datetime, uuid.UUID] | None = None, limit: int = 100
    ) -> list[Execution]:
        """One page of what reconciliation on `network` can settle, in expiry order after `after`.

        UNKNOWN executions, and PENDING ones whose order has expired (their caller
        is gone): live ones of this network (any account: the exchange answers
        about any address), and simulations of any network.
        """
        args: list[Any] = [network, limit]
        cursor = ""
        if after is not None:
            args += list(after)
            cursor = "AND (order_expires_at, id) > ($3, $4)"
        rows = await self._db.fetch(
            f"""
            SELECT {_COLUMNS} FROM execution_logs
            WHERE (status = 'unknown' OR (status = 'pending' AND order_expires_at < NOW()))
              AND (dry_run OR (network = $1 AND account_address IS NOT NULL))
              {cursor}
            ORDER BY order_expires_at, id LIMIT $2
            """,
            *args,
        )
        return [_execution(r) for r in rows]

    async def open_paper_positions(self) -> list[tuple[str, Side, Decimal]]:
        """Simulated fills on the paper account whose signal has no outcome yet: (symbol, side, size)."""
        rows = await self._db.fetch(
            """
            SELECT e.symbol, e.side, e.fill_size
            FROM execution_logs e JOIN decision_logs d ON d.id = e.decision_id
            WHERE e.status = 'simulated' AND e.account_address IS NULL AND d.outcome_pnl IS NULL
            """
        )
        return [(r["symbol"], Side(r["side"]), r["fill_size"]) for r in rows]

    async def unsettled_notional(self, network: str, account_address: str, *, besides: uuid.UUID) -> Decimal:
        """Notional of this account's live orders on `network` that may be open positions by now.

        UNKNOWN executions, and PENDING ones with a limit price (an order being
        sent, perhaps by another replica), the execution `besides` aside.
        """
        value: Decimal = await self._db.fetchval(
            """
            SELECT COALESCE(sum(size * COALESCE(limit_price, mid_price, 0)), 0)
            FROM execution_logs
            WHERE (status = 'unknown' OR (status = 'pending' AND limit_price IS NOT NULL))
              AND NOT dry_run AND network = $1 AND account_address = $2 AND id <> $3
            """,
            network,
            account_address,
            besides,
        )
        return value

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str, deadline: float) -> AsyncIterator[Connection]:
        """Hold `key` exclusively across this process and every replica; wait no later than `deadline`.

        Waiters queue on an in-process lock first, so they hold no pooled
        connection while waiting; the advisory lock then covers other replicas.
        Yields the connection holding the lock, for work that belongs with it.
        """
        local = self._local_locks.setdefault(key, asyncio.Lock())
        remaining = deadline - time.monotonic()
        try:
            await asyncio.wait_for(local.acquire(), timeout=max(remaining, 0.001))
        except TimeoutError:
            raise Busy(f"{key} stayed busy") from None
        try:
            lock_id = lock_key(key)
            async with self._db.connection() as conn:
                conn.mark_session_state()
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_id):
                    if time.monotonic() > deadline:
                        raise Busy(f"{key} stayed busy on another replica")
                    await asyncio.sleep(0.02)
                try:
                    yield conn
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)
        finally:
            local.release()

    @contextlib.asynccontextmanager
    async def config_held(self, conn: Connection) -> AsyncIterator[ExecutionConfig]:
        """The config as it is now, kept from changing until the block ends.

        A share lock on the row, in a transaction on `conn`: UpdateExecutionConfig
        (FOR UPDATE) waits for the block, so a change that has returned can no
        longer be overtaken by an order checked against the settings before it.
        """
        async with conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_CONFIG_COLUMNS} FROM execution_config WHERE id = 1 FOR SHARE"
            )
            assert row is not None, "migration 061 inserts the config row"
            yield _config(row)

    async def next_nonce(self, signer: str) -> int:
        """The signer's next nonce: max(now in ms, last + 1), atomically, shared by every replica."""
        nonce: int = await self._db.fetchval(
            """
            INSERT INTO signer_nonces (signer, last_nonce) VALUES ($1, $2)
            ON CONFLICT (signer) DO UPDATE
            SET last_nonce = GREATEST(EXCLUDED.last_nonce, signer_nonces.last_nonce + 1)
            RETURNING last_nonce
            """,
            signer,
            int(time.time() * 1000),
        )
        return nonce
