"""The HTTP routes, read from the `google.api.http` options of the sigma.v1 RPCs.

The routes are declared once, in the protos; this module interprets the subset
the contract uses: GET/POST/PATCH/PUT/DELETE, `{field}` path variables naming a
top-level field, `body: "*"` or a named body field, and query parameters for
everything else. A template outside that subset fails at start, naming the RPC,
rather than serving a route some other way than grpc-gateway or Envoy would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message

_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_VERBS = ("get", "post", "patch", "put", "delete")


class RouteError(ValueError):
    """An annotation this gateway cannot serve faithfully."""


@dataclass(frozen=True)
class Route:
    """One HTTP route of one RPC."""

    http_method: str  # GET, POST, ...
    template: str  # /v1/decisions/{id}: also Starlette's syntax (a variable is one path segment)
    path_fields: tuple[str, ...]  # the fields the template's variables set
    body: str  # "" (no body), "*" (the whole request) or a top-level field's name
    rpc_path: str  # /sigma.v1.DecisionService/GetDecision, as gRPC calls it
    request_class: type[Message]
    response_class: type[Message]


def _route(method: descriptor.MethodDescriptor, rule: http_pb2.HttpRule) -> Route:
    name = f"{method.containing_service.full_name}.{method.name}"
    verb = rule.WhichOneof("pattern")
    if verb not in _VERBS:
        raise RouteError(f"{name}: the {verb!r} pattern is not supported")
    template = getattr(rule, verb)
    request = method.input_type
    path_fields = tuple(_VARIABLE.findall(template))
    if "{" in _VARIABLE.sub("", template) or not template.startswith("/"):
        raise RouteError(f"{name}: only {{field}} variables of top-level fields are supported: {template!r}")
    for field in path_fields:
        found = request.fields_by_name.get(field)
        if found is None or found.message_type is not None or found.is_repeated:
            raise RouteError(f"{name}: path variable {field!r} is not a scalar field of {request.name}")
    if rule.body not in ("", "*") and rule.body not in request.fields_by_name:
        raise RouteError(f"{name}: body {rule.body!r} is not a field of {request.name}")
    if rule.additional_bindings:
        raise RouteError(f"{name}: additional_bindings are not supported")
    return Route(
        http_method=verb.upper(),
        template=template,
        path_fields=path_fields,
        body=rule.body,
        rpc_path=f"/{method.containing_service.full_name}/{method.name}",
        request_class=message_factory.GetMessageClass(request),
        response_class=message_factory.GetMessageClass(method.output_type),
    )


def routes_of(*services: descriptor.ServiceDescriptor) -> list[Route]:
    """Every annotated RPC of the services, as routes (RPCs without an annotation get none)."""
    found = []
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            if options.HasExtension(annotations_pb2.http):
                found.append(_route(method, options.Extensions[annotations_pb2.http]))
    return found
