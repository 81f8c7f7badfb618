"""The database the suite measures against, which it creates and removes itself.

Without SIGMA_BENCH_DATABASE_URL: an embedded PostgreSQL (the project's own
`start_embedded`) in a temporary folder, stopped and deleted at the end.

With SIGMA_BENCH_DATABASE_URL: the suite never touches what is there. It creates
a database of its own on that server (`sigma_bench_<pid>_<random>`), and drops it
at the end; when the role may not create databases, it creates a schema of that
name in the given database instead and points every connection's search_path at
it (asyncpg passes URL query parameters on as server settings), and drops the
schema at the end. Tables outside that database or schema are never read or written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from sigma_grpc.config import DEFAULT_MIGRATIONS_DIR, redact_url
from sigma_grpc.storage.embedded import start_embedded
from sigma_grpc.storage.migrate import apply_migrations

URL_VARIABLE = "SIGMA_BENCH_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class BenchDatabase:
    url: str
    # "embedded", "database" (one created on SIGMA_BENCH_DATABASE_URL's server) or "schema".
    kind: str
    description: str
    # The database or schema created for this run (None for the embedded server, which goes whole).
    name: str | None = None


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name (unix-socket URLs too)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _migrate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn, DEFAULT_MIGRATIONS_DIR)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def bench_database(workdir: Path) -> AsyncIterator[BenchDatabase]:
    """A migrated, empty database for this run; removed on exit, whatever happened."""
    external = os.environ.get(URL_VARIABLE, "").strip()
    if not external:
        embedded = await asyncio.to_thread(start_embedded, workdir / "db")
        try:
            await _migrate(embedded.url)
            yield BenchDatabase(embedded.url, "embedded", f"embedded PostgreSQL in {workdir / 'db'}")
        finally:
            await asyncio.to_thread(embedded.stop)
        return

    name = f"sigma_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(external)
    try:
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            kind, url = "database", with_database(external, name)
        except asyncpg.InsufficientPrivilegeError:
            await admin.execute(f'CREATE SCHEMA "{name}"')
            kind, url = "schema", with_search_path(external, name)
    finally:
        await admin.close()
    try:
        await _migrate(url)
        yield BenchDatabase(url, kind, f"{kind} {name} on {redact_url(external)} (dropped at the end)", name)
    finally:
        admin = await asyncpg.connect(external)
        try:
            if kind == "database":
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            else:
                await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await admin.close()
