"""`sigma-grpc serve|migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import grpc

from sigma_grpc import app
from sigma_grpc.config import ConfigError, Settings
from sigma_grpc.healthcheck import probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sigma-grpc",
        description="SigmaPilot's decision log over gRPC. Configured by SIGMA_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply pending migrations, then serve until SIGTERM/SIGINT")
    serve.add_argument(
        "--demo", action="store_true", help="seed a week of sample decisions into an empty decision log"
    )
    commands.add_parser("migrate", help="apply pending migrations and exit")
    gateway = commands.add_parser(
        "gateway",
        help="serve only the HTTP/JSON gateway and dashboard on SIGMA_HTTP_ADDR, for a remote server",
    )
    gateway.add_argument("--target", required=True, help="the gRPC server to forward to (host:port)")
    check = commands.add_parser("healthcheck", help="exit 0 when the server at SIGMA_GRPC_ADDR is SERVING")
    check.add_argument("--service", default="", help="service name to check (default: the whole server)")
    options = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
        if options.command == "serve":
            app.build_exchange(settings)  # refuse a network/URL mismatch before starting anything
    except ConfigError as error:
        print(f"sigma-grpc: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # pgserver logs every initdb/pg_ctl command line at INFO.
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    if options.command == "healthcheck":
        with grpc.insecure_channel(settings.grpc_addr) as channel:
            healthy, seen = probe(channel, options.service)
        print(seen)
        return 0 if healthy else 1
    if options.command == "gateway":
        try:
            asyncio.run(app.run_gateway(settings, options.target))
        except ConfigError as error:
            print(f"sigma-grpc: {error}", file=sys.stderr)
            return 2
        return 0
    if options.command == "migrate":
        applied = asyncio.run(app.migrate(settings))
        print(f"applied: {', '.join(applied)}" if applied else "nothing to apply")
        return 0
    asyncio.run(app.serve(settings, demo=options.demo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
