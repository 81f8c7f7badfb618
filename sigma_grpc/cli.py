"""`sigma-grpc serve|migrate|gateway|healthcheck`, and the client commands of sigma_grpc/console.py."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc

from sigma_grpc import app, console, logs, serving
from sigma_grpc.auth.store import CredentialStore
from sigma_grpc.config import ConfigError, Settings
from sigma_grpc.healthcheck import probe
from sigma_grpc.tls import TlsFiles


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
    check.add_argument("--ca", help="with TLS: the CA of the server's certificate (default: the system's)")
    check.add_argument("--cert", help="under mutual TLS: a client certificate (PEM)")
    check.add_argument("--key", help="under mutual TLS: the client certificate's key (PEM)")
    check.add_argument("--server-name", help="with TLS: the name the server's certificate is for")
    console.add_commands(commands)
    options = parser.parse_args(argv)
    if options.command in console.COMMANDS:
        return console.run(options)

    try:
        settings = Settings.from_env()
        if options.command in ("serve", "migrate"):
            settings.check_database()  # SIGMA_EMBEDDED_DB=0 (the Docker image) and no URL: refuse, here
        if options.command == "serve":
            app.build_exchange(settings)  # refuse a network/URL mismatch before starting anything
            CredentialStore.from_settings(settings)  # a malformed tokens file names its line, here
        if options.command in ("serve", "gateway"):
            TlsFiles.from_settings(settings)  # a key that does not match its certificate, here
    except ConfigError as error:
        print(f"sigma-grpc: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if options.command == "healthcheck":
        try:
            channel = _probe_channel(settings, options)
        except OSError as error:
            print(f"sigma-grpc: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
            return 2
        with channel:
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
    asyncio.run(serving.serve(settings, demo=options.demo))
    return 0


def _probe_channel(settings: Settings, options: argparse.Namespace) -> grpc.Channel:
    """A channel to SIGMA_GRPC_ADDR: TLS when the server serves TLS (SIGMA_TLS_CERT is set)."""
    if settings.tls_cert is None:
        return grpc.insecure_channel(settings.grpc_addr)
    if (options.cert is None) != (options.key is None):
        raise SystemExit("sigma-grpc: --cert and --key go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(options.ca).read_bytes() if options.ca else None,
        private_key=Path(options.key).read_bytes() if options.key else None,
        certificate_chain=Path(options.cert).read_bytes() if options.cert else None,
    )
    channel_options = [("grpc.ssl_target_name_override", options.server_name)] if options.server_name else []
    return grpc.secure_channel(settings.grpc_addr, credentials, options=channel_options)


if __name__ == "__main__":
    sys.exit(main())
