"""The credentials the service accepts: named bearer tokens and client certificates, each with a role.

An entry is `NAME ROLE TOKEN`. TOKEN is the bearer token itself, `sha256:<hex>`
(its SHA-256, so the file need not hold the secret) or `cert:<SAN>` (a client
certificate carrying that subject alternative name, under mutual TLS). Tokens
are kept only as digests and compared in constant time; nothing here ever puts
a token, or a line that may hold one, into a message.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sigma_grpc.auth.policy import Role

# Shorter plain tokens are refused: they can be guessed. (sha256: entries are the operator's call.)
MIN_TOKEN_LENGTH = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_COMMENT = re.compile(r"(^|\s)#.*$")


class CredentialsError(ValueError):
    """An entry cannot be used; the message names where it is (never the token)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: the name the audit records, their role, and how they proved it."""

    name: str
    role: Role
    # "token", "certificate", or "none" when authentication is off.
    method: str


@dataclass(frozen=True, slots=True)
class _TokenEntry:
    digest: bytes
    identity: Identity


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def certificate_name(name: str) -> str:
    """A subject alternative name as entries are matched: IP addresses in their compressed form
    (TLS libraries write 2001:db8::1 as 2001:DB8:0:0:0:0:0:1 or as is), other names as they are."""
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


class Credentials:
    """An immutable set of entries; swapped whole when the tokens file is reloaded."""

    def __init__(self, tokens: Iterable[_TokenEntry] = (), certificates: dict[str, Identity] | None = None):
        self._tokens = tuple(tokens)
        self._certificates = dict(certificates or {})

    def __repr__(self) -> str:
        return f"Credentials({len(self._tokens)} tokens, {len(self._certificates)} certificate identities)"

    def __len__(self) -> int:
        return len(self._tokens) + len(self._certificates)

    def by_token(self, presented: str) -> Identity | None:
        """The identity holding `presented`, or None. Every entry is compared, in constant time."""
        digest = token_digest(presented)
        found = None
        for entry in self._tokens:
            if hmac.compare_digest(digest, entry.digest):
                found = entry.identity
        return found

    def by_certificate(self, names: Iterable[str]) -> Identity | None:
        """The identity mapped to the first of a verified certificate's subject alternative names."""
        for name in names:
            identity = self._certificates.get(certificate_name(name))
            if identity is not None:
                return identity
        return None


def parse_entries(entries: Iterable[tuple[int, str]], where: str) -> Credentials:
    """Credentials from (number, text) entries; CredentialsError naming `where` and the number.

    Blank entries and `#` comments are skipped.
    """
    tokens: list[_TokenEntry] = []
    certificates: dict[str, Identity] = {}
    roles: dict[str, Role] = {}
    digests: set[bytes] = set()
    for number, raw in entries:
        # A comment starts with # at the start or after whitespace (a token may contain #, never spaces).
        text = _COMMENT.sub("", raw).strip()
        if not text:
            continue
        at = f"{where} line {number}" if where != "SIGMA_AUTH_TOKENS" else f"{where} entry {number}"
        fields = text.split()
        if len(fields) != 3:
            raise CredentialsError(f"{at}: expected NAME ROLE TOKEN, found {len(fields)} fields")
        name, role_text, secret = fields
        if not _NAME.fullmatch(name):
            raise CredentialsError(
                f"{at}: NAME must be 1-64 letters, digits or . _ @ : + - (starting with a letter or digit)"
            )
        try:
            role = Role.parse(role_text)
        except ValueError as error:
            raise CredentialsError(f"{at}: {error}") from None
        if roles.setdefault(name, role) != role:
            raise CredentialsError(f"{at}: {name} already has the role {roles[name].label}")
        if secret.startswith("cert:"):
            san = certificate_name(secret.removeprefix("cert:"))
            if not san:
                raise CredentialsError(f"{at}: cert: needs the certificate's subject alternative name")
            if san in certificates:
                raise CredentialsError(f"{at}: the certificate name {san} is already mapped")
            certificates[san] = Identity(name, role, "certificate")
            continue
        if secret.startswith("sha256:"):
            hexdigest = secret.removeprefix("sha256:")
            if not _HEX_DIGEST.fullmatch(hexdigest):
                raise CredentialsError(f"{at}: sha256: needs 64 hex digits")
            digest = bytes.fromhex(hexdigest)
        else:
            if len(secret) < MIN_TOKEN_LENGTH:
                raise CredentialsError(f"{at}: the token is shorter than {MIN_TOKEN_LENGTH} characters")
            if not all("!" <= c <= "~" for c in secret):
                raise CredentialsError(f"{at}: the token must be printable ASCII (it travels in a header)")
            digest = token_digest(secret)
        if digest in digests:
            raise CredentialsError(f"{at}: the same token is already listed")
        digests.add(digest)
        tokens.append(_TokenEntry(digest, Identity(name, role, "token")))
    return Credentials(tokens, certificates)


def parse_file_text(text: str, path: str) -> Credentials:
    return parse_entries(enumerate(text.splitlines(), start=1), path)


def parse_env(value: str) -> Credentials:
    """SIGMA_AUTH_TOKENS: the file's entries separated by commas."""
    return parse_entries(enumerate(value.split(","), start=1), "SIGMA_AUTH_TOKENS")
