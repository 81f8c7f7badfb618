"""Hypothesis strategies for protobuf messages and their JSON forms, derived from the descriptors.

The published hypothesis-protobuf packages are unmaintained and fail on protobuf 7,
so this is a small builder of our own. `Builder.message(descriptor)` draws a
message field by field, by the field's type:

- doubles and floats: random values and the extremes (±0, ±inf, NaN, 1e300,
  5e-324, the largest double, the domain's boundaries such as 0.99995);
- integers: random values within the field's width and its bounds (int32/int64
  minimum and maximum) and the domain's limits (64/65, 200/201, 365/366, ...);
- enums: every known number and unknown ones (7, -1, the int32 bounds);
- strings: odd text (NUL and other control characters, RTL and zero-width marks,
  astral characters, lookalike digits and quotes), SQL-injection shapes, very
  long strings, and per field name (`hints`) valid-looking values and near
  misses: UUIDs, symbols, gate names, decimal strings, request ids, page tokens;
- nested messages recursively; Timestamp with out-of-range seconds and nanos
  (and times near the clock, for the "not in the future" rules); FieldMask with
  odd paths;
- repeated fields of short and of odd lengths (63/64/65, 199/200/201);
- every field may be missing.

`Builder.mutated(base)` starts from a known-valid message and changes a few
fields (or elements of a repeated field), so the server's deeper paths run too.
`Builder.json_object(descriptor)` draws the proto3 JSON form with wrong types,
both key spellings and unknown keys, for the HTTP gateway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf import field_mask_pb2, message_factory, text_format, timestamp_pb2
from google.protobuf.message import Message
from hypothesis import strategies as st

FieldDescriptor = _descriptor.FieldDescriptor
Descriptor = _descriptor.Descriptor
Strategy = st.SearchStrategy

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT32_MAX, UINT64_MAX = 2**32 - 1, 2**64 - 1

_BOUNDS: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_SINT32: (INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_SFIXED32: (INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_INT64: (INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_SINT64: (INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_SFIXED64: (INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_UINT32: (0, UINT32_MAX),
    FieldDescriptor.TYPE_FIXED32: (0, UINT32_MAX),
    FieldDescriptor.TYPE_UINT64: (0, UINT64_MAX),
    FieldDescriptor.TYPE_FIXED64: (0, UINT64_MAX),
}

EXTREME_DOUBLES: tuple[float, ...] = (
    0.0,
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
    -math.nan,
    1e300,
    -1e300,
    5e-324,
    -5e-324,
    sys.float_info.max,
    -sys.float_info.max,
    sys.float_info.min,
    1e15,
    -1e15,
    1.0000000000000002e15,
    1.0,
    -1.0,
    1.0000000000000002,
    0.5,
    0.1,
    0.99995,
    0.99994999,
    1e-9,
    5e-9,
    0.00005,
    -0.00004,
    999.999,
    999.9995,
    1000.0,
    9999.9999,
    9999.99995,
    -9999.99995,
    10.0,
    10.000000001,
    50.0,
    86400.0,
)
INT_EDGES: tuple[int, ...] = (
    0,
    1,
    -1,
    2,
    3,
    7,
    50,
    51,
    63,
    64,
    65,
    199,
    200,
    201,
    365,
    366,
    499,
    500,
    501,
    86400,
    86401,
    INT32_MAX,
    INT32_MAX - 1,
    INT32_MIN,
    INT32_MIN + 1,
    UINT32_MAX,
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
)
UNKNOWN_ENUM_NUMBERS: tuple[int, ...] = (4, 5, 7, 99, -1, INT32_MAX, INT32_MIN)
ODD_LENGTHS: tuple[int, ...] = (5, 7, 63, 64, 65, 199, 200, 201)

# Strings a careless service stores, splices into SQL or chokes on.
ODD_TEXT: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "BTC\x00",
    "\t",
    "\r\n",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\x9f",
    "\u200e",
    "\u200f",
    "\u202e",
    "BTC\u202e",
    "\u200b",
    "\ufeff",
    "\u2028",
    "\ufffd",
    "\uffff",
    "\U0001f600",
    "\U0001d518\U0001d52b\U0001d526",
    "\U0010ffff",
    "e\u0301",
    "\u0130",
    "\u00df",
    "\u01c5",
    "\uff11\uff12\uff13",
    "\u0663",
    "\u00b2",
    "\uff22\uff34\uff23",
    "NaN",
    "Infinity",
    "-0",
    "+1",
    "1e5",
    "0x1F",
    "1_000",
    "null",
    "true",
    "%00",
    "%s%n",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "{{7*7}}",
)
INJECTIONS: tuple[str, ...] = (
    "'; DROP TABLE decision_logs; --",
    "' OR '1'='1",
    "' OR 1=1 --",
    '" OR ""="',
    "$1",
    "$2::text",
    "$$",
    "$tag$ x $tag$",
    "\\x00",
    "\x00",
    "\\",
    "\\'",
    "''",
    "'",
    "%' --",
    "_",
    "%",
    "1; SELECT pg_sleep(5)",
    "'); TRUNCATE execution_config_audit; --",
    "BTC' --",
    "BTC'||'",
    "\u2019 OR \u20191\u2019=\u20191",
    "\u02bc OR \u02bc1\u02bc=\u02bc1",
    "\uff07 OR \uff071\uff07=\uff071",
    "E'\\\\x27'",
    "U&'\\0027'",
    "/* */",
    "--",
    ";",
    "\\N",
    "0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b' OR '1'='1",
    "0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b'; --",
)
_LONG_CHARS: tuple[tuple[str, int], ...] = (
    ("A", 1),
    ("7", 1),
    ("'", 1),
    ("-", 1),
    ("\x00", 1),
    ("\u202e", 3),
)
_LONG_SIZES: tuple[int, ...] = (16, 17, 64, 65, 128, 129, 1000, 100_000)
_EMOJI = "\U0001f600"


def _long(char: str, width: int, size: int) -> str:
    return char * max(1, size // width) if size > 1000 else char * size


long_texts: Strategy[str] = st.one_of(
    st.builds(
        lambda pair, size: _long(pair[0], pair[1], size),
        st.sampled_from(_LONG_CHARS),
        st.sampled_from(_LONG_SIZES),
    ),
    st.sampled_from(_LONG_SIZES).map(lambda size: _EMOJI * max(1, size // 4)),
)
odd_texts: Strategy[str] = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.sampled_from(INJECTIONS),
    st.text(max_size=24),  # any code point but lone surrogates (not UTF-8)
    st.text(st.characters(max_codepoint=0x9F), max_size=12),  # ASCII and the C0/C1 controls
    long_texts,
)


# -- UUIDs, symbols, names, decimals, ids ------------------------------------------------------------

_NEAR_MISSES: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "braces": lambda u: "{" + u + "}",
    "urn": lambda u: "urn:uuid:" + u,
    "hex": lambda u: u.replace("-", ""),
    "short": lambda u: u[:-1],
    "long": lambda u: u + "0",
    "g": lambda u: "g" + u[1:],
    "space": lambda u: " " + u,
    "newline": lambda u: u + "\n",
    "nul": lambda u: u + "\x00",
    "moved hyphen": lambda u: u[:7] + "-" + u[7] + u[9:],
    "fullwidth": lambda u: u.translate({ord(c): 0xFF10 + int(c) for c in "0123456789"}),
    "arabic digits": lambda u: u.translate({ord(c): 0x0660 + int(c) for c in "0123456789"}),
    "quote": lambda u: u + "'",
}
SPECIAL_UUIDS: tuple[str, ...] = (
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    "0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b",
)


def uuid_texts(known: Sequence[str] = ()) -> Strategy[str]:
    """Canonical UUIDs (random, special, or `known` ones), and near misses of each."""
    sources: list[Strategy[str]] = [st.uuids().map(str), st.sampled_from(SPECIAL_UUIDS)]
    if known:
        sources.append(st.sampled_from(list(known)))
    canonical = st.one_of(*sources)
    near = st.builds(lambda u, miss: _NEAR_MISSES[miss](u), canonical, st.sampled_from(sorted(_NEAR_MISSES)))
    return st.one_of(canonical, near)


symbols: Strategy[str] = st.one_of(
    st.sampled_from(("BTC", "ETH", "SOL", "kPEPE", "A" * 16, "A" * 17, "btc", "BTC-PERP", "BTC ", "@1")),
    st.from_regex(r"[A-Za-z0-9]{1,16}", fullmatch=True),
)
check_names: Strategy[str] = st.one_of(
    st.sampled_from(
        (
            *("supermajority", "effective_k", "freshness", "price_band", "ev_gate", "a" * 64, "a" * 65),
            *("a:b.c-d_e", "a b", "-", "--", ".", "max_exposure", "daily_loss"),
        )
    ),
    st.from_regex(r"[A-Za-z0-9_.:\-]{1,64}", fullmatch=True),
)
DECIMAL_TEXTS: tuple[str, ...] = (
    "97123.5",
    "0.00000001",
    "999999999999.99999999",
    "1000000000000",
    "0",
    "-0",
    "-0.00000000",
    "0.000000001",
    "0.000000005",
    "1.123456789",
    "-12.5",
    "1e5",
    "1E-8",
    "1,5",
    " 1",
    "1 ",
    "+1",
    ".5",
    "1.",
    "--1",
    "\u0661\u0662\u0663",
    "\uff11",
    "NaN",
    "inf",
    "-",
    "0" * 40 + "1",
    "0." + "0" * 100 + "1",
    "9" * 1000,
)
decimal_texts: Strategy[str] = st.one_of(
    st.sampled_from(DECIMAL_TEXTS),
    st.from_regex(r"-?[0-9]{1,14}(\.[0-9]{1,10})?", fullmatch=True),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f")),
)
request_ids: Strategy[str] = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=128),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=129, max_size=140),
    st.sampled_from(INJECTIONS),
)

# -- page tokens ---------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def forge_page_token(fields: object) -> str:
    """A token in the service's format around any body: the checksum is not a secret."""
    body = json.dumps(fields, separators=(",", ":"), sort_keys=True, default=str)
    checksum = hashlib.sha256(f"sigma.v1/page/{body}".encode()).hexdigest()[:12]
    return _b64(json.dumps({"b": body, "c": checksum}, separators=(",", ":")).encode())


def token_fields(token: str) -> dict[str, Any]:
    """The body of a token the service issued."""
    packed = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    body: dict[str, Any] = json.loads(packed["b"])
    return body


_TOKEN_TIMES: tuple[object, ...] = (
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999999+00:00",
    "9999-12-31T23:59:59-14:00",
    "2026-01-31T12:00:00",
    "2026-01-31T12:00:00+00:00",
    "2026-02-30T12:00:00+00:00",
    "now",
    "",
    0,
    None,
    ["2026-01-31T12:00:00+00:00"],
)
_TOKEN_IDS: tuple[object, ...] = (
    "00000000-0000-0000-0000-000000000000",
    "{0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b}",
    "urn:uuid:0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b",
    "0b7f2c1e6a4d4e5b9a8f3c2d1e0f9a8b",
    "' OR '1'='1",
    "",
    1,
    None,
)
_TOKEN_VERSIONS: tuple[object, ...] = (1, 2, 3, 0, -1, True, 1.0, "2", None, [2])


def page_tokens(issued: Sequence[str] = ()) -> Strategy[str]:
    """Junk, injection shapes, hand-made tokens with valid checksums, and `issued` ones and their edits."""
    junk = st.one_of(
        st.binary(max_size=64).map(_b64),
        st.text(
            st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/"),
            max_size=80,
        ),
        st.sampled_from(INJECTIONS).map(lambda s: _b64(s.encode())),
        st.sampled_from(INJECTIONS),
        odd_texts,
        st.sampled_from(('{"b":"{}","c":"x"}', "e30", "W10", "bnVsbA", "eyJiIjpudWxsfQ")),
    )
    forged_fields = st.fixed_dictionaries(
        {},
        optional={
            "v": st.sampled_from(_TOKEN_VERSIONS),
            "f": st.one_of(st.sampled_from(("", "0" * 16)), st.text(max_size=17)),
            "t": st.sampled_from(_TOKEN_TIMES),
            "i": st.one_of(st.sampled_from(_TOKEN_IDS), st.uuids().map(str)),
        },
    )
    sources: list[Strategy[str]] = [junk, forged_fields.map(forge_page_token)]
    if issued:
        real = st.sampled_from(list(issued))
        sources.append(real)
        edits = st.fixed_dictionaries(
            {},
            optional={
                "v": st.sampled_from(_TOKEN_VERSIONS),
                "t": st.sampled_from(_TOKEN_TIMES),
                "i": st.sampled_from(_TOKEN_IDS),
            },
        )
        sources.append(
            st.builds(lambda tok, edit: forge_page_token({**token_fields(tok), **edit}), real, edits)
        )
        sources.append(st.builds(lambda tok, cut: tok[:cut], real, st.integers(0, 40)))
        sources.append(
            st.builds(lambda tok, extra: tok + extra, real, st.sampled_from(("=", "==", "A", "'", " ")))
        )
    return st.one_of(*sources)


# -- well-known types ----------------------------------------------------------------------------------

TIMESTAMP_SECONDS: tuple[int, ...] = (
    0,
    -1,
    -62135596800,  # 0001-01-01T00:00:00Z
    -62135596801,
    -62135596799,
    253402300799,  # 9999-12-31T23:59:59Z
    253402300800,
    INT64_MAX,
    INT64_MIN,
)
NANOS: tuple[int, ...] = (0, 1, 999, 1000, 999_999_999, 1_000_000_000, -1, INT32_MAX, INT32_MIN)


def _timestamp(seconds: int, nanos: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def _near_now(offset: int) -> int:
    return int(time.time()) + offset


timestamps: Strategy[timestamp_pb2.Timestamp] = st.builds(
    _timestamp,
    st.one_of(
        st.sampled_from(TIMESTAMP_SECONDS),
        st.integers(INT64_MIN, INT64_MAX),
        st.integers(-62135596800, 253402300799),
        # Around the server's clock: the 60 s / 5 s future limits and the stats windows.
        st.integers(-400 * 86400, 600).map(_near_now),
    ),
    st.one_of(st.sampled_from(NANOS), st.integers(0, 999_999_999), st.integers(INT32_MIN, INT32_MAX)),
)


def field_masks(names: Sequence[str]) -> Strategy[field_mask_pb2.FieldMask]:
    """Masks of valid `names` and odd paths (camelCase, nested, output-only, blank, duplicated)."""
    odd = [
        "updated_at",
        "updatedAt",
        "hlMaxLeverage",
        "config.enabled",
        "enabled.x",
        "",
        "*",
        "ENABLED",
        " enabled",
        "enabled ",
        "enabled\x00",
        "id",
        "config",
        "enabled,dry_run",
    ]
    valid: list[Strategy[str]] = [st.sampled_from(list(names))] if names else []
    path = st.one_of(*valid, st.sampled_from(odd), odd_texts)
    return st.lists(path, max_size=12).map(lambda paths: field_mask_pb2.FieldMask(paths=paths))


# -- the builder ---------------------------------------------------------------------------------------


def _distinct(value: Any, i: int) -> Any:
    """The i-th of a list made from one element, told apart where a copy would be a duplicate."""
    if isinstance(value, str):
        try:
            return (
                str(uuid.UUID(int=(uuid.UUID(value).int + i) % 2**128))
                if len(value) == 36
                else value + str(i)
            )
        except ValueError:
            return value + str(i)
    if isinstance(value, Message):
        copy = type(value)()
        copy.CopyFrom(value)
        for field in copy.DESCRIPTOR.fields:
            if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
                setattr(copy, field.name, _distinct(getattr(copy, field.name), i))
                break
        return copy
    return value


def _replicated(element: Any, length: int, distinct: bool) -> list[Any]:
    # Keep a long list within 1 MB, so a request stays under gRPC's 4 MiB message limit.
    size = element.ByteSize() if isinstance(element, Message) else len(str(element).encode())
    length = min(length, max(1, 1_000_000 // (size + 1)))
    return [_distinct(element, i) if distinct else element for i in range(length)]


def set_field(message: Message, field: FieldDescriptor, value: Any) -> None:
    """Set one field: extend a repeated field, copy a message, assign a scalar."""
    if field.is_repeated:
        getattr(message, field.name).extend(value)
    elif field.message_type is not None:
        getattr(message, field.name).CopyFrom(value)
    else:
        setattr(message, field.name, value)


def message_class(descriptor: Descriptor) -> type[Message]:
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def describe(message: Message) -> str:
    """Its type and text format on one line (`text_format.Parse` of the part in braces rebuilds it)."""
    text = text_format.MessageToString(message, as_one_line=True)
    if len(text) > 4000:
        text = f"{text[:4000]} ... ({len(text)} characters in all)"
    return f"{message.DESCRIPTOR.full_name} {{ {text} }}"


class Builder:
    """Strategies for the messages of a descriptor, with `hints` (field name → strategy) for strings."""

    def __init__(self, hints: Mapping[str, Strategy[Any]] | None = None, max_depth: int = 4) -> None:
        self.hints = dict(hints or {})
        self.max_depth = max_depth

    # one value of a field (one element, for a repeated field)
    def value(self, field: FieldDescriptor, depth: int = 0) -> Strategy[Any]:
        hint = self.hints.get(field.name)
        if field.message_type is not None:
            full_name = field.message_type.full_name
            if full_name == "google.protobuf.Timestamp":
                return timestamps
            if full_name == "google.protobuf.FieldMask":
                return hint if hint is not None else field_masks(())
            return self.message(field.message_type, depth + 1)
        if field.enum_type is not None:
            known = [v.number for v in field.enum_type.values]
            return st.one_of(st.sampled_from(known), st.sampled_from(UNKNOWN_ENUM_NUMBERS))
        kind = field.type
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind == FieldDescriptor.TYPE_DOUBLE:
            doubles = st.one_of(
                st.sampled_from(EXTREME_DOUBLES),
                st.floats(),
                st.floats(-1.5, 12.0),
                st.floats(-1e5, 1e5),
            )
            return st.one_of(hint, doubles) if hint is not None else doubles
        if kind == FieldDescriptor.TYPE_FLOAT:
            return st.one_of(st.floats(width=32), st.sampled_from((0.0, -0.0, math.inf, -math.inf, math.nan)))
        if kind in _BOUNDS:
            low, high = _BOUNDS[kind]
            ints = st.one_of(
                st.sampled_from([n for n in INT_EDGES if low <= n <= high]),
                st.integers(low, high),
                st.integers(max(low, -3), min(high, 600)),
            )
            return st.one_of(hint, ints) if hint is not None else ints
        if kind == FieldDescriptor.TYPE_STRING:
            return st.one_of(hint, hint, odd_texts) if hint is not None else odd_texts
        if kind == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=64)
        raise TypeError(f"no strategy for field {field.full_name} of type {kind}")

    # the whole value of a field: a list for a repeated field
    def field_value(self, field: FieldDescriptor, depth: int = 0) -> Strategy[Any]:
        element = self.value(field, depth)
        if not field.is_repeated:
            return element
        return st.one_of(
            st.lists(element, max_size=4),
            st.builds(_replicated, element, st.sampled_from(ODD_LENGTHS), st.booleans()),
        )

    def message(self, descriptor: Descriptor, depth: int = 0) -> Strategy[Message]:
        """Any message of the type: each field missing or drawn by its type."""
        cls = message_class(descriptor)
        if depth > self.max_depth:
            return st.just(cls())
        optional = {f.name: self.field_value(f, depth) for f in descriptor.fields}

        def build(values: Mapping[str, Any]) -> Message:
            message = cls()
            for name, value in values.items():
                set_field(message, descriptor.fields_by_name[name], value)
            return message

        return st.fixed_dictionaries({}, optional=optional).map(build)

    def mutated(self, base: Message, max_changes: int = 3) -> Strategy[Message]:
        """`base` with up to `max_changes` fields cleared, replaced, appended to, or changed inside."""

        @st.composite
        def mutate(draw: st.DrawFn) -> Message:
            message = type(base)()
            message.CopyFrom(base)
            fields: list[Any] = list(base.DESCRIPTOR.fields)  # a union of two runtimes' types
            for _ in range(draw(st.integers(0, max_changes)) if fields else 0):
                field = draw(st.sampled_from(fields))
                current = getattr(message, field.name)
                actions = ["clear", "set"]
                if field.is_repeated:
                    actions.append("append")
                    if field.message_type is not None and len(current):
                        actions.append("inside")
                elif field.message_type is not None and message.HasField(field.name):
                    actions.append("inside")
                action = draw(st.sampled_from(actions))
                if action == "clear":
                    message.ClearField(field.name)
                elif action == "set":
                    message.ClearField(field.name)
                    set_field(message, field, draw(self.field_value(field)))
                elif action == "append":
                    if field.message_type is None:
                        current.append(draw(self.value(field)))
                    else:
                        current.add().CopyFrom(draw(self.value(field)))
                elif field.is_repeated:
                    i = draw(st.integers(0, len(current) - 1))
                    current[i].CopyFrom(draw(self.mutated(current[i], 2)))
                else:
                    current.CopyFrom(draw(self.mutated(current, 2)))
            return message

        return mutate()

    # -- the proto3 JSON form, for the HTTP gateway ----------------------------------------------------

    def json_value(self, field: FieldDescriptor, depth: int = 0) -> Strategy[Any]:
        """A JSON value for one element of the field: of its type (odd values included) or of any type."""
        typed: Strategy[Any]
        if field.message_type is not None:
            full_name = field.message_type.full_name
            if full_name == "google.protobuf.Timestamp":
                typed = st.one_of(st.sampled_from(RFC3339_TEXTS), odd_texts)
            elif full_name == "google.protobuf.FieldMask":
                typed = st.one_of(
                    st.lists(st.sampled_from(JSON_MASK_PATHS), max_size=4).map(",".join),
                    st.sampled_from(JSON_MASK_PATHS),
                    odd_texts,
                )
            elif depth >= self.max_depth:
                typed = st.just({})
            else:
                typed = self.json_object(field.message_type, depth + 1)
        elif field.enum_type is not None:
            typed = st.one_of(
                st.sampled_from([v.name for v in field.enum_type.values]),
                st.sampled_from(UNKNOWN_ENUM_NUMBERS),
                st.sampled_from(("UNKNOWN_NAME", "signal", "1", "")),
            )
        elif field.type == FieldDescriptor.TYPE_BOOL:
            typed = st.one_of(st.booleans(), st.sampled_from(("true", "false", 1, 0, "yes")))
        elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            typed = st.one_of(
                st.sampled_from(EXTREME_DOUBLES),
                st.floats(),
                st.sampled_from(("NaN", "Infinity", "-Infinity", "1e400", "1.5", " 1", "0x10", "")),
                st.integers(-(2**70), 2**70),
            )
        elif field.type in _BOUNDS:
            typed = st.one_of(
                st.sampled_from(INT_EDGES),
                st.integers(-(2**70), 2**70),
                st.sampled_from(("1", "-1", "1.0", "1e3", "1.5", "2147483648", " 1", "")),
                st.sampled_from((1.0, 1.5, 1e300, math.inf)),
            )
        elif field.type == FieldDescriptor.TYPE_STRING:
            hint = self.hints.get(field.name)
            text = odd_texts.filter(lambda s: len(s) <= 1000)
            typed = st.one_of(hint, text) if hint is not None else text
        else:
            typed = st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode())
        return st.one_of(typed, typed, json_values)

    def json_mutated(self, descriptor: Descriptor, base: Mapping[str, Any]) -> Strategy[dict[str, Any]]:
        """A valid request's JSON with up to two fields dropped, set to odd values, or unknown ones added."""

        @st.composite
        def mutate(draw: st.DrawFn) -> dict[str, Any]:
            body = dict(base)
            fields = list(descriptor.fields)
            for _ in range(draw(st.integers(0, 2)) if fields else 0):
                field = draw(st.sampled_from(fields))
                action = draw(st.sampled_from(("drop", "set", "unknown")))
                if action == "drop":
                    body.pop(field.json_name, None)
                elif action == "set":
                    element = self.json_value(field)
                    body[field.json_name] = draw(
                        st.lists(element, max_size=3) if field.is_repeated else element
                    )
                else:
                    body[draw(st.text(max_size=8))] = draw(json_values)
            return body

        return mutate()

    def json_object(self, descriptor: Descriptor, depth: int = 0) -> Strategy[dict[str, Any]]:
        """A JSON object for the message: fields under their JSON or proto names, and unknown keys."""
        optional: dict[str, Strategy[Any]] = {}
        for field in descriptor.fields:
            element = self.json_value(field, depth)
            value = (
                st.one_of(st.lists(element, max_size=4), element)
                if field.is_repeated
                else st.one_of(element, st.lists(element, max_size=2))
                if depth == 0
                else element
            )
            optional[field.json_name] = value
            if field.name != field.json_name:
                optional[field.name] = value
        known = st.fixed_dictionaries({}, optional=optional)
        unknown = st.dictionaries(st.text(max_size=10), json_values, max_size=2)
        return st.builds(lambda a, b: {**b, **a}, known, st.one_of(st.just({}), unknown))


RFC3339_TEXTS: tuple[str, ...] = (
    "2026-01-31T12:00:00Z",
    "2026-01-31T12:00:00.123456789Z",
    "2026-01-31T12:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "0000-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999Z",
    "10000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-31T24:00:00Z",
    "2026-01-31T12:00:60Z",
    "2026-01-31 12:00:00Z",
    "2026-01-31T12:00:00",
    "2026-01-31",
    "1970-01-01T00:00:00Z",
    "-2026-01-31T12:00:00Z",
)
JSON_MASK_PATHS: tuple[str, ...] = (
    "enabled",
    "hlEnabled",
    "hl_enabled",
    "dryRun",
    "hlMaxLeverage",
    "hlMaxPositionPct",
    "hlMaxExposurePct",
    "hlSlippagePct",
    "maxSignalAgeS",
    "maxPriceDriftPct",
    "updatedAt",
    "config.enabled",
    "",
    "*",
    "Enabled",
)

json_scalars: Strategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
)
json_values: Strategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

# Bodies no JSON encoder would write: broken syntax, lone surrogates, deep nesting, huge numbers, bad UTF-8.
ODD_BODIES: tuple[bytes, ...] = (
    b"",
    b" ",
    b"{",
    b"}",
    b"[",
    b"{}",
    b"[]",
    b"null",
    b"0",
    b'""',
    b"NaN",
    b"-Infinity",
    b"1e999",
    b'"\\ud800"',
    b'{"symbol": "\\ud800"}',
    b'{"symbol": "\\udfff\\ud800"}',
    b'{"symbol": "BTC\\u0000"}',
    b'{"traderCount": 1e999}',
    b'{"traderCount": 123456789012345678901234567890}',
    b'{"agreementPct": NaN}',
    b'{"days": -1e-400}',
    b'{"a": 1, "a": 2}',
    b'{"symbol": "BTC", "symbol": "ETH"}',
    b'{"gates": [{"name": "a"}, null]}',
    b'{"gates": {"name": "a"}}',
    b'{"config": null, "updateMask": null}',
    b'{"updateMask": {"paths": ["enabled"]}}',
    b'{"updateMask": "enabled", "config": {"enabled": "true"}}',
    b"\xff\xfe\xfd",
    b'{"symbol": "\xff"}',
    b"\xef\xbb\xbf{}",
    b"[" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"[" * 900 + b"]" * 900,
)


def dump_json(value: Any, ascii_only: bool) -> bytes:
    """JSON text as Python writes it: NaN and Infinity become bare tokens, which json.loads accepts."""
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True).encode()


def json_bodies(builder: Builder, descriptor: Descriptor) -> Strategy[bytes]:
    """Request bodies: the message's JSON with odd values, any JSON, truncated JSON, odd bytes."""
    objects = st.builds(dump_json, builder.json_object(descriptor), st.booleans())
    return st.one_of(
        objects,
        objects,
        st.builds(dump_json, json_values, st.booleans()),
        st.builds(lambda body, cut: body[: max(0, len(body) - cut)], objects, st.integers(1, 8)),
        st.sampled_from(ODD_BODIES),
        st.binary(max_size=64),
    )
