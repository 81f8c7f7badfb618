"""Authentication and authorization of every sigma.v1 call, before the call's request is looked at.

The caller is identified by a bearer token (`authorization` metadata) or, under
mutual TLS, by their verified client certificate; the policy (auth/policy.py)
says which role each method needs, and refuses a method it does not list. The
built-in HTTP gateway reaches this server over a private socket and relays the
certificate its own client presented, proven by a per-process key only the two
share. The identity is available to the servicers as `current_caller()`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from sigma_grpc.api import call_log
from sigma_grpc.api.errors import to_status
from sigma_grpc.auth.credentials import Identity
from sigma_grpc.auth.policy import Role, is_open, required_role
from sigma_grpc.auth.store import CredentialStore
from sigma_grpc.domain.errors import DomainError, Reason

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
# Metadata only the built-in gateway may send (see the module docstring).
GATEWAY_KEY = "x-sigma-gateway-key"
RELAYED_CERTIFICATE_NAME = "x-sigma-client-cert-san"
# Everyone is admin when authentication is off (loopback only, or SIGMA_AUTH=none).
ANONYMOUS = Identity("anonymous", Role.ADMIN, "none")

RELAYED_CLIENT_ADDRESS = "x-sigma-client-address"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, and from where (through the gateway: the HTTP client's address)."""

    identity: Identity
    peer: str


_caller: ContextVar[Caller | None] = ContextVar("sigma_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the call being served (None outside a call that went through Authentication)."""
    return _caller.get()


def _not_authenticated(message: str) -> DomainError:
    return DomainError(Reason.NOT_AUTHENTICATED, message)


class Authentication(grpc.aio.ServerInterceptor):
    """Refuses a call without accepted credentials (UNAUTHENTICATED) or the role its method needs
    (PERMISSION_DENIED); `store` None: authentication is off and every caller is ANONYMOUS."""

    def __init__(self, store: CredentialStore | None, gateway_key: str | None = None) -> None:
        self._store = store
        self._gateway_key = gateway_key

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or is_open(method):
            return handler
        if handler.unary_unary is None:
            # sigma.v1 has only unary RPCs; a streaming one would need its own check, so none is served.
            log.error("refusing %s: only unary methods are authenticated", method)
            return None
        inner: Any = handler.unary_unary  # a coroutine function on an aio server

        async def authenticated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                caller = self._authorize(method, context)
            except DomainError as error:
                log.info("refused %s from %s: %s", method, context.peer(), error.message)
                status = to_status(error)
                await context.abort(status.code, status.details, status.trailing_metadata)
            call_log.note(caller=caller.identity.name)
            token = _caller.set(caller)
            try:
                return await inner(request, context)
            finally:
                _caller.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            authenticated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _authorize(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
        needed = required_role(method)
        if needed is None:
            raise DomainError(Reason.ROLE_NOT_ALLOWED, f"{method} is open to no role")
        received = context.invocation_metadata() or ()
        metadata = [(key, value) for key, value in received if isinstance(value, str)]
        relay_key = [value for key, value in metadata if key == GATEWAY_KEY]
        relayed = bool(relay_key)
        peer = context.peer()
        if relayed and (
            self._gateway_key is None
            or not peer.startswith("unix:")  # the built-in gateway comes over its private socket
            or not hmac.compare_digest(relay_key[0].encode(), self._gateway_key.encode())
        ):
            raise _not_authenticated(f"{GATEWAY_KEY} is reserved for the server's own gateway")
        if relayed:
            address = [value for key, value in metadata if key == RELAYED_CLIENT_ADDRESS]
            peer = f"{address[0] if address else 'unknown'} via the HTTP gateway"
        identity = self._identify(metadata, relayed, context)
        if identity.role < needed:
            raise DomainError(
                Reason.ROLE_NOT_ALLOWED,
                f"{identity.name} has the role {identity.role.label}; {method.rsplit('/', 1)[-1]} "
                f"needs {needed.label} or above",
            )
        return Caller(identity, peer)

    def _identify(
        self, metadata: list[tuple[str, str]], relayed: bool, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Identity:
        if self._store is None:
            return ANONYMOUS
        authorization = [value for key, value in metadata if key == AUTHORIZATION]
        if relayed:
            names = [value for key, value in metadata if key == RELAYED_CERTIFICATE_NAME]
        else:
            auth_context = context.auth_context()
            names = [name.decode() for name in auth_context.get("x509_subject_alternative_name", [])]
        credentials = self._store.current
        if len(authorization) > 1:
            raise _not_authenticated("send one authorization value, not several")
        if authorization:
            scheme, _, token = authorization[0].strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _not_authenticated("authorization must be `Bearer <token>`")
            identity = credentials.by_token(token.strip())
            if identity is None:
                raise _not_authenticated("the bearer token is not one this server accepts")
            return identity
        if names:
            identity = credentials.by_certificate(names)
            if identity is None:
                raise _not_authenticated(
                    f"the client certificate ({', '.join(names)}) is mapped to no one in the tokens file"
                )
            return identity
        raise _not_authenticated("credentials required: send `authorization: Bearer <token>`")


def audit_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """Who the audit records for this call: the authenticated name, or where the call came from
    when authentication is off."""
    caller = current_caller()
    if caller is None:
        return f"anonymous ({context.peer()})"
    if caller.identity.method == "none":
        return f"anonymous ({caller.peer})"
    return caller.identity.name
