from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from tests.helpers import Stub, invalid_fields, signal


async def test_log_and_get(api: Stub) -> None:
    logged = (await api.LogDecision(signal())).decision
    fetched = (await api.GetDecision(pb.GetDecisionRequest(id=logged.id))).decision
    assert fetched == logged
    assert fetched.price_at_decision == "97123.50000000"


async def test_invalid(api: Stub) -> None:
    assert await invalid_fields(api.LogDecision(signal(symbol=""))) == {
        "symbol": "must be 1-16 ASCII letters or digits (e.g. BTC, kPEPE)"
    }
