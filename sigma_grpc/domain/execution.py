"""Execution's domain: config, the pre-trade risk check, order pricing, and what an exchange answer means.

Pure Python, no I/O: the executor gathers the market and account state, this
module decides.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from sigma_grpc.domain.errors import FieldViolation, InvalidArgument
from sigma_grpc.domain.models import Decision, Direction

MIN_NOTIONAL_USD = Decimal(10)
RESTING_IOC = "the IOC order is resting on the book, which an IOC order should never do"
_PCT_SCALE = Decimal("0.00000001")
_RISK_SCALE = Decimal("0.000001")


class ExecutionStatus(enum.StrEnum):
    PENDING = "pending"
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SIMULATED = "simulated"

    @property
    def settled(self) -> bool:
        return self not in (ExecutionStatus.PENDING, ExecutionStatus.UNKNOWN)


class ExecutionReason(enum.StrEnum):
    STALE_SIGNAL = "stale_signal"
    UNKNOWN_SYMBOL = "unknown_symbol"
    PRICE_DRIFT = "price_drift"
    NO_ACCOUNT_VALUE = "no_account_value"
    EXPOSURE_LIMIT = "exposure_limit"
    MIN_NOTIONAL = "min_notional"
    INSUFFICIENT_MARGIN = "insufficient_margin"
    IOC_NO_MATCH = "ioc_no_match"
    EXCHANGE_ERROR = "exchange_error"
    RATE_LIMITED = "rate_limited"
    LEVERAGE_FAILED = "leverage_failed"
    TIMEOUT = "timeout"
    NOT_PLACED = "not_placed"
    DISABLED = "disabled"
    CONFIG_CHANGED = "config_changed"
    ACCOUNT_BUSY = "account_busy"
    TOO_LATE = "too_late"
    ALREADY_ON_EXCHANGE = "already_on_exchange"


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    enabled: bool = False
    hl_enabled: bool = False
    dry_run: bool = True
    hl_max_leverage: int = 3
    hl_max_position_pct: Decimal = Decimal("0.02")
    hl_max_exposure_pct: Decimal = Decimal("0.10")
    hl_slippage_pct: Decimal = Decimal("0.01")
    max_signal_age_s: int = 120
    max_price_drift_pct: Decimal = Decimal("0.01")
    updated_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.enabled and self.hl_enabled


# Field → (low, high, low_inclusive) for the numeric settings.
_RANGES: dict[str, tuple[Decimal, Decimal, bool]] = {
    "hl_max_leverage": (Decimal(1), Decimal(50), True),
    "hl_max_position_pct": (Decimal(0), Decimal(1), False),
    "hl_max_exposure_pct": (Decimal(0), Decimal(10), False),
    "hl_slippage_pct": (Decimal(0), Decimal("0.1"), False),
    "max_signal_age_s": (Decimal(1), Decimal(86400), True),
    "max_price_drift_pct": (Decimal(0), Decimal(1), False),
}


def _in_range(path: str, number: Decimal) -> bool:
    low, high, low_inclusive = _RANGES[path]
    return (low <= number if low_inclusive else low < number) and number <= high


UPDATABLE_FIELDS = frozenset(f.name for f in fields(ExecutionConfig)) - {"updated_at"}


def apply_config_update(
    current: ExecutionConfig, new_values: Mapping[str, Any], paths: Sequence[str]
) -> ExecutionConfig:
    """The config with the masked fields replaced, or InvalidArgument naming each bad path or value."""
    violations: list[FieldViolation] = []
    if not paths:
        violations.append(FieldViolation("update_mask", "must name at least one field to change"))
    changes: dict[str, Any] = {}
    for path in paths:
        if path == "updated_at":
            violations.append(FieldViolation("update_mask", "updated_at is output only"))
        elif path not in UPDATABLE_FIELDS:
            violations.append(FieldViolation("update_mask", f"unknown field {path!r}"))
        elif path in _RANGES:
            value = new_values[path]
            if isinstance(value, float) and not math.isfinite(value):
                violations.append(FieldViolation(f"config.{path}", "must be a finite number"))
                continue
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
            # Range first: quantizing a huge number (1e300) to 8 decimals would overflow.
            if _in_range(path, number) and isinstance(value, float):
                number = number.quantize(_PCT_SCALE, rounding=ROUND_HALF_EVEN)
            if not _in_range(path, number):
                low, high, low_inclusive = _RANGES[path]
                bracket = "[" if low_inclusive else "("
                violations.append(FieldViolation(f"config.{path}", f"must be in {bracket}{low}, {high}]"))
                continue
            changes[path] = int(number) if isinstance(value, int) else number
        else:
            changes[path] = bool(new_values[path])
    if violations:
        raise InvalidArgument(violations)
    return replace(current, **changes)


def config_changes(old: ExecutionConfig, new: ExecutionConfig) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for every setting that differs."""
    return [
        (name, getattr(old, name), getattr(new, name))
        for name in sorted(UPDATABLE_FIELDS)
        if getattr(old, name) != getattr(new, name)
    ]


@dataclass(frozen=True, slots=True)
class Execution:
    id: uuid.UUID
    decision_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    symbol: str
    side: Side
    size: Decimal
    leverage: int
    cloid: str
    order_expires_at: datetime
    network: str
    account_address: str | None
    dry_run: bool
    status: ExecutionStatus
    reason: ExecutionReason | None = None
    fill_price: Decimal | None = None
    fill_size: Decimal | None = None
    error_message: str | None = None
    exchange_order_id: int | None = None
    position_pct: Decimal | None = None
    exposure_before: Decimal | None = None
    exposure_after: Decimal | None = None
    mid_price: Decimal | None = None
    limit_price: Decimal | None = None
    # The authenticated caller whose ExecuteSignal claimed it (None: claimed before that was kept).
    requested_by: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    """One recorded state change of an execution (from_status None: the claim)."""

    recorded_at: datetime
    from_status: ExecutionStatus | None
    to_status: ExecutionStatus
    reason: ExecutionReason | None
    error_message: str | None
    actor: str


@dataclass(frozen=True, slots=True)
class Result:
    """What to record on an execution; unset fields keep their stored value."""

    status: ExecutionStatus
    reason: ExecutionReason | None = None
    error_message: str | None = None
    size: Decimal | None = None
    leverage: int | None = None
    fill_price: Decimal | None = None
    fill_size: Decimal | None = None
    exchange_order_id: int | None = None
    position_pct: Decimal | None = None
    exposure_before: Decimal | None = None
    exposure_after: Decimal | None = None
    mid_price: Decimal | None = None
    limit_price: Decimal | None = None


def cloid_for(decision_id: uuid.UUID) -> str:
    """The order's client id: derived from the decision, so a retry can never be a second order."""
    return "0x" + decision_id.hex


def side_for(direction: Direction) -> Side:
    return Side.BUY if direction is Direction.LONG else Side.SELL


@dataclass(frozen=True, slots=True)
class AssetInfo:
    name: str
    sz_decimals: int
    max_leverage: int


@dataclass(frozen=True, slots=True)
class Position:
    coin: str
    size: Decimal  # signed: negative is short
    notional: Decimal  # absolute position value in USD
    leverage: int | None = None
    cross: bool = True  # cross margin (leverage is always set as cross)


@dataclass(frozen=True, slots=True)
class AccountState:
    account_value: Decimal
    positions: tuple[Position, ...]

    def exposure_notional(self) -> Decimal:
        return sum((abs(p.notional) for p in self.positions), Decimal(0))


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """A checked order, ready to send (or to simulate)."""

    size: Decimal
    mid: Decimal
    limit_price: Decimal
    leverage: int
    set_leverage: bool
    # The margin mode to set leverage in: an open position's own (the exchange refuses
    # switching it), cross otherwise.
    cross: bool
    position_pct: Decimal
    exposure_before: Decimal
    exposure_after: Decimal


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    return (numerator / denominator).quantize(_RISK_SCALE)


def check_still_allowed(claim: Execution, config: ExecutionConfig) -> Result | None:
    """The config as it is now still allows this claim to go on (it may have changed while it waited)."""
    if not config.active:
        return Result(
            ExecutionStatus.REJECTED,
            ExecutionReason.DISABLED,
            "execution was switched off while this one waited for its account: nothing was signed",
        )
    if config.dry_run != claim.dry_run:
        mode = "dry run" if claim.dry_run else "live"
        return Result(
            ExecutionStatus.REJECTED,
            ExecutionReason.CONFIG_CHANGED,
            f"dry_run changed while this {mode} execution waited for its account: nothing was signed",
        )
    return None


def check_signal_age(decision: Decision, config: ExecutionConfig, now: datetime) -> Result | None:
    """Refuse a signal older than max_signal_age_s.

    The age runs from the earlier of when it was decided and when it was stored:
    a decided_at ahead of the server's clock (allowed by the decision log's skew)
    must not buy the signal extra time.
    """
    age = now - min(decision.decided_at, decision.created_at)
    if age > timedelta(seconds=config.max_signal_age_s):
        return Result(
            ExecutionStatus.REJECTED,
            ExecutionReason.STALE_SIGNAL,
            f"signal is {age.total_seconds():.0f}s old (limit {config.max_signal_age_s}s)",
        )
    return None


def plan_order(
    decision: Decision,
    config: ExecutionConfig,
    asset: AssetInfo | None,
    mid: Decimal | None,
    account: AccountState,
    *,
    side: Side,
    unsettled_notional: Decimal = Decimal(0),
) -> OrderPlan | Result:
    """The pre-trade risk check after the age check, in the order the rules are listed.

    `unsettled_notional` is the notional of this account's orders whose fate is
    not known yet (UNKNOWN executions): counted as exposure, to be safe.
    Returns the order to place, or the REJECTED result saying why not.
    """
    if asset is None or mid is None or mid <= 0:
        return Result(
            ExecutionStatus.REJECTED,
            ExecutionReason.UNKNOWN_SYMBOL,
            f"{decision.symbol} is not listed on the exchange",
        )
    if decision.price_at_decision is not None:
        drift = abs(mid - decision.price_at_decision) / decision.price_at_decision
        if drift > config.max_price_drift_pct:
            return Result(
                ExecutionStatus.REJECTED,
                ExecutionReason.PRICE_DRIFT,
                f"mid {mid} drifted {drift:.4%} from {decision.price_at_decision} "
                f"(limit {config.max_price_drift_pct:.4%})",
                mid_price=mid,
            )
    if account.account_value <= 0:
        return Result(
            ExecutionStatus.REJECTED,
            ExecutionReason.NO_ACCOUNT_VALUE,
            f"account value is {account.account_value}",
            mid_price=mid,
        )
    step = Decimal(1).scaleb(-asset.sz_decimals)
    target_notional = account.account_value * config.hl_max_position_pct
    size = (target_notional / mid).quantize(step, rounding=ROUND_DOWN)
    notional = size * mid
    price = limit_price(mid, side, config.hl_slippage_pct, asset.sz_decimals)
    existing = account.exposure_notional() + unsettled_notional
    exposure_before = _ratio(existing, account.account_value)
    exposure_after = _ratio(existing + notional, account.account_value)
    position_pct = _ratio(notional, account.account_value)

    def rejected(reason: ExecutionReason, message: str) -> Result:
        return Result(
            ExecutionStatus.REJECTED,
            reason,
            message,
            size=size,
            mid_price=mid,
            position_pct=position_pct,
            exposure_before=exposure_before,
            exposure_after=exposure_after,
        )

    if exposure_after > config.hl_max_exposure_pct:
        return rejected(
            ExecutionReason.EXPOSURE_LIMIT,
            f"exposure after the trade would be {exposure_after:.2%} "
            f"(limit {config.hl_max_exposure_pct:.2%})",
        )
    # The exchange checks the minimum at the order's price, which is below the mid for a sell.
    order_notional = size * min(mid, price)
    if size <= 0 or order_notional < MIN_NOTIONAL_USD:
        return rejected(
            ExecutionReason.MIN_NOTIONAL,
            f"order notional ${order_notional:.2f} is below the exchange's ${MIN_NOTIONAL_USD} minimum",
        )
    leverage = min(config.hl_max_leverage, asset.max_leverage)
    held = next((p for p in account.positions if p.coin == asset.name and p.size != 0), None)
    return OrderPlan(
        size=size,
        mid=mid,
        limit_price=price,
        leverage=leverage,
        set_leverage=held is None or held.leverage != leverage,
        cross=held.cross if held is not None else True,
        position_pct=position_pct,
        exposure_before=exposure_before,
        exposure_after=exposure_after,
    )


def limit_price(mid: Decimal, side: Side, slippage: Decimal, sz_decimals: int) -> Decimal:
    """Mid +/- slippage, normalised as the exchange requires.

    5 significant figures, then at most 6 - szDecimals decimals (the SDK's own rule).
    """
    raw = mid * (1 + slippage) if side is Side.BUY else mid * (1 - slippage)
    significant = Decimal(f"{raw:.5g}") if raw < Decimal("1e15") else raw
    decimals = max(6 - sz_decimals, 0)
    return significant.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN).normalize() + 0


def _order_error_result(message: str) -> Result:
    lowered = message.lower()
    if "insufficient margin" in lowered:
        reason = ExecutionReason.INSUFFICIENT_MARGIN
    elif "could not immediately match" in lowered:
        reason = ExecutionReason.IOC_NO_MATCH
    else:
        reason = ExecutionReason.EXCHANGE_ERROR
    return Result(ExecutionStatus.REJECTED, reason, message)


def classify_order_response(response: Any, requested: Decimal) -> Result:
    """What an /exchange order answer (already parsed as JSON by the SDK) means for one order."""
    if not isinstance(response, dict):
        return Result(
            ExecutionStatus.UNKNOWN, ExecutionReason.EXCHANGE_ERROR, f"unexpected answer: {response!r}"
        )
    if "error" in response and "status" not in response:
        # The SDK returns {"error": "Could not parse JSON: ..."} for a 2xx non-JSON body.
        return Result(ExecutionStatus.UNKNOWN, ExecutionReason.EXCHANGE_ERROR, str(response["error"])[:500])
    if response.get("status") == "err":
        text = str(response.get("response"))
        reason = (
            ExecutionReason.RATE_LIMITED
            if "too many" in text.lower() or "rate limit" in text.lower()
            else ExecutionReason.EXCHANGE_ERROR
        )
        return Result(ExecutionStatus.FAILED, reason, text)
    try:
        status = response["response"]["data"]["statuses"][0]
    except (KeyError, IndexError, TypeError):
        return Result(
            ExecutionStatus.UNKNOWN, ExecutionReason.EXCHANGE_ERROR, f"unexpected answer: {response!r}"
        )
    if isinstance(status, dict) and "filled" in status:
        filled = status["filled"]
        size = Decimal(str(filled["totalSz"]))
        return Result(
            ExecutionStatus.FILLED if size >= requested else ExecutionStatus.PARTIALLY_FILLED,
            None,
            None if size >= requested else f"filled {size} of {requested}; the rest was cancelled (IOC)",
            fill_price=Decimal(str(filled["avgPx"])),
            fill_size=size,
            exchange_order_id=int(filled["oid"]) if "oid" in filled else None,
        )
    if isinstance(status, dict) and "error" in status:
        return _order_error_result(str(status["error"]))
    if isinstance(status, dict) and "resting" in status:
        resting = status["resting"]
        return Result(
            ExecutionStatus.UNKNOWN,
            ExecutionReason.EXCHANGE_ERROR,
            RESTING_IOC,
            exchange_order_id=int(resting["oid"]) if "oid" in resting else None,
        )
    return Result(
        ExecutionStatus.UNKNOWN, ExecutionReason.EXCHANGE_ERROR, f"unexpected order status: {status!r}"
    )


def settle_from_order_status(
    order_status: Any,
    fills: Sequence[tuple[Decimal, Decimal]],
    requested: Decimal,
    now: datetime,
    expires_at: datetime,
) -> Result | None:
    """Reconcile by cloid: the settled result, or None while it cannot be known yet.

    `fills` are the (price, size) of the account's fills for this order. What
    the order filled is the order's own word (`origSz - sz`); the fills are
    trusted only once they add up to it, since the fill history the exchange
    answers with can lag or be cut short.
    """
    known = isinstance(order_status, dict) and order_status.get("status") == "order"
    if not known:
        if now <= expires_at:
            return None  # the order may still arrive
        return Result(
            ExecutionStatus.FAILED,
            ExecutionReason.NOT_PLACED,
            "the exchange does not know the order and it has expired: it was never placed",
        )
    order = order_status["order"]
    details = order.get("order", {})
    oid = details.get("oid")
    exchange_order_id = int(oid) if oid is not None else None
    state = str(order.get("status"))
    original, remaining = details.get("origSz"), details.get("sz")
    if state in ("open", "triggered") or original is None or remaining is None:
        return None  # still live, or an answer that does not say what filled
    filled = Decimal(str(original)) - Decimal(str(remaining))
    seen = sum((size for _, size in fills), Decimal(0))
    if filled > 0:
        if seen < filled:
            return None  # a fill is not visible yet: never settle on part of the record
        average = sum((price * size for price, size in fills), Decimal(0)) / seen
        return Result(
            ExecutionStatus.FILLED if filled >= requested else ExecutionStatus.PARTIALLY_FILLED,
            None,
            None if filled >= requested else f"filled {filled} of {requested}; the rest was cancelled (IOC)",
            fill_price=average.quantize(_PCT_SCALE),
            fill_size=filled,
            exchange_order_id=exchange_order_id,
        )
    if state == "filled":
        return None  # "filled" with nothing filled contradicts itself: ask again later
    if "margin" in state.lower():
        reason = ExecutionReason.INSUFFICIENT_MARGIN
    elif "ioc" in state.lower() or state == "canceled":
        reason = ExecutionReason.IOC_NO_MATCH
    else:
        reason = ExecutionReason.EXCHANGE_ERROR
    return Result(
        ExecutionStatus.REJECTED,
        reason,
        f"the exchange reports the order as {state} with nothing filled",
        exchange_order_id=exchange_order_id,
    )
