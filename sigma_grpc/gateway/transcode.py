"""HTTP requests to request messages and response messages to JSON, in the proto3 JSON mapping.

Query parameters (and path variables) name a field by its proto name or its
JSON name (`page_size` or `pageSize`) and may set scalar, enum (name or
number), repeated (the parameter given several times) and Timestamp (RFC 3339)
fields, as grpc-gateway's do. Anything the request cannot be made of is a
`BadInput` naming the parameter, answered 400 like any invalid field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import descriptor, field_mask_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message

from sigma_grpc.gateway.routes import Route

FieldDescriptor = descriptor.FieldDescriptor

_ASCII_INTEGER = re.compile(r"-?[0-9]+")
_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)"')
_TRUE = ("true", "1")
_FALSE = ("false", "0")
_INTEGERS = (
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
)


class BadInput(ValueError):
    """The HTTP request cannot be turned into the RPC's request: `field` and what is wrong."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}" if field else description)
        self.field = field
        self.description = description


def _field(message: Any, name: str) -> Any:
    found = message.fields_by_name.get(name)
    if found is None:
        found = next((f for f in message.fields if f.json_name == name), None)
    return found


def _json_value(field: Any, text: str, parameter: str) -> Any:
    """A query or path string as the JSON value the proto3 mapping expects for the field."""
    if field.message_type is not None:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            try:
                timestamp_pb2.Timestamp().FromJsonString(text)
            except ValueError:
                example = "2026-01-31T12:00:00Z"
                raise BadInput(parameter, f"must be an RFC 3339 time ({example}), got {text!r}") from None
            return text
        if field.message_type.full_name == "google.protobuf.FieldMask":
            field_mask_pb2.FieldMask().FromJsonString(text)
            return text  # comma-separated paths, as its JSON form is
        raise BadInput(parameter, f"cannot be set from a query parameter (a {field.message_type.name})")
    if field.type == FieldDescriptor.TYPE_BOOL:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise BadInput(parameter, f"must be true or false, got {text!r}")
    # ASCII digits only: int() also reads "1_0", "²" or "٣".
    if field.type in _INTEGERS:
        if not _ASCII_INTEGER.fullmatch(text):
            raise BadInput(parameter, f"must be an integer, got {text!r}")
        return int(text)
    if field.enum_type is not None:
        if _ASCII_INTEGER.fullmatch(text):
            return int(text)  # a number the service does not know is its to refuse, naming it
        if text not in field.enum_type.values_by_name:
            raise BadInput(parameter, f"is not a value of {field.enum_type.full_name}: {text!r}")
        return text
    return text  # strings; doubles and floats take their JSON string forms ("1.5", "NaN")


def _query_fields(route: Route, query: Sequence[tuple[str, str]]) -> dict[str, Any]:
    request = route.request_class.DESCRIPTOR
    values: dict[str, Any] = {}
    for parameter, text in query:
        field = _field(request, parameter)
        if field is None:
            raise BadInput(parameter, f"is not a field of {request.full_name}")
        if field.name in route.path_fields or route.body in ("*", field.name):
            raise BadInput(parameter, "is set by the path or the body, not by a query parameter")
        value = _json_value(field, text, parameter)
        if field.is_repeated:
            values.setdefault(field.json_name, []).append(value)
        elif field.json_name in values:
            raise BadInput(parameter, "is given more than once")
        else:
            values[field.json_name] = value
    return values


def _body(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
        # JSON lets a string hold a lone UTF-16 surrogate ("\ud800"), which is no character.
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadInput("", "the body holds a lone UTF-16 surrogate (\\ud800-\\udfff): no character") from None
    except (ValueError, RecursionError) as error:
        raise BadInput("", f"the body is not JSON: {error}") from None
    return body


def build_request(
    route: Route, path: Mapping[str, str], query: Sequence[tuple[str, str]], raw_body: bytes
) -> Message:
    """The RPC's request message from the path variables, the query string and the JSON body."""
    request = route.request_class.DESCRIPTOR
    values = _query_fields(route, query)
    if route.body:
        body = _body(raw_body)
        if route.body == "*":
            if not isinstance(body, dict):
                raise BadInput("", f"the body must be a JSON object ({request.full_name})")
            values.update(body)
        else:
            field = request.fields_by_name[route.body]
            values[field.json_name] = body
    elif raw_body.strip():
        raise BadInput("", f"{route.http_method} {route.template} takes no body")
    for name, text in path.items():
        field = request.fields_by_name[name]
        value = _json_value(field, text, name)
        for key in (field.json_name, field.name):
            if key in values and values[key] != value:
                raise BadInput(name, "differs between the path and the body")
            values.pop(key, None)
        values[field.json_name] = value
    message = route.request_class()
    try:
        json_format.ParseDict(values, message)
    except (json_format.ParseError, ValueError, TypeError, SystemError) as error:
        # protobuf's sentence, without its list of every field the message has.
        text = str(error).split("\n", 1)[0].strip()
        unknown = _UNKNOWN_FIELD.search(text)
        raise BadInput(unknown.group(1) if unknown else "", text) from None
    return message


def to_json(message: Message) -> dict[str, Any]:
    """A message in the proto3 JSON mapping; fields without presence are printed even at zero."""
    result: dict[str, Any] = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return result
