"""Execution's use cases: claim a signal in the database, check risk, then simulate or trade.

Idempotency lives in the database, not in this process: the decision is claimed
by inserting a PENDING execution (unique per decision) that is committed before
anything is signed, so two callers or two replicas never both reach the
exchange. An attempt runs in its own task, so a caller whose deadline passes
does not cut it short; the result is recorded either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sigma_grpc.decision_log import utc_now
from sigma_grpc.domain.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from sigma_grpc.domain.execution import (
    AccountState,
    Execution,
    ExecutionConfig,
    ExecutionReason,
    ExecutionStatus,
    OrderPlan,
    Position,
    Result,
    Side,
    apply_config_update,
    check_signal_age,
    cloid_for,
    limit_price,
    plan_order,
    settle_from_order_status,
    side_for,
)
from sigma_grpc.domain.models import Decision, DecisionType, Direction, PageCursor
from sigma_grpc.domain.pagination import decode_page_token, encode_page_token
from sigma_grpc.domain.validation import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, validate_uuid
from sigma_grpc.execution.hyperliquid import ExchangeCallFailed, Hyperliquid
from sigma_grpc.storage.decisions import DecisionStore
from sigma_grpc.storage.executions import ExecutionStore

log = logging.getLogger(__name__)

# How often a caller polls an execution another caller is running.
_POLL_S = 0.05
# Our clock and the exchange's may disagree a little about an order's expiry.
_EXPIRY_MARGIN = timedelta(seconds=5)


class Executor:
    def __init__(
        self,
        *,
        executions: ExecutionStore,
        decisions: DecisionStore,
        exchange: Hyperliquid,
        paper_equity: Decimal,
        order_expiry_s: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._executions = executions
        self._decisions = decisions
        self._exchange = exchange
        self._paper_equity = paper_equity
        self._order_expiry = timedelta(seconds=order_expiry_s)
        self._clock = clock
        self._attempts: set[asyncio.Task[Execution]] = set()

    # -- ExecuteSignal ---------------------------------------------------------------------------

    async def execute(self, decision_id: str, wait_until: float | None = None) -> Execution:
        """Execute a SIGNAL decision once; `wait_until` (monotonic) bounds waiting for another caller."""
        parsed = validate_uuid("decision_id", decision_id)
        decision = await self._decisions.get(parsed)
        if decision is None:
            raise NotFound(f"decision {parsed} not found", reason="DECISION_NOT_FOUND")
        if decision.decision_type is not DecisionType.SIGNAL or decision.direction is Direction.NONE:
            raise FailedPrecondition(
                f"decision {parsed} is a {decision.decision_type.value.upper()} "
                f"({decision.direction.value}); only LONG or SHORT signals can be executed",
                reason="NOT_EXECUTABLE",
            )
        existing = await self._executions.by_decision(parsed)
        if existing is not None:
            return await self._follow(existing, wait_until)
        config = await self._executions.config()
        if not config.active:
            raise FailedPrecondition(
                "execution is disabled: set both `enabled` and `hl_enabled` with UpdateExecutionConfig",
                reason="EXECUTION_DISABLED",
            )
        if not config.dry_run and self._exchange.signer is None:
            raise FailedPrecondition(
                "live execution needs a signer: set SIGMA_HL_PRIVATE_KEY or SIGMA_HL_PRIVATE_KEY_FILE "
                "(or turn dry_run back on)",
                reason="NO_SIGNER",
            )
        claim = await self._executions.claim(
            decision_id=parsed,
            symbol=decision.symbol,
            side=side_for(decision.direction),
            leverage=config.hl_max_leverage,
            cloid=cloid_for(parsed),
            network=self._exchange.network,
            account_address=self._exchange.account_address,
            dry_run=config.dry_run,
            order_expires_at=self._clock() + self._order_expiry,
        )
        if claim is None:
            existing = await self._executions.by_decision(parsed)
            assert existing is not None
            return await self._follow(existing, wait_until)
        attempt = asyncio.create_task(self._attempt(claim, decision, config))
        self._attempts.add(attempt)
        attempt.add_done_callback(self._attempts.discard)
        if wait_until is not None:
            # The attempt goes on past the caller's deadline; the caller gets it as it stands.
            done, _ = await asyncio.wait({attempt}, timeout=max(wait_until - time.monotonic(), 0.0))
            if not done:
                current = await self._executions.get(claim.id)
                assert current is not None
                return current
        return await asyncio.shield(attempt)

    async def _follow(self, execution: Execution, wait_until: float | None) -> Execution:
        """An existing execution: settle it if it needs it, or wait for the caller running it."""
        while True:
            if execution.status.settled:
                return execution
            if execution.status is ExecutionStatus.UNKNOWN or self._clock() > execution.order_expires_at:
                return await self._settle(execution)
            if wait_until is None or time.monotonic() + _POLL_S >= wait_until:
                return execution
            await asyncio.sleep(_POLL_S)
            current = await self._executions.get(execution.id)
            assert current is not None
            execution = current

    async def _attempt(self, claim: Execution, decision: Decision, config: ExecutionConfig) -> Execution:
        try:
            result = await self._run(claim, decision, config)
        except ExchangeCallFailed as error:
            # Reads fail before anything is signed: definitely nothing placed.
            result = Result(ExecutionStatus.FAILED, ExecutionReason.EXCHANGE_ERROR, str(error))
        except Exception:
            log.exception("execution %s of decision %s failed unexpectedly", claim.id, claim.decision_id)
            # Whether an order went out is not known here; reconciliation by cloid settles it.
            result = Result(ExecutionStatus.UNKNOWN, ExecutionReason.EXCHANGE_ERROR, "internal error")
        execution = await self._executions.record(claim.id, result)
        log.info(
            "execution %s of decision %s: %s %s",
            execution.id,
            execution.decision_id,
            execution.status.value,
            execution.reason.value if execution.reason else "",
        )
        return execution

    async def _account(self, claim: Execution) -> AccountState:
        if claim.account_address is not None:
            return await self._exchange.account_state(claim.account_address)
        # The paper account: its equity and the simulated positions still open.
        open_positions = await self._executions.open_paper_positions()
        mids = await self._exchange.mids() if open_positions else {}
        positions = []
        for symbol, side, size in open_positions:
            price = mids.get(symbol, Decimal(0))
            signed = size if side is Side.BUY else -size
            positions.append(Position(coin=symbol, size=signed, notional=abs(size * price)))
        return AccountState(self._paper_equity, tuple(positions))

    async def _run(self, claim: Execution, decision: Decision, config: ExecutionConfig) -> Result:
        stale = check_signal_age(decision, config, self._clock())
        if stale is not None:
            return stale
        asset = await self._exchange.asset(decision.symbol)
        mid = await self._exchange.mid(decision.symbol) if asset is not None else None
        account = await self._account(claim)
        plan = plan_order(decision, config, asset, mid, account)
        if isinstance(plan, Result):
            return plan
        assert asset is not None
        if config.dry_run:
            return Result(
                ExecutionStatus.SIMULATED,
                None,
                None,
                fill_price=plan.mid,
                fill_size=plan.size,
                **_context(plan),
            )
        price = limit_price(plan.mid, claim.side, config.hl_slippage_pct, asset.sz_decimals)
        # Record what is about to be sent before signing, in case this process dies mid-flight.
        await self._executions.record(
            claim.id, Result(ExecutionStatus.PENDING, limit_price=price, **_context(plan))
        )
        return await self._trade(claim, plan, price)

    async def _trade(self, claim: Execution, plan: OrderPlan, price: Decimal) -> Result:
        signer = self._exchange.signer
        assert signer is not None
        expires_ms = int(claim.order_expires_at.timestamp() * 1000)
        # Leave time for two exchange calls before the order's expiry.
        remaining = (claim.order_expires_at - self._clock()).total_seconds()
        deadline = time.monotonic() + max(remaining / 2, 0.0)
        try:
            async with self._executions.signing(signer.address, deadline) as next_nonce:
                if plan.set_leverage:
                    failure = await self._exchange.set_leverage(
                        claim.symbol, plan.leverage, await next_nonce(), expires_ms
                    )
                    if failure is not None:
                        return Result(ExecutionStatus.FAILED, ExecutionReason.LEVERAGE_FAILED, failure)
                return await self._exchange.place_ioc(
                    symbol=claim.symbol,
                    is_buy=claim.side is Side.BUY,
                    size=plan.size,
                    price=price,
                    cloid=claim.cloid,
                    nonce=await next_nonce(),
                    expires_after=expires_ms,
                )
        except TimeoutError:
            # Only the signer lock raises this: nothing was signed.
            return Result(
                ExecutionStatus.FAILED,
                ExecutionReason.EXCHANGE_ERROR,
                "the signer stayed busy with other orders until this order's expiry drew near",
            )

    # -- Reconciliation --------------------------------------------------------------------------

    async def _settle(self, execution: Execution) -> Execution:
        """Ask the exchange about an UNKNOWN (or abandoned PENDING) execution by its cloid."""
        now = self._clock()
        if execution.dry_run:
            if now <= execution.order_expires_at:
                return execution
            # An abandoned simulation: nothing was ever signed.
            result: Result | None = Result(
                ExecutionStatus.FAILED, ExecutionReason.NOT_PLACED, "the simulation was interrupted"
            )
        else:
            try:
                status, fills = await self._exchange.lookup_order(execution.cloid)
            except ExchangeCallFailed as error:
                log.warning("could not reconcile execution %s: %s", execution.id, error)
                return execution
            result = settle_from_order_status(
                status, fills, execution.size, now=now, expires_at=execution.order_expires_at + _EXPIRY_MARGIN
            )
        if result is None:
            return execution
        settled = await self._executions.record(execution.id, result)
        log.info("reconciled execution %s: %s", settled.id, settled.status.value)
        return settled

    async def reconcile_once(self) -> int:
        """Settle what can be settled now; returns how many executions changed."""
        changed = 0
        for execution in await self._executions.unsettled():
            settled = await self._settle(execution)
            changed += settled.status is not execution.status
        return changed

    async def run_reconciler(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reconcile_once()
            except Exception:
                log.exception("reconciliation pass failed")

    async def drain(self, timeout: float | None) -> None:
        """Wait up to `timeout` seconds for attempts in progress (at shutdown)."""
        if self._attempts:
            await asyncio.wait(set(self._attempts), timeout=timeout)

    # -- Reads and config -------------------------------------------------------------------------

    async def get(self, execution_id: str) -> Execution:
        parsed = validate_uuid("id", execution_id)
        execution = await self._executions.get(parsed)
        if execution is None:
            raise NotFound(f"execution {parsed} not found", reason="EXECUTION_NOT_FOUND")
        return await self._follow(execution, None)

    async def list(
        self, decision_id: str, status: ExecutionStatus | None, page_size: int, page_token: str
    ) -> tuple[list[Execution], str]:
        violations: list[FieldViolation] = []
        parsed = None
        if decision_id:
            try:
                parsed = validate_uuid("decision_id", decision_id)
            except InvalidArgument as error:
                violations += error.violations
        if page_size < 0:
            violations.append(FieldViolation("page_size", "must not be negative (0 means the default, 50)"))
        if violations:
            raise InvalidArgument(violations)
        filters = _Filters(str(parsed) if parsed else None, status.value if status else None)
        cursor = decode_page_token(page_token, filters) if page_token else None
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        executions, more = await self._executions.list_page(
            decision_id=parsed,
            status=status,
            page_size=size,
            after=(cursor.sort_time, cursor.id) if cursor else None,
        )
        if not more:
            return executions, ""
        last = executions[-1]
        return executions, encode_page_token(PageCursor(last.created_at, last.id), filters)

    async def config(self) -> ExecutionConfig:
        return await self._executions.config()

    async def update_config(
        self, values: Mapping[str, Any], paths: Sequence[str], actor: str | None
    ) -> ExecutionConfig:
        # Validate before locking anything, then apply to the locked row.
        apply_config_update(await self._executions.config(), values, paths)
        return await self._executions.update_config(
            lambda current: apply_config_update(current, values, paths), actor
        )


def _context(plan: OrderPlan) -> dict[str, Any]:
    return {
        "size": plan.size,
        "leverage": plan.leverage,
        "mid_price": plan.mid,
        "position_pct": plan.position_pct,
        "exposure_before": plan.exposure_before,
        "exposure_after": plan.exposure_after,
    }


@dataclass(frozen=True, slots=True)
class _Filters:
    """The filters of an execution list, fingerprinted into its page tokens."""

    decision_id: str | None
    status: str | None
