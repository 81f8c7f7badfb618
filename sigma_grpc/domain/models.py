"""The decision log's domain types: plain data, no I/O, no protobuf."""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sigma_grpc.domain.quality import ClosedSeries

ClosedSetKey = tuple[tuple[str, int, Decimal], ...]


class DecisionType(enum.StrEnum):
    """What the signal engine decided; the values are the database's."""

    SIGNAL = "signal"
    SKIP = "skip"
    RISK_REJECT = "risk_reject"


class Direction(enum.StrEnum):
    """The consensus direction; the values are the database's."""

    LONG = "long"
    SHORT = "short"
    NONE = "none"


class OutcomeFilter(enum.StrEnum):
    """Selects signals by the state of their outcome."""

    PENDING = "pending"
    CLOSED = "closed"
    WIN = "win"
    LOSS = "loss"


@dataclass(frozen=True, slots=True)
class Gate:
    """One consensus gate's result."""

    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class RiskCheck:
    """One pre-trade risk check's result."""

    name: str
    passed: bool
    value: float | None = None
    limit: float | None = None


@dataclass(frozen=True, slots=True)
class NewDecision:
    """A validated decision, ready to store.

    Numbers are already rounded to the scale of their columns, so what is stored,
    what the reasoning says and what is returned agree.
    """

    symbol: str
    direction: Direction
    decision_type: DecisionType
    trader_count: int
    agreement_pct: Decimal
    effective_k: Decimal
    avg_confidence: Decimal | None
    ev_estimate: Decimal | None
    price_at_decision: Decimal | None
    gates: tuple[Gate, ...]
    risk_checks: tuple[RiskCheck, ...]
    request_id: str | None
    decided_at: datetime | None

    def content_hash(self) -> bytes:
        """SHA-256 of everything the request says, request_id aside: equal for a retry, not for a reuse.

        Taken after validation, so spellings of one value that store the same
        (0.8 and 0.80001 at 4 decimals, "97123.5" and "97123.50") hash the same.
        An unset `decided_at` is part of the content (the server's time is not).
        """
        content = {
            "symbol": self.symbol,
            "direction": self.direction.value,
            "decision_type": self.decision_type.value,
            "trader_count": self.trader_count,
            "agreement_pct": str(self.agreement_pct),
            "effective_k": str(self.effective_k),
            "avg_confidence": _text(self.avg_confidence),
            "ev_estimate": _text(self.ev_estimate),
            "price_at_decision": _text(self.price_at_decision),
            "gates": [[g.name, g.passed, g.value, g.threshold] for g in self.gates],
            "risk_checks": [[c.name, c.passed, c.value, c.limit] for c in self.risk_checks],
            "decided_at": _text(self.decided_at.isoformat() if self.decided_at else None),
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).digest()


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Decision:
    """A stored decision."""

    id: uuid.UUID
    created_at: datetime
    decided_at: datetime
    symbol: str
    direction: Direction
    decision_type: DecisionType
    trader_count: int
    agreement_pct: Decimal
    effective_k: Decimal
    avg_confidence: Decimal | None
    ev_estimate: Decimal | None
    price_at_decision: Decimal | None
    gates: tuple[Gate, ...]
    risk_checks: tuple[RiskCheck, ...]
    reasoning: str
    request_id: str | None
    outcome_pnl: Decimal | None = None
    outcome_r_multiple: Decimal | None = None
    outcome_closed_at: datetime | None = None

    @property
    def has_outcome(self) -> bool:
        return self.outcome_pnl is not None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A validated outcome for a signal; `closed_at` None means "now"."""

    decision_id: uuid.UUID
    pnl: Decimal
    r_multiple: Decimal
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """The filters of a decision list; None matches everything."""

    symbol: str | None = None
    decision_type: DecisionType | None = None
    direction: Direction | None = None
    outcome: OutcomeFilter | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the next page starts: strictly after this (sort time, id) in list order, newest first."""

    sort_time: datetime
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A validated list request."""

    filter: DecisionFilter
    page_size: int
    cursor: PageCursor | None


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """A validated stats request."""

    days: int
    symbol: str | None


@dataclass(slots=True)
class Counts:
    """Raw counts of a set of decisions, as storage aggregates them."""

    total: int = 0
    signals: int = 0
    skips: int = 0
    risk_rejects: int = 0
    closed: int = 0
    wins: int = 0
    losses: int = 0
    r_multiple_sum: Decimal = Decimal(0)
    pnl_sum: Decimal = Decimal(0)
    # Identifies the set of closed signals (migration 066): equal sets, equal fingerprints.
    closed_fingerprint: Decimal = Decimal(0)

    def add(self, more: Counts, times: int = 1) -> None:
        """Count `more` in too (`times` times: -1 takes it out)."""
        self.total += times * more.total
        self.signals += times * more.signals
        self.skips += times * more.skips
        self.risk_rejects += times * more.risk_rejects
        self.closed += times * more.closed
        self.wins += times * more.wins
        self.losses += times * more.losses
        self.r_multiple_sum += times * more.r_multiple_sum
        self.pnl_sum += times * more.pnl_sum
        self.closed_fingerprint += times * more.closed_fingerprint


@dataclass(frozen=True, slots=True)
class StatsRows:
    """What storage returns for a stats window: counts per symbol and gate failures."""

    window_start: datetime
    by_symbol: dict[str, Counts] = field(default_factory=dict)
    gate_failures: dict[str, int] = field(default_factory=dict)
    # The closed signals, of the whole window (key None) and per symbol; None when the
    # caller already knew the figures of this set (`closed_key`) and storage did not read them.
    closed: dict[str | None, ClosedSeries] | None = field(default_factory=dict)

    @property
    def closed_key(self) -> ClosedSetKey:
        """What identifies the window's set of closed signals: per symbol, count and fingerprint."""
        return tuple(
            sorted(
                (symbol, c.closed, c.closed_fingerprint) for symbol, c in self.by_symbol.items() if c.closed
            )
        )
