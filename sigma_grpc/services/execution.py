"""Execution's use cases: claim a signal in the database, check risk, then simulate or trade.

Idempotency lives in the database, not in this process: the decision is claimed
by inserting a PENDING execution (unique per decision) that is committed before
anything is signed, so two callers or two replicas never both reach the
exchange. An attempt runs in its own task, so a caller whose deadline passes
does not cut it short; the result is recorded either way.

Everything from the risk check to the recorded result runs under one lock per
account, across replicas: what the next execution's risk check sees includes
what the previous one did. The config and the signal's age are checked again
under that lock, right before signing, since the wait for it can be long.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sigma_grpc import deadline
from sigma_grpc.clock import Clock, utc_now
from sigma_grpc.domain.errors import DomainError, Reason
from sigma_grpc.domain.execution import (
    RESTING_IOC,
    AccountState,
    AssetInfo,
    Execution,
    ExecutionConfig,
    ExecutionEvent,
    ExecutionReason,
    ExecutionStatus,
    OrderPlan,
    Position,
    Result,
    Side,
    apply_config_update,
    check_signal_age,
    check_still_allowed,
    cloid_for,
    plan_order,
    settle_from_order_status,
    side_for,
)
from sigma_grpc.domain.models import Decision, DecisionType, Direction, PageCursor
from sigma_grpc.domain.pagination import decode_page_token, encode_page_token
from sigma_grpc.domain.validation import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    UnknownEnum,
    validate_execution_list,
    validate_uuid,
)
from sigma_grpc.exchange.hyperliquid import (
    AgentWithoutAccount,
    ExchangeCallFailed,
    Hyperliquid,
    SignerAccountMismatch,
    is_known_order,
)
from sigma_grpc.metrics import Metrics
from sigma_grpc.storage.decisions import DecisionStore
from sigma_grpc.storage.executions import Busy, ExecutionStore
from sigma_grpc.storage.pool import Connection

log = logging.getLogger(__name__)

# What made a change, in the execution's history.
_EXECUTE = "execute_signal"
_GET = "get_execution"
_RECONCILER = "reconciler"
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
        clock: Clock = utc_now,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._executions = executions
        self._decisions = decisions
        self._exchange = exchange
        self._paper_equity = paper_equity
        self._order_expiry = timedelta(seconds=order_expiry_s)
        self._clock = clock
        self._attempts: set[asyncio.Task[Execution]] = set()

    # -- ExecuteSignal ---------------------------------------------------------------------------

    async def execute(
        self, decision_id: str, wait_until: float | None, *, requested_by: str, dry_run_only: bool = False
    ) -> Execution:
        """Execute a SIGNAL decision once; `wait_until` (monotonic) bounds waiting for another caller.

        `requested_by` (the authenticated caller) is recorded with the execution this call claims.
        With `dry_run_only`, a live config is refused; the claim records dry run, and a claim
        never changes mode (`check_still_allowed`), so this call cannot place a real order.
        """
        parsed = validate_uuid("decision_id", decision_id)
        if wait_until is None:
            # No deadline: wait as long as the order could take to settle.
            wait_until = time.monotonic() + (self._order_expiry + _EXPIRY_MARGIN).total_seconds()
        decision = await self._decisions.get(parsed)
        if decision is None:
            raise DomainError(Reason.DECISION_NOT_FOUND, f"decision {parsed} not found")
        if decision.decision_type is not DecisionType.SIGNAL or decision.direction is Direction.NONE:
            raise DomainError(
                Reason.NOT_EXECUTABLE,
                f"decision {parsed} is a {decision.decision_type.value.upper()} "
                f"({decision.direction.value}); only LONG or SHORT signals can be executed",
            )
        existing = await self._executions.by_decision(parsed)
        if existing is not None:
            return await self._follow(existing, wait_until, _EXECUTE)
        config = await self._executions.config()
        if not config.active:
            raise DomainError(
                Reason.EXECUTION_DISABLED,
                "execution is disabled: set both `enabled` and `hl_enabled` with UpdateExecutionConfig",
            )
        if dry_run_only and not config.dry_run:
            raise DomainError(
                Reason.DRY_RUN_REQUIRED,
                "the call asked for dry run only (paper trading) but execution is live: "
                "nothing was executed; turn dry_run on with UpdateExecutionConfig",
            )
        if not config.dry_run and self._exchange.signer is None:
            raise DomainError(
                Reason.NO_SIGNER,
                "live execution needs a signer: set SIGMA_HL_PRIVATE_KEY or SIGMA_HL_PRIVATE_KEY_FILE "
                "(or turn dry_run back on)",
            )
        await self._verify_signer()
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
            requested_by=requested_by,
        )
        if claim is None:
            existing = await self._executions.by_decision(parsed)
            assert existing is not None
            return await self._follow(existing, wait_until, _EXECUTE)
        attempt = asyncio.create_task(self._attempt(claim, decision, config))
        self._attempts.add(attempt)
        attempt.add_done_callback(self._attempts.discard)
        # The attempt goes on past the caller's deadline; the caller gets it as it stands.
        done, _ = await asyncio.wait({attempt}, timeout=max(wait_until - time.monotonic(), 0.0))
        if not done:
            current = await self._executions.get(claim.id)
            assert current is not None
            return current
        return attempt.result()

    async def _verify_signer(self) -> None:
        try:
            await self._exchange.verify_signer()
        except AgentWithoutAccount as error:
            raise DomainError(Reason.AGENT_WITHOUT_ACCOUNT, str(error)) from None
        except SignerAccountMismatch as error:
            raise DomainError(Reason.SIGNER_ACCOUNT_MISMATCH, str(error)) from None
        except ExchangeCallFailed as error:
            raise DomainError(
                Reason.EXCHANGE_UNAVAILABLE, f"{error}; nothing was executed, retrying is safe"
            ) from None

    async def _follow(self, execution: Execution, wait_until: float | None, actor: str) -> Execution:
        """An existing execution: settle it if it needs it, or wait for the caller running it."""
        while True:
            if execution.status.settled:
                return execution
            if execution.status is ExecutionStatus.UNKNOWN or self._clock() > execution.order_expires_at:
                return await self._settle(execution, actor)
            if wait_until is None or time.monotonic() + _POLL_S >= wait_until:
                return execution
            await asyncio.sleep(_POLL_S)
            current = await self._executions.get(execution.id)
            assert current is not None
            execution = current

    async def _attempt(self, claim: Execution, decision: Decision, config: ExecutionConfig) -> Execution:
        # The attempt outlives the caller that started it: its database calls are not
        # bounded by that caller's deadline, and its result is recorded whatever happens.
        with deadline.unbounded():
            return await self._attempt_unbounded(claim, decision, config)

    async def _attempt_unbounded(
        self, claim: Execution, decision: Decision, config: ExecutionConfig
    ) -> Execution:
        try:
            execution = await self._run(claim, decision, config)
        except ExchangeCallFailed as error:
            # Reads fail before anything is signed: definitely nothing placed.
            result = Result(ExecutionStatus.FAILED, ExecutionReason.EXCHANGE_ERROR, str(error))
            execution = await self._record(claim.id, result, _EXECUTE)
        except Exception:
            log.exception("execution %s of decision %s failed unexpectedly", claim.id, claim.decision_id)
            # Whether an order went out is not known here; reconciliation by cloid settles it.
            result = Result(ExecutionStatus.UNKNOWN, ExecutionReason.EXCHANGE_ERROR, "internal error")
            execution = await self._record(claim.id, result, _EXECUTE)
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

    async def _run(self, claim: Execution, decision: Decision, config: ExecutionConfig) -> Execution:
        """Check, then simulate or trade; the result is recorded before the account is let go."""
        stale = check_signal_age(decision, config, self._clock())
        if stale is not None:
            return await self._record(claim.id, stale, _EXECUTE)
        asset = await self._exchange.asset(decision.symbol)
        if asset is None:
            unlisted = plan_order(decision, config, None, None, AccountState(Decimal(0), ()), side=claim.side)
            assert isinstance(unlisted, Result)
            return await self._record(claim.id, unlisted, _EXECUTE)
        try:
            async with self._executions.exclusive(
                f"account:{claim.account_address or 'paper'}", self._last_moment_to_sign(claim)
            ) as lock:
                result = await self._check_and_send(claim, decision, asset, lock)
                return await self._record(claim.id, result, _EXECUTE)
        except Busy as busy:
            result = Result(
                ExecutionStatus.FAILED,
                ExecutionReason.ACCOUNT_BUSY,
                f"{busy}: nothing was sent before the order's expiry drew near",
            )
            return await self._record(claim.id, result, _EXECUTE)

    async def _check_and_send(
        self, claim: Execution, decision: Decision, asset: AssetInfo, lock: Connection
    ) -> Result:
        """The risk check and the order, under the account's lock (`lock` is the connection holding it)."""
        config = await self._executions.config()
        refused = check_still_allowed(claim, config)
        if refused is not None:
            return refused
        mid = await self._exchange.mid(decision.symbol)
        account = await self._account(claim)
        unsettled = Decimal(0)
        if not config.dry_run and claim.account_address:
            unsettled = await self._executions.unsettled_notional(
                claim.network, claim.account_address, besides=claim.id
            )
        plan = plan_order(
            decision, config, asset, mid, account, side=claim.side, unsettled_notional=unsettled
        )
        if isinstance(plan, Result):
            return plan
        if not config.dry_run:
            # Record what is about to be sent before signing, in case this process dies mid-flight;
            # with its limit price it counts as exposure for every other replica.
            prepared = Result(ExecutionStatus.PENDING, limit_price=plan.limit_price, **_context(plan))
            await self._record(claim.id, prepared, _EXECUTE)
            known = await self._known_on_exchange(claim)
            if known is not None:
                return known
        # The settings as they are now, held until the order has its answer: a kill switch
        # thrown while this waited for the account stops it, and one thrown from here on
        # returns only after this order's answer (it waits for the share lock).
        async with self._executions.config_held(lock) as current:
            refused = check_still_allowed(claim, current) or check_signal_age(
                decision, current, self._clock()
            )
            if refused is not None:
                return refused
            if config.dry_run:
                return Result(
                    ExecutionStatus.SIMULATED, fill_price=plan.mid, fill_size=plan.size, **_context(plan)
                )
            if time.monotonic() > self._last_moment_to_sign(claim):
                return Result(
                    ExecutionStatus.FAILED,
                    ExecutionReason.TOO_LATE,
                    "too little time was left before the order's expiry to send it: nothing was signed",
                )
            return await self._trade(claim, plan)

    async def _known_on_exchange(self, claim: Execution) -> Result | None:
        """None when the exchange has never seen this cloid; else what its record of that order says.

        The claim makes a second order for a decision impossible through this
        service; this covers the rest (a row removed behind its back, a restored
        backup): a cloid the exchange knows is never signed again, and the
        execution takes on the order the exchange has (its size and price).
        """
        assert claim.account_address is not None
        status = await self._exchange.order_status(claim.account_address, claim.cloid)
        if not is_known_order(status):
            return None
        log.error("execution %s: the exchange already knows cloid %s; nothing signed", claim.id, claim.cloid)
        details = status["order"].get("order", {})
        size = Decimal(str(details["origSz"])) if "origSz" in details else None
        limit_price = Decimal(str(details["limitPx"])) if "limitPx" in details else None
        unsettled = Result(
            ExecutionStatus.UNKNOWN,
            ExecutionReason.ALREADY_ON_EXCHANGE,
            f"the exchange already knows an order with cloid {claim.cloid}: nothing was signed; "
            "reconciliation follows that order",
            size=size,
            limit_price=limit_price,
        )
        if size is None:
            return unsettled
        try:
            fills = await self._exchange.order_fills(claim.account_address, status, claim.cloid)
        except ExchangeCallFailed as error:
            log.warning("execution %s: fills of the known order not read: %s", claim.id, error)
            return unsettled
        now = self._clock()
        settled = settle_from_order_status(status, fills, size, now=now, expires_at=now)
        return replace(settled, size=size, limit_price=limit_price) if settled is not None else unsettled

    def _last_moment_to_sign(self, claim: Execution) -> float:
        """Monotonic time after which there is no longer room for two exchange calls before expiry."""
        room = (claim.order_expires_at - self._clock()).total_seconds()
        needed = 2 * self._exchange.call_budget_s + _EXPIRY_MARGIN.total_seconds()
        return time.monotonic() + room - needed

    async def _trade(self, claim: Execution, plan: OrderPlan) -> Result:
        signer = self._exchange.signer
        assert signer is not None
        expires_ms = int(claim.order_expires_at.timestamp() * 1000)
        if plan.set_leverage:
            failure = await self._exchange.set_leverage(
                claim.symbol,
                plan.leverage,
                cross=plan.cross,
                nonce=await self._executions.next_nonce(signer.address),
                expires_after=expires_ms,
            )
            if failure is not None:
                return Result(ExecutionStatus.FAILED, ExecutionReason.LEVERAGE_FAILED, failure)
        result = await self._exchange.place_ioc(
            symbol=claim.symbol,
            is_buy=claim.side is Side.BUY,
            size=plan.size,
            price=plan.limit_price,
            cloid=claim.cloid,
            nonce=await self._executions.next_nonce(signer.address),
            expires_after=expires_ms,
        )
        if result.error_message == RESTING_IOC:
            # An IOC must never rest: take it off the book; reconciliation settles what filled.
            try:
                answer = await self._exchange.cancel(
                    claim.symbol, claim.cloid, await self._executions.next_nonce(signer.address), expires_ms
                )
                log.warning("cancelled resting IOC %s: %s", claim.cloid, answer)
            except Exception as error:
                log.error("could not cancel resting IOC %s: %s", claim.cloid, type(error).__name__)
        return result

    # -- Reconciliation --------------------------------------------------------------------------

    async def _settle(self, execution: Execution, actor: str) -> Execution:
        """Ask the exchange about an UNKNOWN (or abandoned PENDING) execution by its cloid."""
        now = self._clock()
        if execution.dry_run:
            if now <= execution.order_expires_at + _EXPIRY_MARGIN:
                return execution
            # An abandoned simulation: nothing was ever signed.
            result: Result | None = Result(
                ExecutionStatus.FAILED, ExecutionReason.NOT_PLACED, "the simulation was interrupted"
            )
        else:
            if execution.network != self._exchange.network or not execution.account_address:
                log.warning(
                    "execution %s ran on %s for %s; this service is on %s: not reconciled here",
                    execution.id,
                    execution.network,
                    execution.account_address,
                    self._exchange.network,
                )
                return execution
            try:
                result = await self._settle_live(execution)
            except ExchangeCallFailed as error:
                log.warning("could not reconcile execution %s: %s", execution.id, error)
                return execution
        if result is None:
            return execution
        settled = await self._record(execution.id, result, actor)
        log.info("reconciled execution %s: %s", settled.id, settled.status.value)
        return settled

    async def _settle_live(self, execution: Execution) -> Result | None:
        """What the exchange's record of a live order says, or None while it cannot be known yet."""
        assert execution.account_address is not None
        status, fills = await self._exchange.lookup_order(execution.account_address, execution.cloid)
        expires_at = execution.order_expires_at + _EXPIRY_MARGIN
        if is_known_order(status):
            if status["order"].get("status") == "open":
                await self._cancel_resting(execution)
            return settle_from_order_status(
                status, fills, execution.size, now=self._clock(), expires_at=expires_at
            )
        if self._clock() <= expires_at:
            return None
        # Unknown to the exchange and expired by our clock: never placed only if the exchange's
        # clock agrees, since it is the exchange that applies expiresAfter to an order in transit.
        exchange_now = await self._exchange.exchange_time(execution.account_address)
        if exchange_now is None:
            return None
        return settle_from_order_status(
            status, fills, execution.size, now=exchange_now, expires_at=expires_at
        )

    async def _cancel_resting(self, execution: Execution) -> None:
        """An IOC must never rest: cancel it by cloid again, when this service signs for its account."""
        signer = self._exchange.signer
        if signer is None or signer.account_address != execution.account_address:
            log.error(
                "execution %s: its IOC rests on the book and this service cannot cancel it", execution.id
            )
            return
        expires_ms = int((self._clock() + self._order_expiry).timestamp() * 1000)
        try:
            answer = await self._exchange.cancel(
                execution.symbol,
                execution.cloid,
                await self._executions.next_nonce(signer.address),
                expires_ms,
            )
            log.warning("cancelled resting IOC %s again: %s", execution.cloid, answer)
        except Exception as error:
            log.error("could not cancel resting IOC %s: %s", execution.cloid, type(error).__name__)

    async def _record(self, execution_id: uuid.UUID, result: Result, actor: str) -> Execution:
        """Record a result; a result that arrives after the execution was settled otherwise is logged."""
        recorded = await self._executions.record(execution_id, result, actor)
        log.info(
            "execution %s: %s recorded by %s",
            execution_id,
            result.status.value,
            actor,
            extra={
                "execution_id": str(execution_id),
                "decision_id": str(recorded.decision_id),
                "execution_status": recorded.status.value,
                "result_status": result.status.value,
                "reason": result.reason.value if result.reason is not None else "",
                "step": actor,
            },
        )
        if (
            self._metrics is not None
            and recorded.status is result.status
            and result.status is not ExecutionStatus.PENDING
        ):
            reason = result.reason.value if result.reason is not None else ""
            self._metrics.executions.labels(result.status.value, reason).inc()
        if recorded.status is not result.status and recorded.status.settled:
            log.error(
                "execution %s: a %s result (%s) arrived after it was settled as %s; the record stands",
                execution_id,
                result.status.value,
                result.error_message or "",
                recorded.status.value,
            )
        return recorded

    async def reconcile_once(self) -> int:
        """Settle what can be settled now, page by page through every unsettled row; how many changed."""
        changed = unsettled = 0  # unsettled: rows still unsettled after this pass
        after: tuple[datetime, uuid.UUID] | None = None
        while page := await self._executions.unsettled(self._exchange.network, after=after):
            for execution in page:
                try:
                    settled = await self._settle(execution, _RECONCILER)
                except Exception:
                    # One bad row must not hold up the others.
                    log.exception("reconciling execution %s failed", execution.id)
                    unsettled += 1
                    continue
                changed += settled.status is not execution.status
                unsettled += not settled.status.settled
            after = (page[-1].order_expires_at, page[-1].id)
        if self._metrics is not None:
            self._metrics.unsettled_executions.set(unsettled)
            self._metrics.reconciler_last_pass.set(time.time())
        return changed

    async def run_reconciler(self, interval_s: float) -> None:
        database_down = False
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reconcile_once()
            except DomainError as error:
                if error.reason is not Reason.DATABASE_UNAVAILABLE:
                    log.exception("reconciliation pass failed")
                elif not database_down:  # once per outage: the health monitor reports it too
                    log.warning("reconciliation waits for the database: %s", error.message)
                database_down = error.reason is Reason.DATABASE_UNAVAILABLE
                continue
            except Exception:
                log.exception("reconciliation pass failed")
            database_down = False

    async def drain(self, timeout: float | None) -> None:
        """Wait up to `timeout` seconds for attempts in progress (at shutdown)."""
        if self._attempts:
            await asyncio.wait(set(self._attempts), timeout=timeout)

    # -- Reads and config -------------------------------------------------------------------------

    async def get(self, execution_id: str) -> tuple[Execution, list[ExecutionEvent]]:
        """One execution (reconciled first when it is unsettled) and its history."""
        parsed = validate_uuid("id", execution_id)
        execution = await self._executions.get(parsed)
        if execution is None:
            raise DomainError(Reason.EXECUTION_NOT_FOUND, f"execution {parsed} not found")
        execution = await self._follow(execution, None, _GET)
        return execution, await self._executions.events(parsed)

    async def list(
        self,
        decision_id: str,
        decision_ids: Sequence[str],
        status: ExecutionStatus | UnknownEnum | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[Execution], str]:
        parsed, known_status = validate_execution_list(decision_id, decision_ids, status, page_size)
        # One decision keeps version 1's fingerprint field, so tokens made before decision_ids still work.
        filters = _Filters(
            decision_id=str(parsed[0]) if parsed and len(parsed) == 1 else None,
            status=known_status.value if known_status else None,
            decision_ids=",".join(map(str, parsed)) if parsed and len(parsed) > 1 else None,
        )
        cursor = decode_page_token(page_token, filters) if page_token else None
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        executions, more = await self._executions.list_page(
            decision_ids=parsed,
            status=known_status,
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
        self, values: Mapping[str, Any], paths: Sequence[str], actor: str, note: str | None = None
    ) -> ExecutionConfig:
        """Apply the update, audited as made by `actor` (the authenticated caller), with their `note`."""
        # Validated against the locked row; an invalid update raises and rolls back.
        return await self._executions.update_config(
            lambda current: apply_config_update(current, values, paths), actor, note
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
    decision_ids: str | None = None
