"""The rules for attaching an outcome to a decision."""

from __future__ import annotations

from datetime import datetime

from sigma_grpc.domain.errors import DomainError, FieldViolation, InvalidArgument, Reason
from sigma_grpc.domain.models import Decision, DecisionType, Outcome


def should_write_outcome(decision: Decision, outcome: Outcome, closed_at: datetime) -> bool:
    """True to store the outcome, False when it repeats the one already stored.

    Raises DomainError for a non-signal (NOT_A_SIGNAL) or a different second
    outcome (OUTCOME_ALREADY_RECORDED), and InvalidArgument for a close before
    the decision.
    """
    if decision.decision_type is not DecisionType.SIGNAL:
        raise DomainError(
            Reason.NOT_A_SIGNAL,
            f"only SIGNAL decisions have outcomes; decision {decision.id} is a "
            f"{decision.decision_type.value.upper()}",
        )
    if decision.has_outcome:
        same = (
            decision.outcome_pnl == outcome.pnl
            and decision.outcome_r_multiple == outcome.r_multiple
            and (outcome.closed_at is None or outcome.closed_at == decision.outcome_closed_at)
        )
        if same:
            return False
        raise DomainError(
            Reason.OUTCOME_ALREADY_RECORDED,
            f"decision {decision.id} already has an outcome (pnl {decision.outcome_pnl}, "
            f"R {decision.outcome_r_multiple}, closed {decision.outcome_closed_at}); outcomes are final",
        )
    if closed_at < decision.decided_at:
        raise InvalidArgument(
            [
                FieldViolation(
                    "outcome_closed_at",
                    f"must not be before the decision was made ({decision.decided_at.isoformat()})",
                )
            ]
        )
    return True
