"""The rules for attaching an outcome to a decision."""

from __future__ import annotations

from datetime import datetime

from sigma_grpc.domain.errors import FailedPrecondition, FieldViolation, InvalidArgument
from sigma_grpc.domain.models import Decision, DecisionType, Outcome


def should_write_outcome(decision: Decision, outcome: Outcome, closed_at: datetime) -> bool:
    """True to store the outcome, False when it repeats the one already stored.

    Raises FailedPrecondition for a non-signal or a different second outcome, and
    InvalidArgument for a close before the decision.
    """
    if decision.decision_type is not DecisionType.SIGNAL:
        raise FailedPrecondition(
            f"only SIGNAL decisions have outcomes; decision {decision.id} is a "
            f"{decision.decision_type.value.upper()}",
            reason="NOT_A_SIGNAL",
        )
    if decision.has_outcome:
        same = (
            decision.outcome_pnl == outcome.pnl
            and decision.outcome_r_multiple == outcome.r_multiple
            and (outcome.closed_at is None or outcome.closed_at == decision.outcome_closed_at)
        )
        if same:
            return False
        raise FailedPrecondition(
            f"decision {decision.id} already has an outcome (pnl {decision.outcome_pnl}, "
            f"R {decision.outcome_r_multiple}, closed {decision.outcome_closed_at}); outcomes are final",
            reason="OUTCOME_ALREADY_RECORDED",
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
