"""Applies migrations/NNN_*.sql in order.

Each file runs in its own transaction together with its row in
`schema_migrations`, so a file is applied entirely or not at all. A session-level
advisory lock serialises runners: two replicas starting at once apply each file
exactly once. A file whose content changed after it was applied is refused: the
schema must only move forward through new files.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# Any fixed 64-bit number works; this one is "sigma-migrate" hashed and truncated.
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"sigma-grpc/migrate").digest()[:8], "big", signed=True)
_FILE_NAME = re.compile(r"(\d+)_[A-Za-z0-9_]+\.sql")


class MigrationError(RuntimeError):
    """The migrations on disk do not match what the database has applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(folder: Path) -> list[Migration]:
    if not folder.is_dir() or not any(folder.glob("*.sql")):
        raise MigrationError(
            f"no migrations found in {folder}: set SIGMA_MIGRATIONS_DIR to the migrations folder"
        )
    found = []
    for path in sorted(folder.glob("*.sql")):
        if not _FILE_NAME.fullmatch(path.name):
            raise MigrationError(f"{path.name}: migration files are named NNN_snake_case.sql")
        found.append(Migration(version=path.stem, path=path, sql=path.read_text()))
    versions = [int(m.version.split("_", 1)[0]) for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations in {folder} share a number")
    return sorted(found, key=lambda m: int(m.version.split("_", 1)[0]))


async def apply_migrations(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, folder: Path
) -> list[str]:
    """Apply the pending migrations; returns the versions applied by this call."""
    migrations = discover(folder)
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version TEXT PRIMARY KEY,
                checksum TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
            )
            """
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {r["version"]: r["checksum"] for r in rows}
        done = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"{migration.path.name} changed after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    migration.version,
                    migration.checksum,
                )
            log.info("applied migration %s", migration.version)
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
