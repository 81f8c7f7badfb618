"""A real PostgreSQL streaming replica for the read-replica tests: a primary, and a hot standby of it.

The primary is an embedded PostgreSQL (the pgserver wheel, started as `serve`
starts it) of the test module's own rather than the session's shared server:
the tests pause the standby's replay and stop the standby, and a base backup
copies a whole server. pgserver's initdb trusts replication over the unix
socket (`local replication all trust`) and PostgreSQL 16 defaults to
wal_level=replica with 10 WAL senders, so the primary needs no change: the
standby is `pg_basebackup -R` of it (with a replication slot, so the primary
keeps the WAL a stopped standby still needs), started by the wheel's pg_ctl.
Both listen on unix sockets only, each in a folder of its own on the default
port: no TCP port is picked, so none can be raced for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pgserver
import pytest

from sigma_grpc.config import DEFAULT_MIGRATIONS_DIR
from sigma_grpc.storage.embedded import EmbeddedPostgres, start_embedded
from sigma_grpc.storage.migrate import apply_migrations

PG_BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"
# PostgreSQL refuses to run as root; pgserver runs its servers as this user then (and creates it).
_PG_USER = "pgserver" if os.geteuid() == 0 else None
CATCH_UP_TIMEOUT_S = 15.0


def _run(*args: str | Path) -> None:
    """Run one of the wheel's PostgreSQL programs as the servers' user; its output is in the error."""
    with tempfile.TemporaryFile("w+") as output:
        # A file, not a pipe: a server that pg_ctl starts would inherit a pipe and hold it open.
        result = subprocess.run(
            [str(PG_BIN / args[0]), *map(str, args[1:])],
            stdout=output,
            stderr=subprocess.STDOUT,
            user=_PG_USER,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"{args[0]} failed (exit status {result.returncode}):\n{output.read()}")


async def _fetchval(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@dataclass
class Standby:
    """A hot standby whose data, unix socket and log live in `folder`."""

    folder: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.folder}"

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    async def start(self) -> None:
        # -h '': no TCP listener at all; -k: the socket in the standby's own folder.
        await self._pg_ctl("-l", self.folder / "log", "-o", f"-h '' -k {self.folder}", "start")

    async def stop(self, mode: str = "fast") -> None:
        await self._pg_ctl("-m", mode, "stop")

    async def _pg_ctl(self, *args: str | Path) -> None:
        await asyncio.to_thread(_run, "pg_ctl", "-D", self.data, "-w", "-t", "30", *args)

    async def fetchval(self, sql: str) -> object:
        return await _fetchval(self.url, sql)


@dataclass
class Replication:
    """A primary (its URL) and a running hot standby of it."""

    primary_url: str
    standby: Standby

    async def primary_fetchval(self, sql: str) -> object:
        return await _fetchval(self.primary_url, sql)

    async def caught_up(self) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        target = await self.primary_fetchval("SELECT pg_current_wal_lsn()")
        assert isinstance(target, int)
        conn = await asyncpg.connect(self.standby.url)
        try:
            deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
            while (replayed := await conn.fetchval("SELECT pg_last_wal_replay_lsn()")) < target:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the standby is stuck at {replayed}, the primary at {target}")
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    async def pause_replay(self) -> None:
        """Stop replaying, and wait until it has stopped: later writes then stay off the standby."""
        conn = await asyncpg.connect(self.standby.url)
        try:
            await conn.execute("SELECT pg_wal_replay_pause()")
            deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
            while await conn.fetchval("SELECT pg_get_wal_replay_pause_state()") != "paused":
                assert time.monotonic() < deadline, "replay did not pause"
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    async def resume_replay(self) -> None:
        await self.standby.fetchval("SELECT pg_wal_replay_resume()")


def _owned_by_pg_user(folder: Path) -> None:
    if _PG_USER is not None:
        user = pwd.getpwnam(_PG_USER)
        os.chown(folder, user.pw_uid, user.pw_gid)


@pytest.fixture(scope="module", name="replication")
async def replication_fixture() -> AsyncIterator[Replication]:
    """A migrated primary and a hot standby of it, caught up; both stopped and removed afterwards."""
    primary_folder = Path(tempfile.mkdtemp(prefix="sigma-primary-"))
    standby = Standby(Path(tempfile.mkdtemp(prefix="sigma-standby-")))
    primary: EmbeddedPostgres | None = None
    try:
        primary = await asyncio.to_thread(start_embedded, primary_folder)
        conn = await asyncpg.connect(primary.url)
        try:
            await apply_migrations(conn, DEFAULT_MIGRATIONS_DIR)
        finally:
            await conn.close()
        _owned_by_pg_user(standby.folder)
        socket_dir = parse_qs(urlsplit(primary.url).query)["host"][0]
        # -R: the standby's connection to the primary; -C -S: a replication slot of its own.
        backup: list[str | Path] = [
            "-D",
            standby.data,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-C",
            "-S",
            "sigma_test_standby",
        ]
        await asyncio.to_thread(_run, "pg_basebackup", *backup, "-h", socket_dir, "-U", "postgres")
        await standby.start()
        replication = Replication(primary.url, standby)
        assert await standby.fetchval("SELECT pg_is_in_recovery()") is True
        await replication.caught_up()
        yield replication
    finally:
        if standby.running():
            try:
                await standby.stop()
            except RuntimeError:
                with contextlib.suppress(RuntimeError):
                    await standby.stop("immediate")
        if primary is not None:
            await asyncio.to_thread(primary.stop)
        shutil.rmtree(standby.folder, ignore_errors=True)
        shutil.rmtree(primary_folder, ignore_errors=True)
