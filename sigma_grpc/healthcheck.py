"""A synchronous probe of grpc.health.v1, for container HEALTHCHECKs and scripts."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def probe(channel: grpc.Channel, service: str = "", timeout: float = 3.0) -> tuple[bool, str]:
    """(healthy, what was seen): healthy only when the server answers SERVING in time."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else None
        return False, f"health check failed: {code.name if code else error}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, status
