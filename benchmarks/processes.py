"""Child processes of the suite: `sigma-grpc serve`, the bare baseline server, and what /proc says of them.

Every child gets the caller's environment without its SIGMA_* variables (a
developer's SIGMA_AUTH_TOKENS or SIGMA_DATABASE_URL must not leak into a
measurement) plus what the measurement sets. Ports are free ones: the machine
is shared, so nothing here assumes a fixed port.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
# How long a child may take to start before the suite gives up on it (a cold embedded
# PostgreSQL runs initdb first; a loaded 2-core machine is slow).
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
# How often the health of a starting server is asked; the goal is 0.5 s, so 5 ms is fine-grained enough
# while leaving the starting process the CPU.
POLL_INTERVAL_S = 0.005


class ChildFailed(RuntimeError):
    """A child process exited or never got ready; the message carries the end of its output."""


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick; another process could take it before us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMA_")}
    env.update(extra)
    return env


def serve_command() -> list[str]:
    """`sigma-grpc serve` as installed beside this Python (the console script a user runs)."""
    script = Path(sys.executable).with_name("sigma-grpc")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "sigma_grpc", "serve"]


class Child:
    """A child process whose stderr (and optionally stdout) lines are collected by threads.

    Reading in threads keeps the pipes drained (a child blocked on a full pipe would
    stall mid-measurement) without the suite's event loop doing the reading.
    """

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.args = args
        self.lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._new_line = threading.Condition()
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
            args, cwd=ROOT, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._drain, args=(self.process.stderr, self.lines), daemon=True).start()
        threading.Thread(
            target=self._drain, args=(self.process.stdout, self.stdout_lines), daemon=True
        ).start()

    def _drain(self, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            with self._new_line:
                into.append(line)
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self, last: int = 30) -> str:
        return "".join((self.stdout_lines + self.lines)[-last:])

    def wait_for_line(self, pattern: str, timeout: float, *, stderr: bool = True) -> re.Match[str]:
        """The first line (of stderr, or stdout) matching `pattern`; ChildFailed when it exits first."""
        compiled = re.compile(pattern)
        lines = self.lines if stderr else self.stdout_lines
        deadline = time.monotonic() + timeout
        seen = 0
        with self._new_line:
            while True:
                for line in lines[seen:]:
                    match = compiled.search(line)
                    if match:
                        return match
                seen = len(lines)
                left = deadline - time.monotonic()
                if self.process.poll() is not None or left <= 0:
                    raise ChildFailed(
                        f"no line matching {pattern!r} from {self.describe()}:\n{self.output()}"
                    )
                self._new_line.wait(min(left, 0.2))

    def describe(self) -> str:
        code = self.process.poll()
        state = "running" if code is None else f"exited with status {code}"
        return f"{Path(self.args[0]).name} (pid {self.pid}, {state})"

    def stop(self) -> int | None:
        """SIGTERM, then wait; SIGKILL only when it does not stop in time. Its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def wait_serving(address: str, child: Child, timeout: float = START_TIMEOUT_S) -> float:
    """Poll the gRPC health of the whole server ("") until SERVING; the perf_counter time it was seen.

    The channel retries connecting every few ms (gRPC's default backoff starts at 1 s, which
    would be measured instead of the server), and each check waits for the connection.
    """
    options = [
        ("grpc.initial_reconnect_backoff_ms", 5),
        ("grpc.min_reconnect_backoff_ms", 5),
        ("grpc.max_reconnect_backoff_ms", 20),
    ]
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise ChildFailed(f"{child.describe()} before serving:\n{child.output()}")
            with contextlib.suppress(grpc.RpcError):
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=0.25, wait_for_ready=True)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter()
            time.sleep(POLL_INTERVAL_S)
    raise ChildFailed(f"{child.describe()} not SERVING after {timeout:.0f} s:\n{child.output()}")


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a running process, in MiB (Linux /proc)."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024  # kB
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
