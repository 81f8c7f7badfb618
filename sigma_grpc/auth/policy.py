"""Who may call what: one role per method, shared by gRPC and the HTTP/JSON gateway; deny by default."""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    """Each role may do everything the roles below it may."""

    READER = 1  # Get*, List*, Stats: the dashboard, people reading the log
    WRITER = 2  # + LogDecision(s), RecordOutcome
    EXECUTOR = 3  # + ExecuteSignal: what hl-decide holds
    ADMIN = 4  # + UpdateExecutionConfig: people turn live trading on or raise limits

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named `text` ("reader", ...); ValueError (which never repeats `text`) otherwise."""
        try:
            return cls[text.upper()]
        except KeyError:
            # Not echoed: a field out of place may be a token.
            raise ValueError("the second field must be a role: reader, writer, executor or admin") from None


_DECISIONS = "/sigma.v1.DecisionService/"
_EXECUTION = "/sigma.v1.ExecutionService/"

# Every method of sigma.v1, with the least role that may call it. A method missing
# here is refused to everyone (tests check the table covers the contract exactly).
METHOD_ROLES: dict[str, Role] = {
    _DECISIONS + "GetDecision": Role.READER,
    _DECISIONS + "ListDecisions": Role.READER,
    _DECISIONS + "GetStats": Role.READER,
    _DECISIONS + "GetSignalQuality": Role.READER,
    _DECISIONS + "GetGateAnalytics": Role.READER,
    _DECISIONS + "LogDecision": Role.WRITER,
    _DECISIONS + "LogDecisions": Role.WRITER,
    _DECISIONS + "RecordOutcome": Role.WRITER,
    _EXECUTION + "GetExecution": Role.READER,
    _EXECUTION + "ListExecutions": Role.READER,
    _EXECUTION + "GetExecutionConfig": Role.READER,
    _EXECUTION + "ExecuteSignal": Role.EXECUTOR,
    _EXECUTION + "UpdateExecutionConfig": Role.ADMIN,
}

# Open to anyone who can connect: load balancers probe health, people browse with reflection.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def is_open(method: str) -> bool:
    """Whether `method` ("/package.Service/Method") needs no credentials."""
    service = method.lstrip("/").split("/", 1)[0]
    return service in OPEN_SERVICES


def required_role(method: str) -> Role | None:
    """The least role that may call `method`; None: no role may (not in the policy)."""
    return METHOD_ROLES.get(method)
