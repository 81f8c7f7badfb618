# sigma-grpc: multi-stage build, runs as a non-root user (uid 10001).
#
# The image has no database of its own: point SIGMA_DATABASE_URL at PostgreSQL 13+
# (compose.yaml runs PostgreSQL 16 beside it). Without it `serve` refuses to start
# (SIGMA_EMBEDDED_DB=0 below) instead of starting an embedded PostgreSQL inside the
# container, whose data would die with it. Migrations are applied by `serve` at start.
#
# It listens on 0.0.0.0, so it refuses to start without credentials: mount a tokens
# file as a secret and set SIGMA_AUTH_TOKENS_FILE (or, on a network you trust only,
# SIGMA_AUTH=none). README: "Running with Docker compose" and "Running in production".

# Build stage: a virtualenv with the exact versions pyproject.toml pins, less pgserver
# (the embedded PostgreSQL wheel, which the image never uses), then the project and its client.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('pgserver')))" > requirements.txt \
    && pip install --only-binary=:all: -r requirements.txt
COPY sigma_grpc ./sigma_grpc
COPY clients/python ./clients/python
# The client package too: the command line (`sigma-grpc decisions list`, ...) is built on it.
# Its dependencies are a subset of the server's, already pinned above.
RUN pip install --no-deps . ./clients/python

# Runtime stage: the slim image, the virtualenv and the migrations; no compilers, no pip cache.
FROM python:3.11-slim
RUN useradd --create-home --shell /usr/sbin/nologin --uid 10001 --user-group sigma
COPY --from=build /opt/venv /opt/venv
COPY migrations /app/migrations
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIGMA_EMBEDDED_DB=0 \
    SIGMA_MIGRATIONS_DIR=/app/migrations \
    SIGMA_GRPC_ADDR=0.0.0.0:50051 \
    SIGMA_HTTP_ADDR=0.0.0.0:8080
WORKDIR /app
# Numeric, so an orchestrator can verify it is not root (runAsNonRoot) without reading /etc/passwd.
USER 10001:10001
# gRPC, then HTTP/JSON (the gateway, the dashboard and /metrics).
EXPOSE 50051 8080
# grpc.health.v1 on SIGMA_GRPC_ADDR: SERVING only once the database is reachable and migrated.
# (With SIGMA_TLS_CERT set, the probe speaks TLS: add --ca/--server-name in an override.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["sigma-grpc", "healthcheck"]
ENTRYPOINT ["sigma-grpc"]
CMD ["serve"]
